"""Pages: the review queue and one review item (#10; labels.review, docs/review.md).

``/review`` lists the open items the viewer may decide (filters by kind and campaign, a plain GET
form); ``/review/items/{id}`` shows the de-identified video beside the QC report with the decision
forms. Every form posts without JS; static/review.js adds keyboard shortcuts on desktop. The
redaction review (``/review/redaction``) is another page (pages/clips.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from egocrowd import clips
from egocrowd.clips import media
from egocrowd.db.models import Campaign, ReviewKind, Role, User
from egocrowd.errors import InvalidInput
from egocrowd.i18n import N_
from egocrowd.labels import review
from egocrowd.pay import reviews as review_pay
from egocrowd.pay.money import Money
from egocrowd.web.auth import Ctx, unit
from egocrowd.web.pages.clips import STATUS_WORDS, _file_name
from egocrowd.web.pages.render import TextForm, flash_messages, form_action, page_unit, render, see_other
from egocrowd.web.routers.api import Id

router = APIRouter(include_in_schema=False)

# Words people read for stored codes: marked here, translated where the template shows them.
KIND_WORDS = {
    "acceptance": N_("Accept or reject"),
    "appeal": N_("Appeal"),
    "spans": N_("Fix labels"),
}
#: what an appeal disputes, as the sentence "The worker disputes {what}." needs it: whole sentences,
#: so a language may inflect them (see the templates)
DISPUTES_SENTENCES = {
    "qc": N_("The worker disputes a failed check."),
    "rejection": N_("The worker disputes a rejection."),
}
DECISION_WORDS = review.DECISION_WORDS
#: a review item's state (ReviewState)
STATE_WORDS = {"open": N_("open"), "done": N_("decided"), "cancelled": N_("cancelled")}

flash_messages(
    {
        "review_accept": N_("Clip accepted."),
        "review_reject": N_("Clip rejected: its worker is told why."),
        "review_uphold": N_("Appeal answered: the verdict stands."),
        "review_overturn": N_("Appeal granted."),
    }
)


def _query_int(request: Request, name: str) -> int | None:
    value = (request.query_params.get(name) or "").strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 9:
        raise InvalidInput(f"{name.replace('_', ' ')} must be a number.", code="validation.failed", field=name)
    return int(value)


def _pay_for(user: User):
    """What a decision earns a platform reviewer on a campaign (None: nothing), for the queue."""

    def pay(campaign: Campaign) -> Money | None:
        cents = review_pay.pay_cents(campaign)
        return Money(cents, campaign.currency) if cents and user.role is Role.reviewer else None

    return pay


@router.get("/review", response_class=HTMLResponse)
def queue_page(request: Request):
    with unit(request) as ctx:
        user = ctx.require_user()
        kind_value = request.query_params.get("kind") or ""
        kind = ReviewKind(kind_value) if kind_value in ReviewKind.__members__ else None
        campaign_id = _query_int(request, "campaign_id")
        items = review.queue(ctx.session, user, kind=kind, campaign_id=campaign_id, limit=200)
        return render(
            request,
            "review_items.html",
            user,
            items=items,
            campaigns=review.queue_campaigns(ctx.session, user),
            kind=kind.value if kind else "",
            campaign_id=campaign_id,
            kind_words=KIND_WORDS,
            disputes_sentences=DISPUTES_SENTENCES,
            pay_for=_pay_for(user),
        )


def _show_item(request: Request, item_id: int, *, status: int = 200, **values) -> Response:
    with page_unit(request) as ctx:
        user = ctx.require_user()
        item = review.get_item(ctx.session, user, item_id)
        clip = item.clip
        values.setdefault("form", {})
        return render(
            request,
            "review_item.html",
            user,
            status=status,
            item=item,
            c=clip,
            kind_words=KIND_WORDS,
            disputes_sentences=DISPUTES_SENTENCES,
            decision_words=DECISION_WORDS,
            reasons=review.REJECT_REASONS,
            decisions=review.DECISIONS[item.kind],
            earlier=review.earlier_decision(ctx.session, clip.id) if item.kind is ReviewKind.appeal else None,
            feedback=clips.feedback,
            file_name=_file_name(user),
            status_words=STATUS_WORDS,
            video_ready=media.derived_ready_for(user, clip),
            standing=None if media.derived_ready_for(user, clip) else media.not_deidentified(user, clip).message,
            **values,
        )


@router.get("/review/items/{item_id}", response_class=HTMLResponse)
def item_page(request: Request, item_id: Id):
    return _show_item(request, item_id)


@router.post("/review/items/{item_id}")
def decide(request: Request, item_id: Id, form: TextForm):
    """A decision sent from the item page (with or without JS); then back to the queue."""

    def work(ctx: Ctx) -> Response:
        decision = form.get("decision", "")
        review.decide_item(
            ctx.session,
            ctx.require_user(),
            item_id,
            decision,
            reason=form.get("reason") or None,
            comment=form.get("comment", ""),
        )
        return see_other(f"/review?m=review_{decision}")

    return form_action(request, form, work, lambda **v: _show_item(request, item_id, **v))
