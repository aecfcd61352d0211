"""Pages: annotation (#10). The annotator's home (claim the next task, the tasks they hold), the
annotation page, and the same page for a reviewer fixing disagreeing spans or making a gold clip's
reference spans. The page's form works without script (typed seconds); annotate.js adds the timeline,
marking at the playhead and the keyboard."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from egocrowd.db.models import AnnotationTaskStatus, Clip, Span
from egocrowd.errors import InvalidInput
from egocrowd.i18n import N_
from egocrowd.labels import consensus, tasks
from egocrowd.pay import rates
from egocrowd.web.pages.render import (
    RawForm,
    TextForm,
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
        "annotation_sent": N_("Thank you: your labels were sent."),
        "annotation_released": N_("Task given back."),
        "spans_fixed": N_("Spans saved: the clip's labels are done."),
        "gold_saved": N_("Reference spans saved: this clip is now a gold clip."),
        "qualified": N_("Qualification granted: they can annotate now."),
        "unqualified": N_("Qualification revoked."),
    }
)

#: an annotation task's status (AnnotationTaskStatus) in the words its annotator reads
TASK_STATUS_WORDS = {
    "active": N_("in progress"),
    "submitted": N_("sent"),
    "expired": N_("time ran out"),
    "released": N_("given back"),
}

#: empty rows offered to a browser without script (it cannot add rows itself)
_BLANK_ROWS = 3


def _row(s: Span | dict[str, Any]) -> dict[str, str]:
    if isinstance(s, Span):
        return {"start": f"{s.start_ms / 1000:.2f}", "end": f"{s.end_ms / 1000:.2f}", "verb": s.verb, "noun": s.noun}
    return s


def _spans_from_form(form) -> list[dict[str, Any]]:
    """The form's rows (seconds, as people type them) as spans in ms; blank rows are skipped."""
    starts, ends = form.getlist("start_s"), form.getlist("end_s")
    verbs, nouns = form.getlist("verb"), form.getlist("noun")
    if not (len(starts) == len(ends) == len(verbs) == len(nouns)):
        raise InvalidInput("The form's rows are incomplete; reload the page.", code="annotation.bad_span")
    spans = []
    for i, (a, b, verb, noun) in enumerate(zip(starts, ends, verbs, nouns, strict=True), 1):
        if not any(str(x).strip() for x in (a, b)):
            continue
        try:
            start, end = float(str(a).replace(",", ".")), float(str(b).replace(",", "."))
        except ValueError:
            raise InvalidInput(f"Span {i}: start and end are seconds, like 1.5.", code="annotation.bad_span") from None
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end > 24 * 3600:
            raise InvalidInput(f"Span {i}: start and end are seconds within the clip.", code="annotation.bad_span")
        spans.append({"start_ms": round(start * 1000), "end_ms": round(end * 1000), "verb": verb, "noun": noun})
    return spans


def _form_rows(form) -> list[dict[str, str]]:
    """The rows as sent, to draw the page again after a refusal without losing what was typed."""
    keys = ("start_s", "end_s", "verb", "noun")
    cols = [form.getlist(k) for k in keys]
    return [
        {"start": a, "end": b, "verb": v, "noun": n}
        for a, b, v, n in zip(*cols, strict=False)
        if str(a).strip() or str(b).strip()
    ]


def _spans_form_action(
    request: Request, form, save: Callable[[Any, list[dict[str, Any]]], str], redraw: Callable[..., Response]
) -> Response:
    """The post of a spans form (an annotator's answer, a reviewer's fix, a gold clip's reference):
    its rows read as spans and handed to ``save``, which answers where to go next; a refusal draws
    the page again (``redraw(error=, status=, rows=)``) with the rows as they were typed."""

    def work(ctx) -> Response:
        return see_other(save(ctx, _spans_from_form(form)))

    fields = {k: str(v) for k, v in form.items()}
    return form_action(
        request,
        fields,
        work,
        lambda **kw: redraw(error=kw["error"], status=kw["status"], rows=_form_rows(form)),
    )


