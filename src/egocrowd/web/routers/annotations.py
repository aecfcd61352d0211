"""JSON API: annotation tasks, gold reference spans, the reviewer's span fix, qualifications (#10;
labels.tasks, labels.consensus)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from pydantic import Field

from egocrowd.db.models import AnnotationTask, Span
from egocrowd.inputs import InputModel
from egocrowd.labels import consensus, tasks
from egocrowd.labels.tasks import MAX_SPANS, SpanIn
from egocrowd.web.auth import unit
from egocrowd.web.routers.api import Id
from egocrowd.web.schemas import AnnotationTaskOut, ClipSpansOut, QualificationOut, SpanOut

router = APIRouter(prefix="/api/v1", tags=["annotations"])


class ClaimIn(InputModel):
    campaign_id: int | None = Field(
        None, ge=0, description="Only this campaign's clips (default: any you may annotate)"
    )


class AnswerIn(InputModel):
    spans: list[SpanIn] = Field(max_length=MAX_SPANS + 1)  # one over, so the service says why
    nothing_happens: bool = Field(False, description="Required (and only allowed) with an empty list of spans")
    idle_seconds: int | None = Field(
        None, ge=0, le=7 * 24 * 3600, description="Seconds the page saw you away (tab hidden, no input); for pay rates"
    )


class SpansIn(InputModel):
    spans: list[SpanIn] = Field(max_length=MAX_SPANS + 1)


class QualificationIn(InputModel):
    user_id: int = Field(ge=0)
    skill: str = Field(tasks.SKILL, max_length=40)
    campaign_id: int | None = Field(None, ge=0)
    note: str = Field("", max_length=500)


def task_out(session, task: AnnotationTask) -> AnnotationTaskOut:
    clip = task.clip
    taxonomy = clip.campaign.taxonomy or {}
    return AnnotationTaskOut(
        id=task.id,
        clip_id=task.clip_id,
        campaign_id=task.campaign_id,
        status=task.status.value,
        claimed_at=task.claimed_at,
        lease_expires_at=task.lease_expires_at,
        submitted_at=task.submitted_at,
        flags=[f for f in task.flags if isinstance(f, str)],
        duration_ms=tasks.duration_ms(clip),
        fps=(clip.probe or {}).get("fps"),
        video_url=f"/api/v1/clips/{clip.id}/video",
        taxonomy={"verbs": list(taxonomy.get("verbs", [])), "nouns": list(taxonomy.get("nouns", []))},
        spans=[SpanOut.model_validate(s) for s in tasks.answer_spans(session, task)],
    )


def _spans_out(clip_id: int, kind: str, spans: list[Span]) -> ClipSpansOut:
    return ClipSpansOut(clip_id=clip_id, kind=kind, spans=[SpanOut.model_validate(s) for s in spans])


@router.post("/annotation-tasks/claim", status_code=201, response_model=AnnotationTaskOut)
def claim_task(request: Request, body: ClaimIn | None = None):
    """Take the next annotation task (a qualified worker; 409 ``annotation.no_tasks`` when none)."""
    settings = request.app.state.settings
    with unit(request) as ctx:
        task = tasks.claim_task(
            ctx.session,
            ctx.require_user(),
            campaign_id=body.campaign_id if body else None,
            lease=timedelta(minutes=settings.annotation_lease_minutes),
            max_open=settings.annotation_max_open,
        )
        return task_out(ctx.session, task)


@router.get("/annotation-tasks", response_model=list[AnnotationTaskOut])
def list_tasks(request: Request, active: bool = False):
    """Your annotation tasks, newest first."""
    with unit(request) as ctx:
        return [task_out(ctx.session, t) for t in tasks.list_tasks(ctx.session, ctx.require_user(), active_only=active)]


@router.get("/annotation-tasks/{task_id}", response_model=AnnotationTaskOut)
def get_task(request: Request, task_id: Id):
    with unit(request) as ctx:
        return task_out(ctx.session, tasks.get_task(ctx.session, ctx.require_user(), task_id))


@router.post("/annotation-tasks/{task_id}/submit", response_model=AnnotationTaskOut)
def submit_task(request: Request, task_id: Id, body: AnswerIn):
    """Send your spans, once, while the lease runs (410 ``annotation.lease_expired`` after it)."""
    with unit(request) as ctx:
        task = tasks.submit(
            ctx.session,
            ctx.require_user(),
            task_id,
            body.spans,
            nothing_happens=body.nothing_happens,
            idle_seconds=body.idle_seconds,
        )
        return task_out(ctx.session, task)


@router.post("/annotation-tasks/{task_id}/release", response_model=AnnotationTaskOut)
def release_task(request: Request, task_id: Id):
    with unit(request) as ctx:
        return task_out(ctx.session, tasks.release(ctx.session, ctx.require_user(), task_id))


@router.get("/clips/{clip_id}/gold", response_model=ClipSpansOut)
def get_gold(request: Request, clip_id: Id):
    """A clip's reference spans (reviewers and admins)."""
    with unit(request) as ctx:
        clip = tasks.get_gold_clip(ctx.session, ctx.require_user(), clip_id)
        return _spans_out(clip.id, "gold", tasks.gold_spans(ctx.session, clip.id))


@router.put("/clips/{clip_id}/gold", response_model=ClipSpansOut)
def put_gold(request: Request, clip_id: Id, body: SpansIn):
    """Make the clip a gold clip with these reference spans (they replace earlier ones)."""
    with unit(request) as ctx:
        spans = tasks.set_gold(ctx.session, ctx.require_user(), clip_id, body.spans)
        return _spans_out(clip_id, "gold", spans)


@router.put("/review/items/{item_id}/spans", response_model=ClipSpansOut)
def fix_spans(request: Request, item_id: Id, body: SpansIn):
    """A reviewer's spans for a clip whose annotators disagreed; decides the review item."""
    with unit(request) as ctx:
        user = ctx.require_user()
        clip_id = consensus.get_spans_item(ctx.session, user, item_id).clip_id
        return _spans_out(clip_id, "review", consensus.fix_spans(ctx.session, user, item_id, body.spans))


@router.get("/users/{user_id}/qualifications", response_model=list[QualificationOut])
def list_qualifications(request: Request, user_id: Id):
    with unit(request) as ctx:
        return [
            QualificationOut.model_validate(q)
            for q in tasks.list_qualifications(ctx.session, ctx.require_user(), user_id)
        ]


@router.post("/qualifications", status_code=201, response_model=QualificationOut)
def grant_qualification(request: Request, body: QualificationIn):
    """Let a worker annotate (all campaigns, or one): reviewers and admins."""
    with unit(request) as ctx:
        q = tasks.grant(ctx.session, ctx.require_user(), body.user_id, body.skill, body.campaign_id, body.note)
        return QualificationOut.model_validate(q)


@router.post("/qualifications/{qualification_id}/revoke", response_model=QualificationOut)
def revoke_qualification(request: Request, qualification_id: Id):
    with unit(request) as ctx:
        return QualificationOut.model_validate(tasks.revoke(ctx.session, ctx.require_user(), qualification_id))
