"""Pages: Releases (#12): cut, list, show, build progress, manifest (egocrowd.releases; docs/releases.md).

``/releases`` lists the lab's releases; ``/releases/new`` is the form (filters, licence, formats) with a
preview of what it selects (counted again as the filters change, by releases.js through the API's
preview; without a script, the Preview button draws it); ``/releases/{id}`` shows the build's
progress (the page reloads itself while building), the composition, what changed and the files."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from egocrowd import i18n
from egocrowd.campaigns import service as campaigns
from egocrowd.errors import EgocrowdError
from egocrowd.i18n import N_, _, tr
from egocrowd.releases import builder, selection, service
from egocrowd.releases.exporting import DESCRIBERS, EXPORTERS
from egocrowd.releases.schema import PreviewIn, ReleaseIn
from egocrowd.web.auth import unit
from egocrowd.web.pages.forms import field_errors, summary
from egocrowd.web.pages.render import RawForm, flash_messages, page_unit, render, see_other
from egocrowd.web.routers.api import Id

router = APIRouter(include_in_schema=False)

flash_messages({"release_cut": N_("Release cut: it is being built. This page follows the build.")})

USES = [
    ("training", N_("Training models")),
    ("research", N_("Research")),
    ("commercial", N_("Commercial use (needs the workers' commercial-use consent)")),
    ("redistribution", N_("Redistribution (needs the workers' redistribution consent)")),
]
#: a licence's uses, short, as lists of them read ("training, research")
USE_WORDS = {
    "training": N_("training"),
    "research": N_("research"),
    "commercial": N_("commercial use"),
    "redistribution": N_("redistribution"),
}
#: a release's status as people read it
STATUS_WORDS = {"building": N_("building"), "published": N_("published"), "failed": N_("failed")}
#: a build's stages (releases.builder's progress) as people read them
STAGE_WORDS = {
    "queued": N_("waiting to start"),
    "sign": N_("signing the videos"),
    "store": N_("storing the files"),
    "published": N_("published"),
}


def _stage(stage: str) -> str:
    if stage.startswith("export:"):
        return tr("exporting {format}", format=stage.split(":", 1)[1])
    return _(STAGE_WORDS[stage]) if stage in STAGE_WORDS else stage


def _in_viewer_zone(text: str) -> str:
    """A datetime-local field ("2027-01-31T18:00", no zone) read on the viewer's clock, as ISO text
    with its offset; anything else is passed on for the schema to refuse with its own words."""
    try:
        moment = datetime.fromisoformat(text) if text else None
    except ValueError:
        return text
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=i18n.tz()).isoformat()
    return text


def _moment(text: str | None) -> datetime | None:
    """A moment kept as ISO text in a JSON column (the licence's end), for ``|when``; None if unreadable."""
    try:
        moment = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


def _reason(code: str) -> str:
    """Why a clip was left out, in the viewer's language (selection.reason_words is the API's English)."""
    if code in selection.REASON_WORDS:
        return _(selection.REASON_WORDS[code])
    if code.startswith("scope:"):
        return tr("its worker did not grant the scope {scope}", scope=code[6:])
    return code


def _split(text: str) -> list[str]:
    return [x.strip() for x in text.replace("\n", ",").split(",") if x.strip()]


def _selection(form: dict[str, Any]) -> dict[str, Any]:
    """The filters of the form, as the API takes them (empty fields left out)."""
    sel: dict[str, Any] = {
        "campaign_ids": [int(x) for x in form.get("campaign_ids", []) if str(x).isdigit()],
        "labels": _split(form.get("labels", "")),
        "countries": [c.upper() for c in _split(form.get("countries", ""))],
        "clip_ids": [int(x) if x.isdigit() else x for x in _split(form.get("clip_ids", ""))],
    }
    for key in ("recorded_from", "recorded_to", "min_duration_s", "max_duration_s", "min_alpha"):
        if (form.get(key) or "").strip():
            sel[key] = form[key].strip()
    return {k: v for k, v in sel.items() if v not in ([], None)}


def _lab_id(form: dict[str, Any]) -> Any:
    text = (form.get("organization_id") or "").strip()
    return text or None


def _release_in(form: dict[str, Any]) -> ReleaseIn:
    formats = form.get("formats", [])
    return ReleaseIn(
        organization_id=_lab_id(form),
        name=form.get("name", ""),
        title=form.get("title", ""),
        description=form.get("description", ""),
        selection=_selection(form),
        licence={
            "name": form.get("licence_name", ""),
            "terms": form.get("terms", ""),
            "uses": form.get("uses", []),
            "expires_at": _in_viewer_zone((form.get("expires_at") or "").strip()) or None,
        },
        formats={f: {} for f in formats} if formats else None,
    )


def _form(raw: Any) -> dict[str, Any]:
    """The form's text fields; the repeated ones (check boxes) as lists."""
    out: dict[str, Any] = {k: v for k, v in raw.items() if isinstance(v, str)}
    for many in ("campaign_ids", "uses", "formats"):
        out[many] = [v for v in raw.getlist(many) if isinstance(v, str)]
    return out


def _new_page(
    request, ctx, form: dict[str, Any], *, status: int = 200, error: ValidationError | EgocrowdError | None = None
):
    user = ctx.require_user()
    preview = None
    pick_lab = user.organization_id is None  # admins name the lab (people of a lab cut for their own)
    try:
        if not (pick_lab and not form.get("organization_id")):
            preview = service.preview(
                ctx.session,
                user,
                PreviewIn(
                    organization_id=_lab_id(form),
                    selection=_selection(form),
                    licence_uses=form.get("uses") or ["training"],
                ),
            )
    except (ValidationError, EgocrowdError) as exc:
        if getattr(exc, "status", 422) in (401, 403):
            raise
        error = error or exc
    errors = field_errors(error) if error is not None else {}
    return render(
        request,
        "release_form.html",
        user,
        status=status,
        form=form,
        campaigns=campaigns.list_campaigns(ctx.session, user, limit=500),
        formats=[(e.name, e.description, "exporter") for e in EXPORTERS.entries()]
        + [(e.name, e.description, "describer") for e in DESCRIBERS.entries()],
        uses=USES,
        preview=preview.as_dict() if preview else None,
        reason_words=_reason,
        zone_name=i18n.zone(),
        pick_lab=pick_lab,
        errors=errors,
        summary=summary(errors) if errors else None,
        code=getattr(error, "code", "validation.failed") if error is not None else None,
    )


@router.get("/releases", response_class=HTMLResponse)
def releases_page(request: Request):
    with unit(request) as ctx:
        user = ctx.require_user()
        rows = service.list_releases(ctx.session, user)
        return render(
            request,
            "releases.html",
            user,
            releases=[(r, service.release_clip_count(ctx.session, r)) for r in rows],
            status_words=STATUS_WORDS,
            use_words=USE_WORDS,
        )


@router.get("/releases/new", response_class=HTMLResponse)
def new_release_page(request: Request):
    with unit(request) as ctx:
        return _new_page(request, ctx, {"uses": ["training"]})


@router.post("/releases/new", response_class=HTMLResponse)
def new_release(request: Request, raw: RawForm):
    """Preview (the default button) or cut the release; a refusal draws the form again with it."""
    form = _form(raw)
    request.state.form_csrf = form.get("csrf_token", "")
    if form.get("action") != "create":
        with page_unit(request) as ctx:
            return _new_page(request, ctx, form)
    try:
        with page_unit(request) as ctx:
            r = service.create_release(ctx.session, ctx.require_user(), _release_in(form))
            rid = r.id
    except (ValidationError, EgocrowdError) as exc:
        if getattr(exc, "status", 422) in (401, 403):
            raise
        with page_unit(request) as ctx:
            return _new_page(request, ctx, form, status=getattr(exc, "status", 422), error=exc)
    settings = request.app.state.settings
    if settings.run_pipeline_in_server:
        builder.start_pending(request.app.state.db, request.app.state.blobs, settings)
    return see_other(f"/releases/{rid}?m=release_cut")


@router.get("/releases/{release_id}", response_class=HTMLResponse)
def release_page(request: Request, release_id: Id):
    with unit(request) as ctx:
        user = ctx.require_user()
        r = service.get_release(ctx.session, user, release_id)
        files = service.release_files(ctx.session, r)
        return render(
            request,
            "release.html",
            user,
            r=r,
            files=files,
            total_bytes=sum(f.size for f in files),
            clips=service.release_clip_count(ctx.session, r),
            previous=service.get_release(ctx.session, user, r.previous_id) if r.previous_id else None,
            status_words=STATUS_WORDS,
            stage_words=_stage,
            licence_ends=_moment(r.licence.get("expires_at")),
            use_words=USE_WORDS,
        )
