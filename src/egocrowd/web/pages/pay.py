"""Money pages (#11; egocrowd.pay): an admin's deposit form on the campaign page, and the worker's
earnings page."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request

from egocrowd.pay import budgets
from egocrowd.pay.money import Money
from egocrowd.web.auth import unit
from egocrowd.web.pages.render import TextForm, flash_messages, see_other
from egocrowd.web.routers.api import Id

router = APIRouter(include_in_schema=False)

flash_messages({"deposited": "Deposit recorded."})


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

