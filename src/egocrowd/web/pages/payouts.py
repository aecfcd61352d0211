"""Pages: a worker's payout methods, payouts and appeals of reversed pay (/earnings/payouts); the
admins' payout batches (/admin/payouts) and reversals with their appeals (/admin/payouts/reversals).
(#11; egocrowd.pay.payouts, egocrowd.pay.appeals, docs/pay.md)

Each page is drawn by one ``_show_*`` function, used by its GET and by the forms that post to it: a
refused action draws the page again with the problem above it; a done one redirects with ``?m=…``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from egocrowd.accounts import policy
from egocrowd.errors import InvalidInput
from egocrowd.i18n import N_, _, tr
from egocrowd.pay import appeals, payouts, reversals
from egocrowd.pay.money import Money
from egocrowd.web.auth import Ctx
from egocrowd.web.pages.render import (
    TextForm,
    confirm_first,
    flash_messages,
    form_action,
    page_unit,
    redraw_with,
    render,
    see_other,
)
from egocrowd.web.routers.api import Id

router = APIRouter(include_in_schema=False)

flash_messages(
    {
        "method_added": N_("Payout method added."),
        "method_default": N_("Default payout method changed."),
        "method_removed": N_("Payout method removed."),
        "pay_appealed": N_("Appeal sent: an admin will look at it."),
        "batch_created": N_("Batch made: the money is in transit."),
        "batch_exported": N_("File written: download it and upload it to the provider."),
        "batch_sent": N_("Batch marked sent: every payout is paid out."),
        "batch_cancelled": N_("Batch cancelled: the money is back in each worker's balance."),
        "pay_reversed": N_("Pay taken back; the worker is told why."),
        "appeal_decided": N_("Appeal decided; the worker is told."),
    }
)

#: states as people read them (translated where shown)
PAYOUT_WORDS = {"in transit": N_("in transit"), "sent": N_("sent"), "cancelled": N_("cancelled")}
BATCH_WORDS = {"open": N_("open"), "exported": N_("exported"), "sent": N_("sent"), "cancelled": N_("cancelled")}
APPEAL_WORDS = {"open": N_("waiting for an admin"), "overturned": N_("overturned"), "upheld": N_("upheld")}


def _titles() -> dict[str, str]:
    """Provider name → the name people know it by ("mpesa" → "M-Pesa")."""
    return {name: title for name, title, _currencies in payouts.providers()}


# ---------------------------------------------------------------- the worker's page


def _show_mine(request: Request, ctx: Ctx, *, status: int = 200, error=None, form=None) -> HTMLResponse:
    user = ctx.require_user()
    is_worker = policy.can(user, "pay.methods")
    return render(
        request,
        "payouts.html",
        user,
        status=status,
        error=error,
        form=form or {},
        methods=payouts.list_methods(ctx.session, user) if is_worker else [],
        is_worker=is_worker,
        providers=payouts.providers(),
        titles=_titles(),
        history=payouts.my_payouts(ctx.session, user),
        totals=payouts.payout_totals(ctx.session, user),
        taken=appeals.my_reversals(ctx.session, user),
        mask=payouts.mask,
        payout_words=PAYOUT_WORDS,
    )


@router.get("/earnings/payouts", response_class=HTMLResponse)
def my_payouts_page(request: Request):
    """Where the worker's money goes, what was sent, and pay taken back (with the appeal form)."""
    with page_unit(request) as ctx:
        return _show_mine(request, ctx)


def _mine_act(request: Request, form: dict[str, str], work) -> Response:
    return form_action(request, form, work, redraw_with(request, _show_mine))


@router.post("/earnings/payouts/methods")
def add_method(request: Request, form: TextForm):
    def work(ctx: Ctx) -> Response:
        payouts.add_method(
            ctx.session,
            ctx.require_user(),
            provider=form.get("provider", ""),
            account_ref=form.get("account_ref", ""),
            currency=form.get("currency", ""),
            make_default=form.get("default") == "yes",
        )
        return see_other("/earnings/payouts?m=method_added")

    return _mine_act(request, form, work)


@router.post("/earnings/payouts/methods/{method_id}/default")
def default_method(request: Request, method_id: Id, form: TextForm):
    def work(ctx: Ctx) -> Response:
        payouts.make_default(ctx.session, ctx.require_user(), method_id)
        return see_other("/earnings/payouts?m=method_default")

    return _mine_act(request, form, work)