def _page(request: Request, user, clip: Clip, *, mode: str, action: str, rows, status: int = 200, **values):
    taxonomy = clip.campaign.taxonomy or {}
    blank = _BLANK_ROWS if mode == "task" or not rows else 1
    return render(
        request,
        "annotate_task.html",
        user,
        status=status,
        mode=mode,
        action=action,
        clip=clip,
        duration_ms=tasks.duration_ms(clip) or 0,
        verbs=list(taxonomy.get("verbs", [])),
        nouns=list(taxonomy.get("nouns", [])),
        rows=list(rows) + [{"start": "", "end": "", "verb": "", "noun": ""}] * blank,
        task_status_words=TASK_STATUS_WORDS,
        **values,
    )


# --- the annotator's home ------------------------------------------------------------------------
@router.get("/annotate", response_class=HTMLResponse)
def annotate_home(request: Request):
    return _home(request)


def _home(request: Request, error: dict | None = None, status: int = 200) -> Response:
    with page_unit(request) as ctx:
        user = ctx.require_user()
        held = tasks.list_tasks(ctx.session, user, limit=30)
        return render(
            request,
            "annotate.html",
            user,
            status=status,
            error=error,
            qualified=tasks.is_qualified(ctx.session, user),
            active=[t for t in held if t.status is AnnotationTaskStatus.active],
            done=[t for t in held if t.status is AnnotationTaskStatus.submitted][:10],
        )


@router.post("/annotate/claim")
def annotate_claim(request: Request, form: TextForm):
    settings = request.app.state.settings

    def work(ctx) -> Response:
        task = tasks.claim_task(
            ctx.session,
            ctx.require_user(),
            lease=timedelta(minutes=settings.annotation_lease_minutes),
            max_open=settings.annotation_max_open,
        )
        return see_other(f"/annotate/tasks/{task.id}")

    return form_action(
        request,
        form,
        work,
        lambda **kw: _home(request, error=kw["error"], status=kw["status"]),
        redraw_codes=("annotation.not_qualified",),
    )


# --- the annotation page -------------------------------------------------------------------------
@router.get("/annotate/tasks/{task_id}", response_class=HTMLResponse)
def task_page(request: Request, task_id: Id):
    return _task(request, task_id)


def _task(request: Request, task_id: int, error: dict | None = None, status: int = 200, rows=None) -> Response:
    with page_unit(request) as ctx:
        user = ctx.require_user()
        task = tasks.get_task(ctx.session, user, task_id)
        if rows is None:
            rows = [_row(s) for s in tasks.answer_spans(ctx.session, task)]
        return _page(
            request,
            user,
            task.clip,
            mode="task",
            action=f"/annotate/tasks/{task.id}",
            rows=rows,
            task=task,
            error=error,
            status=status,
        )


@router.post("/annotate/tasks/{task_id}")
def task_submit(request: Request, task_id: Id, form: RawForm):
    def save(ctx, spans: list[dict[str, Any]]) -> str:
        tasks.submit(
            ctx.session,
            ctx.require_user(),
            task_id,
            spans,
            nothing_happens=form.get("nothing_happens") == "yes",
            idle_seconds=rates.parse_idle(str(form.get("idle_seconds") or "")),  # set by idle.js; absent without it
        )
        return "/annotate?m=annotation_sent"

    return _spans_form_action(request, form, save, lambda **kw: _task(request, task_id, **kw))


@router.post("/annotate/tasks/{task_id}/release")
def task_release(request: Request, task_id: Id, form: TextForm):
    def work(ctx) -> Response:
        tasks.release(ctx.session, ctx.require_user(), task_id)
        return see_other("/annotate?m=annotation_released")

    return form_action(request, form, work, lambda **kw: _home(request, error=kw["error"], status=kw["status"]))


# --- a reviewer fixes disagreeing spans ----------------------------------------------------------
@router.get("/annotate/review/{item_id}", response_class=HTMLResponse)
def review_page(request: Request, item_id: Id):
    return _review(request, item_id)


