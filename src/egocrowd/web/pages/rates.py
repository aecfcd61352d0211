"""Pages: Pay floors, measured hourly rates, top-ups and exchange rates (#11; egocrowd.pay.rates, docs/pay.md).

``/admin/pay`` is the admins' floor table and exchange rates, each with a form; the campaign page's
"Hourly pay" section (campaign_rates.html, included by campaign.html) shows the lab its rates and
top-ups, with accept and decline buttons."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from egocrowd.i18n import N_
from egocrowd.pay import local, rates
from egocrowd.pay.money import Money
from egocrowd.web.auth import Ctx, unit
from egocrowd.web.pages.render import TextForm, flash_messages, form_action, page_unit, render, see_other
from egocrowd.web.routers.api import Id

router = APIRouter(include_in_schema=False)

flash_messages(
    {
        "floor_set": N_("Pay floor saved."),
        "rate_set": N_("Exchange rate saved."),
        "top_up_accepted": N_("Top-up accepted: it is paid to everyone already paid on this campaign."),
        "top_up_declined": N_("Top-up declined."),
    }
)


def _show(request: Request, *, status: int = 200, form: dict[str, str] | None = None, **values) -> HTMLResponse:
    with page_unit(request) as ctx:
        admin = ctx.require_user()
        return render(
            request,
            "admin_pay.html",
            admin,
            status=status,
            form=form or {},
            floors=[(f, Money(f.hourly_minor, f.currency)) for f in rates.floors_as(ctx.session, admin)],
            rates=rates.rates_as(ctx.session, admin),
            exact=local.exact_number,
            **values,
        )


@router.get("/admin/pay", response_class=HTMLResponse)
def pay_page(request: Request):
    return _show(request)


@router.post("/admin/pay/floors")
def floor_form(request: Request, form: TextForm):
    def work(ctx: Ctx):
        money = Money.parse(form.get("hourly", ""), form.get("currency", "").strip().upper())
        rates.set_floor(ctx.session, ctx.require_user(), form.get("country", ""), money, form.get("source", ""))
        return see_other("/admin/pay?m=floor_set")

    return form_action(request, form, work, lambda **v: _show(request, **v))


@router.post("/admin/pay/rates")
def rate_form(request: Request, form: TextForm):
    def work(ctx: Ctx):
        rates.set_rate(
            ctx.session,
            ctx.require_user(),
            form.get("base", "").strip(),
            form.get("quote", "").strip(),
            form.get("rate", ""),
            form.get("source", ""),
        )
        return see_other("/admin/pay?m=rate_set")

    return form_action(request, form, work, lambda **v: _show(request, **v))


@router.post("/campaigns/{campaign_id}/top-ups/{top_up_id}/{decision}")
def top_up_form(request: Request, campaign_id: Id, top_up_id: Id, decision: str, form: TextForm):
    """The campaign page's accept / decline buttons (the lab's owners and editors, admins)."""
    accept = decision == "accept"
    if decision not in ("accept", "decline"):
        return see_other(f"/campaigns/{campaign_id}")
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        rates.decide_by(ctx.session, ctx.require_user(), campaign_id, top_up_id, accept=accept)
    return see_other(f"/campaigns/{campaign_id}?m=top_up_{'accepted' if accept else 'declined'}#hourly-pay")