@router.post("/earnings/payouts/methods/{method_id}/remove")
def remove_method(request: Request, method_id: Id, form: TextForm):
    def work(ctx: Ctx) -> Response:
        user = ctx.require_user()
        asked = confirm_first(
            request,
            user,
            form,
            question=_("Remove this payout method?"),
            consequences=[
                _("Payouts already in a batch still go to it."),
                _("Another method of the same currency, if you have one, becomes your default."),
            ],
            yes=_("Remove it"),
            back="/earnings/payouts",
        )
        if asked is not None:
            return asked
        payouts.remove_method(ctx.session, user, method_id)
        return see_other("/earnings/payouts?m=method_removed")

    return _mine_act(request, form, work)


@router.post("/earnings/payouts/appeals")
def appeal(request: Request, form: TextForm):
    def work(ctx: Ctx) -> Response:
        try:
            clip_id = int(form.get("clip_id", ""))
        except ValueError:
            raise InvalidInput(_("Which clip?"), code="validation.failed") from None
        appeals.appeal(ctx.session, ctx.require_user(), clip_id, form.get("comment", ""))
        return see_other("/earnings/payouts?m=pay_appealed#taken-back")

    return _mine_act(request, form, work)


# ---------------------------------------------------------------- the admins' batches


def _show_batches(request: Request, ctx: Ctx, *, status: int = 200, error=None, form=None) -> HTMLResponse:
    user = ctx.require_user()
    return render(
        request,
        "admin_payouts.html",
        user,
        status=status,
        error=error,
        form=form or {},
        batches=payouts.list_batches(ctx.session, user),
        providers=payouts.providers(),
        titles=_titles(),
        batch_words=BATCH_WORDS,
        default_minimum=request.app.state.settings.payout_minimum_minor,
    )


def _show_batch(request: Request, ctx: Ctx, batch_id: int, *, status: int = 200, error=None, form=None) -> HTMLResponse:
    user = ctx.require_user()
    batch, lines = payouts.get_batch(ctx.session, user, batch_id)
    return render(
        request,
        "admin_payout_batch.html",
        user,
        status=status,
        error=error,
        form=form or {},
        batch=batch,
        lines=lines,
        total=Money(sum(x.payout.amount for x in lines), batch.currency),
        api=payouts.can_send_batch(batch),
        titles=_titles(),
        batch_words=BATCH_WORDS,
    )


@router.get("/admin/payouts", response_class=HTMLResponse)
def batches_page(request: Request):
    """Payout batches: make one, and every batch with its state."""
    with page_unit(request) as ctx:
        return _show_batches(request, ctx)


@router.post("/admin/payouts")
def create_batch(request: Request, form: TextForm):
    def work(ctx: Ctx) -> Response:
        cur = form.get("currency", "").strip().upper()
        minimum = form.get("minimum", "").strip()
        b = payouts.create_batch(
            ctx.session,
            ctx.require_user(),
            provider=form.get("provider", ""),
            currency=cur,
            minimum=Money.parse(minimum, cur) if minimum else None,
            default_minimum_minor=request.app.state.settings.payout_minimum_minor,
        )
        return see_other(f"/admin/payouts/{b.id}?m=batch_created")

    return form_action(request, form, work, redraw_with(request, _show_batches))


# ---------------------------------------------------------------- reversals and appeals (admins)


def _show_reversals(request: Request, ctx: Ctx, *, status: int = 200, error=None, form=None) -> HTMLResponse:
    user = ctx.require_user()
    only = request.query_params.get("appeal")
    return render(
        request,
        "admin_reversals.html",
        user,
        status=status,
        error=error,
        form=form or {},
        appeal_words=APPEAL_WORDS,
        rows=appeals.list_reversals(ctx.session, user, state=only if only in ("open", "appealed") else None),
        showing=only,
    )


@router.get("/admin/payouts/reversals", response_class=HTMLResponse)
def reversals_page(request: Request):
    """Pay taken back, the workers' appeals and their decisions; the form to take pay back."""
    with page_unit(request) as ctx:
        return _show_reversals(request, ctx)