def _review(request: Request, item_id: int, error: dict | None = None, status: int = 200, rows=None) -> Response:
    with page_unit(request) as ctx:
        user = ctx.require_user()
        item = consensus.get_spans_item(ctx.session, user, item_id)
        shown = consensus.spans_for_review(ctx.session, item.clip)
        if rows is None:
            rows = [_row(s) for s in shown["consensus"]]
        return _page(
            request,
            user,
            item.clip,
            mode="review",
            action=f"/annotate/review/{item.id}",
            rows=rows,
            item=item,
            answers=[[_row(s) for s in answer] for answer in shown["answers"]],
            agreement=item.clip.agreement or {},
            error=error,
            status=status,
        )


@router.post("/annotate/review/{item_id}")
def review_fix(request: Request, item_id: Id, form: RawForm):
    def save(ctx, spans: list[dict[str, Any]]) -> str:
        consensus.fix_spans(ctx.session, ctx.require_user(), item_id, spans)
        return f"/annotate/review/{item_id}?m=spans_fixed"

    return _spans_form_action(request, form, save, lambda **kw: _review(request, item_id, **kw))


# --- a reviewer makes a gold clip ----------------------------------------------------------------
@router.get("/annotate/gold/{clip_id}", response_class=HTMLResponse)
def gold_page(request: Request, clip_id: Id):
    return _gold(request, clip_id)


def _gold(request: Request, clip_id: int, error: dict | None = None, status: int = 200, rows=None) -> Response:
    with page_unit(request) as ctx:
        user = ctx.require_user()
        clip = tasks.get_gold_clip(ctx.session, user, clip_id)
        if rows is None:
            rows = [_row(s) for s in tasks.gold_spans(ctx.session, clip.id)]
        return _page(
            request, user, clip, mode="gold", action=f"/annotate/gold/{clip.id}", rows=rows, error=error, status=status
        )


@router.post("/annotate/gold/{clip_id}")
def gold_save(request: Request, clip_id: Id, form: RawForm):
    def save(ctx, spans: list[dict[str, Any]]) -> str:
        tasks.set_gold(ctx.session, ctx.require_user(), clip_id, spans)
        return f"/annotate/gold/{clip_id}?m=gold_saved"

    return _spans_form_action(request, form, save, lambda **kw: _gold(request, clip_id, **kw))


# --- staff: who may annotate ---------------------------------------------------------------------
@router.get("/annotate/annotators", response_class=HTMLResponse)
def annotators_page(request: Request):
    return _annotators(request)


def _annotators(request: Request, error: dict | None = None, status: int = 200, form: dict | None = None) -> Response:
    with page_unit(request) as ctx:
        user = ctx.require_user()
        rows = tasks.annotators(ctx.session, user)
        form = form or {"email": request.query_params.get("email", "")}
        return render(request, "annotate_annotators.html", user, rows=rows, error=error, status=status, form=form)


@router.post("/annotate/annotators")
def annotators_grant(request: Request, form: TextForm):
    def work(ctx) -> Response:
        raw = form.get("campaign_id", "").strip()
        if raw and (not raw.isdigit() or len(raw) > 9):
            raise InvalidInput("A campaign is named by its number, like 12.", code="qualification.bad_campaign")
        campaign_id = int(raw) if raw else None
        tasks.grant_by_email(ctx.session, ctx.require_user(), form.get("email", ""), campaign_id, form.get("note", ""))
        return see_other("/annotate/annotators?m=qualified")

    return form_action(
        request, form, work, lambda **kw: _annotators(request, error=kw["error"], status=kw["status"], form=form)
    )


@router.post("/annotate/annotators/{qualification_id}/revoke")
def annotators_revoke(request: Request, qualification_id: Id, form: TextForm):
    def work(ctx) -> Response:
        tasks.revoke(ctx.session, ctx.require_user(), qualification_id)
        return see_other("/annotate/annotators?m=unqualified")

    return form_action(request, form, work, lambda **kw: _annotators(request, error=kw["error"], status=kw["status"]))
