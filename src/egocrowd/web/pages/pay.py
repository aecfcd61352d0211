"""Money pages (#11; egocrowd.pay): an admin's deposit form on the campaign page, and the worker's
earnings page."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from egocrowd.campaigns.schema import DataUse
from egocrowd.i18n import N_, _
from egocrowd.pay import budgets, earnings, local
from egocrowd.pay.money import Money
from egocrowd.web.auth import unit
from egocrowd.web.pages.render import TextForm, flash_messages, render, see_other
from egocrowd.web.pages.review import KIND_WORDS
from egocrowd.web.routers.api import Id

router = APIRouter(include_in_schema=False)

flash_messages({"deposited": N_("Deposit recorded.")})


@router.post("/campaigns/{campaign_id}/deposits")
def campaign_deposit(request: Request, campaign_id: Id, form: TextForm):
    """The campaign page's deposit form (admins). A refusal (a bad amount, not an admin) is the error
    page with the problem's words; the form's hidden key makes a double submit post once."""
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        user = ctx.require_user()
        c, _ = budgets.visible_budget(ctx.session, user, campaign_id)
        budgets.deposit_to(
            ctx.session,
            user,
            campaign_id,
            Money.parse(form.get("amount", ""), c.currency),
            reason=form.get("reason", ""),
            idempotency_key=form.get("idempotency_key", "")[:100] or secrets.token_hex(16),
        )
    return see_other(f"/campaigns/{campaign_id}?m=deposited")


#: a line's state in the worker's words (translated where shown), and the pill colour it borrows
STATE_WORDS = {
    "pending": N_("waiting"),
    "approved": N_("paid"),
    "owed": N_("accepted, pay owed"),
    "reversed": N_("taken back"),
}
#: an annotation answer's pay state in the worker's words
ANSWER_WORDS = {
    "approved": N_("paid"),
    "owed": N_("pay owed"),
    "withheld": N_("not paid: sent faster than the clip plays"),
    "reversed": N_("taken back"),
}
PILL = {"pending": "submitted", "approved": "accepted", "owed": "submitted", "reversed": "rejected"}


@router.get("/earnings", response_class=HTMLResponse)
def earnings_page(request: Request):
    """The worker's money: balance, weeks, and every clip that is or may be paid."""
    with unit(request) as ctx:
        user = ctx.require_user()
        e = earnings.earnings(ctx.session, user)
        return render(
            request,
            "earnings.html",
            user,
            e=e,
            local=local.for_worker(ctx.session, user, earnings.currencies(e)),
            state_words=STATE_WORDS,
            answer_words=ANSWER_WORDS,
            review_kind_words=KIND_WORDS,
            pill=PILL,
            # the data uses' descriptions are their labels in campaigns.schema (marked there)
            use_words={k: _(f.description) if f.description else k for k, f in DataUse.model_fields.items()},
        )
