"""Pages: Withdrawals (#12): the withdrawal feed buyers read and acknowledge, removals for cause (egocrowd.releases.withdrawals).

- ``/withdrawals``: a buyer lab's notices, unacknowledged first, each listing the affected files by
  path and sha256; owners and editors acknowledge them.
- ``/admin/withdrawals``: every withdrawal, its notices, the time from withdrawal to notice (each,
  and the median and maximum of the last 30 days), purge status, and the removal-for-cause form.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from egocrowd import i18n
from egocrowd.accounts import policy
from egocrowd.i18n import N_, _, tr
from egocrowd.releases import withdrawals
from egocrowd.web.auth import Ctx
from egocrowd.web.pages.render import (
    TextForm,
    confirm_first,
    flash_messages,
    form_action,
    page_unit,
    render,
    see_other,
)
from egocrowd.web.routers.api import Id

router = APIRouter(include_in_schema=False)
flash_messages(
    {
        "acknowledged": N_("Acknowledged. Thank you for deleting the files."),
        "removed": N_("The clip is withdrawn: it leaves every later release, and its buyers are told."),
    }
)


def duration(d: timedelta | None) -> str:
    """A delay as people read it, in their language: "4 s", "12 min", "3 h 5 min", "2 d 4 h"."""
    if d is None:
        return "–"
    s = int(d.total_seconds())
    n = i18n.number
    if s < 60:
        return tr("{seconds} s", seconds=n(s))
    if s < 3600:
        return tr("{minutes} min", minutes=n(s // 60))
    if s < 86400:
        return tr("{hours} h {minutes} min", hours=n(s // 3600), minutes=n(s % 3600 // 60))
    return tr("{days} d {hours} h", days=n(s // 86400), hours=n(s % 86400 // 3600))


def _show_notices(request: Request, *, status: int = 200, **values) -> HTMLResponse:
    with page_unit(request) as ctx:
        user = ctx.require_user()
        views = withdrawals.notices_for(ctx.session, user)
        org = user.organization
        return render(
            request,
            "withdrawals.html",
            user,
            status=status,
            views=views,
            waiting=sum(1 for v in views if v.notice.acknowledged_at is None),
            may_ack=org is not None and policy.can(user, "withdrawal.acknowledge", org),
            **values,
        )


@router.get("/withdrawals", response_class=HTMLResponse)
def notices_page(request: Request):
    return _show_notices(request)


@router.post("/withdrawals/{notice_id}/acknowledge")
def acknowledge(request: Request, notice_id: Id, form: TextForm):
    def work(ctx: Ctx):
        withdrawals.acknowledge(ctx.session, ctx.require_user(), notice_id)
        return see_other(f"/withdrawals?m=acknowledged#notice-{notice_id}")

    return form_action(request, form, work, lambda **v: _show_notices(request, **v))


def _show_admin(request: Request, *, status: int = 200, form: dict[str, str] | None = None, **values) -> HTMLResponse:
    with page_unit(request) as ctx:
        admin = ctx.require_user()
        o = withdrawals.overview(ctx.session, admin)
        return render(
            request,
            "admin_withdrawals.html",
            admin,
            status=status,
            o=o,
            days=withdrawals.STATS_DAYS,
            duration=duration,
            form=form or {},
            **values,
        )


@router.get("/admin/withdrawals", response_class=HTMLResponse)
def admin_page(request: Request):
    return _show_admin(request)


@router.post("/admin/withdrawals")
def admin_remove(request: Request, form: TextForm):
    def work(ctx: Ctx):
        raw = (form.get("clip_id") or "").strip()
        clip_id = int(raw) if raw.isdigit() and len(raw) < 10 else -1
        admin = policy.require(ctx.require_user(), "withdrawal.admin")
        withdrawals.clean_comment(form.get("comment"))  # a missing reason is said before asking
        ask = confirm_first(
            request,
            admin,
            form,
            question=tr("Remove clip {id} for cause?", id=raw),
            consequences=[
                _("It is left out of every release made from now on."),
                _("Every lab that downloaded a release holding it is told which files to delete."),
                tr(
                    "Its video is deleted after {days} days; only its hashes are kept.",
                    days=i18n.number(request.app.state.settings.withdrawal_grace_days),
                ),
                _("The worker is told your reason. This cannot be undone."),
            ],
            yes=_("Remove the clip"),
            back="/admin/withdrawals",
        )
        if ask is not None:
            return ask
        withdrawals.remove_clip(
            ctx.session,
            ctx.require_user(),
            clip_id,
            form.get("comment"),
            grace_days=request.app.state.settings.withdrawal_grace_days,
        )
        return see_other("/admin/withdrawals?m=removed")

    return form_action(request, form, work, lambda **v: _show_admin(request, **v))