def _rev_act(request: Request, form: dict[str, str], work) -> Response:
    return form_action(request, form, work, redraw_with(request, _show_reversals))


@router.post("/admin/payouts/reversals")
def reverse(request: Request, form: TextForm):
    def work(ctx: Ctx) -> Response:
        try:
            clip_id = int(form.get("clip_id", ""))
        except ValueError:
            raise InvalidInput(_("Give the clip's number."), code="validation.failed") from None
        reversals.reverse_clip_pay(
            ctx.session,
            ctx.require_user(),
            clip_id,
            form.get("reason", ""),
            allow_negative=form.get("allow_negative") == "yes",
        )
        return see_other("/admin/payouts/reversals?m=pay_reversed")

    return _rev_act(request, form, work)


@router.post("/admin/payouts/appeals/{appeal_id}")
def decide(request: Request, appeal_id: Id, form: TextForm):
    def work(ctx: Ctx) -> Response:
        appeals.decide(ctx.session, ctx.require_user(), appeal_id, form.get("decision", ""), form.get("comment", ""))
        return see_other("/admin/payouts/reversals?m=appeal_decided")

    return _rev_act(request, form, work)


# ---------------------------------------------------------------- one batch (after /admin/payouts/reversals: a path, not a number)


@router.get("/admin/payouts/{batch_id}", response_class=HTMLResponse)
def batch_page(request: Request, batch_id: Id):
    """One batch: its payouts, its file, and what can be done next."""
    with page_unit(request) as ctx:
        return _show_batch(request, ctx, batch_id)


def _batch_act(request: Request, batch_id: int, form: dict[str, str], work) -> Response:
    return form_action(request, form, work, redraw_with(request, _show_batch, batch_id))


@router.post("/admin/payouts/{batch_id}/export")
def export_batch(request: Request, batch_id: Id, form: TextForm):
    def work(ctx: Ctx) -> Response:
        payouts.export_batch(ctx.session, ctx.require_user(), batch_id, request.app.state.blobs)
        return see_other(f"/admin/payouts/{batch_id}?m=batch_exported")

    return _batch_act(request, batch_id, form, work)


@router.get("/admin/payouts/{batch_id}/file")
def batch_file(request: Request, batch_id: Id):
    """The exported file (the same bytes every time)."""
    with page_unit(request) as ctx:
        f = payouts.export_file(ctx.session, ctx.require_user(), batch_id, request.app.state.blobs)
    return Response(
        f.data,
        media_type=f.media_type,
        headers={"Content-Disposition": f'attachment; filename="{f.filename}"', "Cache-Control": "private, no-store"},
    )


@router.post("/admin/payouts/{batch_id}/sent")
def mark_sent(request: Request, batch_id: Id, form: TextForm):
    def work(ctx: Ctx) -> Response:
        payouts.mark_sent(ctx.session, ctx.require_user(), batch_id, form.get("reference", ""))
        return see_other(f"/admin/payouts/{batch_id}?m=batch_sent")

    return _batch_act(request, batch_id, form, work)


@router.post("/admin/payouts/{batch_id}/send")
def send_batch(request: Request, batch_id: Id, form: TextForm):
    def work(ctx: Ctx) -> Response:
        payouts.send_batch(ctx.session, ctx.require_user(), batch_id)
        return see_other(f"/admin/payouts/{batch_id}?m=batch_sent")

    return _batch_act(request, batch_id, form, work)


@router.post("/admin/payouts/{batch_id}/cancel")
def cancel_batch(request: Request, batch_id: Id, form: TextForm):
    def work(ctx: Ctx) -> Response:
        user = ctx.require_user()
        asked = confirm_first(
            request,
            user,
            form,
            question=tr("Cancel payout batch {id}?", id=batch_id),
            consequences=[
                _("Every payout's money goes back to its worker's balance, for a later batch."),
                _("If you uploaded the file to the provider, cancel it there too."),
            ],
            yes=_("Cancel the batch"),
            back=f"/admin/payouts/{batch_id}",
        )
        if asked is not None:
            return asked
        payouts.cancel_batch(ctx.session, user, batch_id, form.get("reason", ""))
        return see_other(f"/admin/payouts/{batch_id}?m=batch_cancelled")

    return _batch_act(request, batch_id, form, work)
