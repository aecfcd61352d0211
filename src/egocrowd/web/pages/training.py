"""Pages: Training (#15): practice tasks with instant feedback, qualification tests, skill levels
(docs/training.md). Every form works without script: spans are typed seconds (as on the
annotation page), recordings are a file field (the phone's camera opens from it)."""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from egocrowd.accounts import policy
from egocrowd.campaigns import levels as level_rule
from egocrowd.errors import InvalidInput, TooLarge
from egocrowd.i18n import N_, _, tr
from egocrowd.labels import tasks
from egocrowd.training import levels, service
from egocrowd.web.pages.forms import field_errors
from egocrowd.web.pages.render import (
    TextForm,
    flash_messages,
    form_action,
    page_unit,
    redraw_with,
    render,
    see_other,
)
from egocrowd.web.routers.api import Id
from egocrowd.web.routers.clips import media_response
from egocrowd.web.routers.training import Slug

router = APIRouter(include_in_schema=False)

flash_messages({"training_created": N_("Qualification saved: workers can practise it now.")})

#: a practice recording is short: a bigger file is refused before QC reads it
MAX_RECORDING_BYTES = 200 * 1024 * 1024
_BLANK_ROWS = 3
#: QC statuses as people read them
CHECK_STATUS = {"pass": N_("OK"), "warn": N_("warning"), "fail": N_("failed")}


def _spans_from_form(form) -> list[dict[str, Any]]:
    """The rows typed (seconds, as on the annotation page) as spans in ms; blank rows are skipped.
    ``form`` answers ``getlist`` (a test's item reads its own suffixed fields)."""
    cols = [form.getlist(k) for k in ("start_s", "end_s", "verb", "noun")]
    if len({len(c) for c in cols}) != 1:
        raise InvalidInput(tr("The form's rows are incomplete; reload the page."), code="annotation.bad_span")
    spans = []
    for i, (a, b, verb, noun) in enumerate(zip(*cols, strict=True), 1):
        if not (str(a).strip() or str(b).strip()):
            continue
        try:
            start, end = float(str(a).replace(",", ".")), float(str(b).replace(",", "."))
        except ValueError:
            raise InvalidInput(
                tr("Span {n}: start and end are seconds, like 1.5.", n=i), code="annotation.bad_span"
            ) from None
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end > 24 * 3600:
            raise InvalidInput(
                tr("Span {n}: start and end are seconds within the clip.", n=i), code="annotation.bad_span"
            )
        spans.append({"start_ms": round(start * 1000), "end_ms": round(end * 1000), "verb": verb, "noun": noun})
    return spans


def _form_rows(form) -> list[dict[str, str]]:
    """The rows as typed, to draw the page again after a refusal without losing them."""
    cols = [form.getlist(k) for k in ("start_s", "end_s", "verb", "noun")]
    return [
        {"start": a, "end": b, "verb": v, "noun": n}
        for a, b, v, n in zip(*cols, strict=False)
        if str(a).strip() or str(b).strip()
    ]


