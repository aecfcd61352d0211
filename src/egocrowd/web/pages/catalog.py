"""Pages: The catalog, access requests and grants, signed download links (#12; egocrowd.releases.buyers).

- ``/catalog``: every published release, newest first, with its slices and a sample frame; filters.
- ``/catalog/{id}``: one release: composition, data card, licence terms, samples; the request form
  (a buyer lab's owners and editors); the files and a button for download links (whoever may
  download); the requests and grants (the owning lab; its owners decide).
- ``/catalog/requests``: the lab's pending requests.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from egocrowd import i18n
from egocrowd.accounts import policy
from egocrowd.consent.text import render_markdown
from egocrowd.errors import EgocrowdError, InvalidInput
from egocrowd.i18n import N_, _
from egocrowd.releases import buyers
from egocrowd.web.auth import Ctx, unit
from egocrowd.web.pages.releases import USE_WORDS
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
        "access_requested": N_("Request sent: the lab that published this release decides, and you will be told."),
        "access_granted": N_("Access granted: the lab was told."),
        "access_refused": N_("Request refused: the lab was told."),
        "access_revoked": N_("Access revoked: their links stopped working."),
    }
)

#: a request's state in plain words, and the pill colour it borrows
STATE_WORDS = {
    "requested": N_("waiting for a decision"),
    "granted": N_("granted"),
    "refused": N_("refused"),
    "revoked": N_("revoked"),
}
PILL = {"requested": "submitted", "granted": "accepted", "refused": "rejected", "revoked": "rejected"}


@router.get("/catalog", response_class=HTMLResponse)
def catalog_page(
    request: Request,
    label: str = "",
    country: str = "",
    min_hours: str = "",
    q: str = "",
):
    with unit(request) as ctx:
        user = ctx.require_user()
        filters = {"label": label[:121], "country": country[:2], "min_hours": min_hours[:12], "q": q[:200]}
        hours = _hours(min_hours)
        entries = buyers.list_catalog(
            ctx.session,
            user,
            label=filters["label"] or None,
            country=filters["country"] or None,
            min_hours=hours,
            q=filters["q"] or None,
            limit=100,
        )
        pending = len(buyers.pending_requests(ctx.session, user))
        return render(
            request,
            "catalog.html",
            user,
            entries=entries,
            filters=filters,
            pending=pending,
            state_words=STATE_WORDS,
            use_words=USE_WORDS,
            pill=PILL,
        )


def _hours(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 <= value <= 1_000_000 else None


def _detail(request: Request, ctx: Ctx, release_id: int, **extra: Any) -> HTMLResponse:
    user = ctx.require_user()
    entry = buyers.catalog_entry(ctx.session, user, release_id)
    r = entry.release
    may_view = policy.can(user, "release.view", r)
    card = buyers.data_card(ctx.session, r, request.app.state.blobs)
    access = entry.access
    may_download = may_view or (access is not None and access.state.value == "granted")
    files = []
    if may_download:
        try:
            files = buyers.list_files(ctx.session, user, r.id)
        except EgocrowdError as exc:  # a grant whose licence ended: say so where the files would be
            extra.setdefault("download_problem", exc.message)
            may_download = False
    return render(
        request,
        "catalog_release.html",
        user,
        status=extra.pop("status", 200),
        e=entry,
        r=r,
        terms_html=render_markdown(str((r.licence or {}).get("terms") or ""), top_level=3),
        card_html=render_markdown(card, top_level=3) if card else None,
        may_request=policy.can(user, "release.request_access") and not entry.owned,
        may_manage=policy.can(user, "release.manage", r),
        may_view=may_view,
        may_download=may_download,
        files=files,
        requests=buyers.list_access(ctx.session, user, r.id) if may_view else [],
        downloads=buyers.downloads(ctx.session, user, r.id, limit=20) if may_view else [],
        state_words=STATE_WORDS,
        use_words=USE_WORDS,
        pill=PILL,
        link_minutes=request.app.state.settings.release_link_minutes,
        uses_text=", ".join(_(USE_WORDS[u]) if u in USE_WORDS else u for u in entry.licence.get("uses") or []),
        zone_name=i18n.zone(),
        **extra,
    )


@router.get("/catalog/requests", response_class=HTMLResponse)
def requests_page(request: Request):
    with unit(request) as ctx:
        user = ctx.require_user()
        rows = buyers.pending_requests(ctx.session, user)
        return render(request, "catalog_requests.html", user, rows=rows)


@router.get("/catalog/{release_id}", response_class=HTMLResponse)
def release_page(request: Request, release_id: Id):
    with page_unit(request) as ctx:
        return _detail(request, ctx, release_id)


@router.post("/catalog/{release_id}/request")
def request_form(request: Request, release_id: Id, form: TextForm):
    def work(ctx: Ctx):
        buyers.request_access(
            ctx.session,
            ctx.user,
            release_id,
            message=form.get("message", ""),
            accept_terms=form.get("accept_terms") == "yes",
        )
        return see_other(f"/catalog/{release_id}?m=access_requested")

    return form_action(
        request,
        form,
        work,
        redraw_with(request, _detail, release_id),
        redraw_codes=("release.no_licence", "release.licence_expired"),
    )


def _end_of_day(text: str) -> datetime | None:
    """A date from the form's date field: the grant lasts to the end of that day on the clock of the
    person granting it (their zone: the account's, else the browser's)."""
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise InvalidInput(
            _("Give the end date as a date (YYYY-MM-DD)."), code="release.bad_expiry", field="expires_at"
        ) from None
    return datetime.combine(day, time(23, 59, 59), tzinfo=i18n.tz()).astimezone(UTC)


@router.post("/catalog/access/{access_id}/decide")
def decide_form(request: Request, access_id: Id, form: TextForm):
    release_id = int(form.get("release_id", "0") or 0) if form.get("release_id", "").isdigit() else 0

    def work(ctx: Ctx):
        a = buyers.decide(
            ctx.session,
            ctx.user,
            access_id,
            grant=form.get("decision") == "grant",
            note=form.get("note", ""),
            expires_at=_end_of_day(form.get("expires_at", "")),
        )
        return see_other(f"/catalog/{a.release_id}?m=access_{a.state.value}")

    return form_action(request, form, work, redraw_with(request, _detail, release_id))


@router.post("/catalog/access/{access_id}/revoke")
def revoke_form(request: Request, access_id: Id, form: TextForm):
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        user = ctx.require_user()
        back = f"/catalog/{form.get('release_id', '')}" if form.get("release_id", "").isdigit() else "/catalog"
        asked = confirm_first(
            request,
            user,
            form,
            question=_("Revoke this lab's access?"),
            consequences=[
                _("Every download link they hold stops working at once."),
                _("They are told, with your note. They may ask again later."),
            ],
            yes=_("Revoke access"),
            back=back,
        )
        if asked is not None:
            return asked
        a = buyers.revoke(ctx.session, user, access_id, note=form.get("note", ""))
        return see_other(f"/catalog/{a.release_id}?m=access_revoked")


@router.post("/catalog/{release_id}/links", response_class=HTMLResponse)
def links_form(request: Request, release_id: Id, form: TextForm):
    """Download links for every file (or the manifest), shown on a page to copy into curl or wget."""
    settings = request.app.state.settings
    base = str(request.base_url).rstrip("/")
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        user = ctx.require_user()
        rows = buyers.issue_links(
            ctx.session,
            user,
            release_id,
            secret=settings.resolved_secret_key(),
            minutes=settings.release_link_minutes,
            manifest=form.get("which") == "manifest",
        )
        return render(
            request,
            "catalog_links.html",
            user,
            e=buyers.catalog_entry(ctx.session, user, release_id),
            links=[{"path": x.path, "url": base + x.url, "size": x.size, "sha256": x.sha256} for x in rows],
            expires_at=rows[0].expires_at if rows else None,
        )
