"""A worker's slots (or a lab's assignments) and giving a slot back."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from egocrowd import evaluations
from egocrowd.accounts import policy
from egocrowd.campaigns import assignments
from egocrowd.campaigns import service as campaigns
from egocrowd.i18n import N_, _, tr
from egocrowd.web.auth import unit
from egocrowd.web.pages.render import TextForm, confirm_first, render, see_other
from egocrowd.web.routers.api import Id

router = APIRouter(include_in_schema=False)

#: A slot's state in a worker's words: "released" also covers a slot ended by a closed campaign.
SLOT_WORDS = {
    "active": N_("active"),
    "submitted": N_("clip sent"),
    "accepted": N_("accepted"),
    "rejected": N_("not accepted"),
    "expired": N_("time ran out"),
    "released": N_("ended"),
}


@router.get("/assignments", response_class=HTMLResponse)
def assignments_page(request: Request):
    with unit(request) as ctx:
        user = ctx.require_user()
        rows = assignments.list_assignments(ctx.session, user)
        # robot battles held now (#19): judged from their own page, listed here with the slots
        battles = evaluations.active_battles(ctx.session, user) if policy.can(user, "evaluation.take") else []
        return render(
            request,
            "assignments.html",
            user,
            assignments=rows,
            battles=battles,
            words=SLOT_WORDS,
            localized=campaigns.localized,
        )


@router.post("/assignments/{assignment_id}/release")
def assignment_release(request: Request, assignment_id: Id, form: TextForm):
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        user = ctx.require_user()
        a = assignments.get_assignment(ctx.session, user, assignment_id)
        ask = confirm_first(
            request,
            user,
            form,
            question=tr("Give back your slot in “{campaign}”?", campaign=campaigns.localized(a.campaign)[0]),
            consequences=[
                _("The slot goes back to the campaign and someone else may take it."),
                _("An upload you have not finished for this slot is discarded."),
                _("Clips you already sent for it stay yours and are still checked and paid as usual."),
            ],
            yes=_("Give the slot back"),
            back="/assignments",
        )
        if ask is not None:
            return ask
        assignments.release(ctx.session, user, a)
    return see_other("/assignments?m=released")