def _rows(rows: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
    return list(rows or []) + [{"start": "", "end": "", "verb": "", "noun": ""}] * _BLANK_ROWS


# --- the worker's training home --------------------------------------------------------------------
@router.get("/training", response_class=HTMLResponse)
def training_home(request: Request):
    with page_unit(request) as ctx:
        user = ctx.require_user()
        held = {q.skill for q in service.held_qualifications(ctx.session, user)}
        quals = service.list_qualifications(ctx.session)
        return render(
            request,
            "training.html",
            user,
            levels=levels.worker_levels(ctx.session, user),
            kind_labels=levels.KIND_LABELS,
            max_level=level_rule.MAX_LEVEL,
            thresholds=level_rule.THRESHOLDS,
            held=held,
            to_practise=[q for q in quals if q.slug not in held],
            earned=[q for q in quals if q.slug in held],
            authored=service.authored_by(ctx.session, user) if policy.can(user, "campaign.create") else [],
            may_author=policy.can(user, "campaign.create"),
            attempts=service.recent_attempts(ctx.session, user, limit=10),
        )


# --- one qualification ---------------------------------------------------------------------------
@router.get("/training/q/{slug}", response_class=HTMLResponse)
def qualification_page(request: Request, slug: Slug):
    with page_unit(request) as ctx:
        return _qualification(request, ctx, slug)


def _qualification(request: Request, ctx, slug: str, error: dict | None = None, status: int = 200, **__: Any):
    user = ctx.require_user()
    q = service.get_qualification(ctx.session, slug)
    return render(
        request,
        "training_qualification.html",
        user,
        status=status,
        error=error,
        q=q,
        practice=service.items_of(ctx.session, q, "practice"),
        held=service.holds(ctx.session, user, q.slug),
        window=service.attempts_window(ctx.session, user, q),
        attempts=service.recent_attempts(ctx.session, user, q, limit=10),
    )


@router.get("/training/q/{slug}/sample")
def sample_video(request: Request, slug: Slug):
    with page_unit(request) as ctx:
        user = ctx.require_user()
        f = service.video_file(ctx.session, user, service.sample_clip(ctx.session, slug), request.app.state.blobs)
    return media_response(request, f)


@router.get("/training/items/{item_id}/video")
def item_video(request: Request, item_id: Id):
    with page_unit(request) as ctx:
        user = ctx.require_user()
        clip = service.training_clip(ctx.session, user, item_id)
        f = service.video_file(ctx.session, user, clip, request.app.state.blobs)
    return media_response(request, f)


@router.post("/training/q/{slug}/test")
def start_test(request: Request, slug: Slug, form: TextForm):
    def work(ctx) -> Response:
        a = service.start_test(ctx.session, ctx.require_user(), slug)
        return see_other(f"/training/attempts/{a.id}")

    return form_action(request, form, work, redraw_with(request, _qualification, slug))


# --- practice ------------------------------------------------------------------------------------
@router.get("/training/practice/{item_id}", response_class=HTMLResponse)
def practice_page(request: Request, item_id: Id):
    with page_unit(request) as ctx:
        return _practice(request, ctx, item_id)


def _practice(request: Request, ctx, item_id: int, error: dict | None = None, status: int = 200, rows=None, **__: Any):
    user = ctx.require_user()
    item = service.get_item(ctx.session, item_id)
    if item.use != "practice":
        raise InvalidInput(_("This item belongs to a test."), code="training.item_not_open")
    return render(
        request,
        "training_practice.html",
        user,
        status=status,
        error=error,
        item=item,
        q=item_qualification(ctx, item),
        **_item_values(item, rows),
    )


def item_qualification(ctx, item):
    from egocrowd.db.models import TrainingQualification

    return ctx.session.get(TrainingQualification, item.qualification_id)


def _item_values(item, rows=None) -> dict[str, Any]:
    if item.kind != "annotate" or item.clip is None:
        return {}
    taxonomy = item.clip.campaign.taxonomy or {}
    return {
        "verbs": list(taxonomy.get("verbs", [])),
        "nouns": list(taxonomy.get("nouns", [])),
        "duration_ms": tasks.duration_ms(item.clip) or 0,
        "rows": _rows(rows),
    }


async def _save_upload(upload: Any) -> str | None:
    """The file field written to a temporary file (refused past the size cap); None if empty."""
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    fd, path = tempfile.mkstemp(prefix="egocrowd-practice-", suffix=".video")
    size = 0
    with os.fdopen(fd, "wb") as out:
        while chunk := await upload.read(1 << 20):
            size += len(chunk)
            if size > MAX_RECORDING_BYTES:
                out.close()
                os.unlink(path)
                raise TooLarge(_("A practice recording may be at most 200 MB."), code="training.recording_too_large")
            out.write(chunk)
    return path


async def _reports(request: Request, form, names: dict[str, int]) -> dict[int, dict[str, Any]]:
    """QC each uploaded recording (field name → item id) with the platform's defaults; the files
    are deleted once judged (practice recordings are never kept)."""
    from starlette.concurrency import run_in_threadpool

    palm = request.app.state.settings.palm_model
    out: dict[int, dict[str, Any]] = {}
    for field, item_id in names.items():
        path = await _save_upload(form.get(field))
        if path is None:
            continue
        try:
            out[item_id] = await run_in_threadpool(service.check_recording, path, palm_model=palm)
        finally:
            os.unlink(path)
    return out


@router.post("/training/practice/{item_id}")
async def practise(request: Request, item_id: Id):
    async with request.form(max_part_size=MAX_RECORDING_BYTES) as form:
        reports = await _reports(request, form, {"recording": item_id})
        fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        rows_form = form
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(_practise, request, item_id, fields, rows_form, reports)


def _practise(request: Request, item_id: int, fields, form, reports) -> Response:
    def work(ctx) -> Response:
        item = service.get_item(ctx.session, item_id)
        spans = _spans_from_form(form) if item.kind == "annotate" else None
        a = service.practise(ctx.session, ctx.require_user(), item_id, spans=spans, report=reports.get(item_id))
        return see_other(f"/training/attempts/{a.id}")

    def redraw(**kw) -> Response:
        with page_unit(request) as ctx:
            return _practice(request, ctx, item_id, error=kw["error"], status=kw["status"], rows=_form_rows(form))

    return form_action(request, fields, work, redraw)


# --- attempts: an open test, or the results ------------------------------------------------------
@router.get("/training/attempts/{attempt_id}", response_class=HTMLResponse)
def attempt_page(request: Request, attempt_id: Id):
    with page_unit(request) as ctx:
        return _attempt(request, ctx, attempt_id)


def _attempt(request: Request, ctx, attempt_id: int, error: dict | None = None, status: int = 200, **__: Any):
    user = ctx.require_user()
    a = service.get_attempt(ctx.session, user, attempt_id)
    items = [service.get_item(ctx.session, n) for n in a.items]
    return render(
        request,
        "training_attempt.html",
        user,
        status=status,
        error=error,
        a=a,
        q=a.qualification,
        questions=[(i, _item_values(i)) for i in items],
        results=(a.result or {}).get("items", []),
        check_status=CHECK_STATUS,
        holds=service.holds(ctx.session, user, a.qualification.slug),
    )


@router.post("/training/attempts/{attempt_id}")
async def submit_test(request: Request, attempt_id: Id):
    async with request.form(max_part_size=MAX_RECORDING_BYTES) as form:
        names = {k: int(k.removeprefix("recording_")) for k in form if k.startswith("recording_") and k[10:].isdigit()}
        reports = await _reports(request, form, names)
        fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        spans: dict[int, list[dict[str, Any]]] = {}
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(_submit, request, attempt_id, fields, form, reports, spans)


class _ItemForm:
    """One item's rows of a test form (fields ``start_s_<id>``...), read like the annotation form."""

    def __init__(self, form, item_id: int) -> None:
        self.form, self.suffix = form, f"_{item_id}"

    def getlist(self, key: str) -> list[Any]:
        return self.form.getlist(key + self.suffix)


def _submit(request: Request, attempt_id: int, fields, form, reports, spans) -> Response:
    def work(ctx) -> Response:
        a = service.get_attempt(ctx.session, ctx.require_user(), attempt_id)
        for item_id in a.items:
            if service.get_item(ctx.session, item_id).kind == "annotate":
                spans[item_id] = _spans_from_form(_ItemForm(form, item_id))
        service.submit_test(ctx.session, ctx.require_user(), attempt_id, spans=spans, reports=reports)
        return see_other(f"/training/attempts/{attempt_id}")

    return form_action(request, fields, work, redraw_with(request, _attempt, attempt_id))


# --- authoring (labs, admins) --------------------------------------------------------------------
#: what each clip list's field is called in its refusal
_LIST_ERRORS = {
    "practice": N_("Practice clips: clip numbers separated by commas, like 12, 15."),
    "test": N_("Test clips: clip numbers separated by commas, like 12, 15."),
}


def _ids(text: str, what: str) -> list[int]:
    out = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or len(part) > 15:
            raise InvalidInput(_(_LIST_ERRORS[what]), code="training.bad_clip_list", field=f"{what}_clips")
        out.append(int(part))
    return out


@router.get("/training/new", response_class=HTMLResponse)
def new_form(request: Request):
    with page_unit(request) as ctx:
        return _new(request, ctx)


def _new(request: Request, ctx, error: dict | None = None, status: int = 200, form: dict | None = None, **__: Any):
    user = policy.require(ctx.require_user(), "campaign.create")
    return render(
        request,
        "training_form.html",
        user,
        status=status,
        error=error,
        form=form or {"pass_mark": "80", "test_items": "5", "max_attempts": "3", "cooldown_hours": "24"},
    )


@router.post("/training/new")
def create(request: Request, form: TextForm):
    def work(ctx) -> Response:
        items: list[dict[str, Any]] = []
        for use in ("practice", "test"):
            items += [{"kind": "annotate", "use": use, "clip_id": c} for c in _ids(form.get(f"{use}_clips", ""), use)]
            n = form.get(f"{use}_recordings", "").strip() or "0"
            if not n.isdigit() or int(n) > 50:
                raise InvalidInput(
                    _("Recording items: a whole number from 0 to 50."),
                    code="training.bad_clip_list",
                    field=f"{use}_recordings",
                )
            items += [{"kind": "record", "use": use, "prompt": form.get("prompt", "")}] * int(n)
        try:
            data = service.TrainingQualificationIn.model_validate(_fields(form, items))
        except ValidationError as exc:
            raise InvalidInput(" ".join(field_errors(exc).values()), code="validation.failed") from None
        q = service.create_qualification(ctx.session, ctx.require_user(), data)
        return see_other(f"/training/q/{q.slug}?m=training_created")

    return form_action(request, form, work, redraw_with(request, _new))


def _fields(form: dict[str, str], items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "slug": form.get("slug", ""),
        "title": form.get("title", ""),
        "description": form.get("description", ""),
        "kind": form.get("kind", ""),
        "pass_mark": form.get("pass_mark") or 80,
        "test_items": form.get("test_items") or 5,
        "max_attempts": form.get("max_attempts") or 3,
        "cooldown_hours": form.get("cooldown_hours") or 0,
        "sample_clip_id": form.get("sample_clip_id") or None,
        "items": items,
    }
