"""JSON API: Training (#15): qualifications, practice, tests and skill levels (docs/training.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import Field

from egocrowd.db.models import TrainingAttempt, TrainingQualification
from egocrowd.inputs import InputModel
from egocrowd.labels.tasks import SpanIn
from egocrowd.training import levels, service
from egocrowd.web.auth import unit
from egocrowd.web.routers.api import Id

router = APIRouter(prefix="/api/v1", tags=["training"])

Slug = Annotated[str, Path(pattern=service.SLUG, max_length=40)]


class TrainingPracticeIn(InputModel):
    spans: list[SpanIn] = Field(default_factory=list, max_length=200)


class TrainingAnswerIn(InputModel):
    item_id: int = Field(ge=1, le=2**53)
    spans: list[SpanIn] = Field(default_factory=list, max_length=200)


class TrainingTestIn(InputModel):
    answers: list[TrainingAnswerIn] = Field(default_factory=list, max_length=50)


def qualification_dict(q: TrainingQualification) -> dict[str, Any]:
    return {
        "slug": q.slug,
        "title": q.title,
        "description": q.description,
        "kind": q.kind,
        "organization_id": q.organization_id,
        "pass_mark": q.pass_mark,
        "test_items": q.test_items,
        "max_attempts": q.max_attempts,
        "cooldown_hours": q.cooldown_hours,
        "sample_clip_id": q.sample_clip_id,
        "created_at": q.created_at,
    }


def attempt_dict(a: TrainingAttempt) -> dict[str, Any]:
    return {
        "id": a.id,
        "qualification": a.qualification.slug,
        "mode": a.mode,
        "items": a.items,
        "started_at": a.started_at,
        "finished_at": a.finished_at,
        "score": a.score,
        "passed": a.passed,
        "result": a.result,
    }


@router.get("/training/me")
def my_training(request: Request) -> dict[str, Any]:
    """The caller's skill levels per task kind (with what the next level needs) and their live
    qualifications (``earned``: by a test, else granted by staff)."""
    with unit(request) as ctx:
        user = ctx.require_user()
        return {
            "levels": [lv.as_dict() for lv in levels.worker_levels(ctx.session, user)],
            "qualifications": [
                {
                    "skill": q.skill,
                    "campaign_id": q.campaign_id,
                    "earned": q.granted_by is None,
                    "granted_at": q.granted_at,
                }
                for q in service.held_qualifications(ctx.session, user)
            ],
        }


@router.get("/training/qualifications")
def list_qualifications(request: Request) -> list[dict[str, Any]]:
    with unit(request) as ctx:
        ctx.require_user()
        return [qualification_dict(q) for q in service.list_qualifications(ctx.session)]


@router.post("/training/qualifications", status_code=201)
def create_qualification(request: Request, body: service.TrainingQualificationIn) -> dict[str, Any]:
    """A lab (owners, editors) or an admin makes a qualification with its items (docs/training.md)."""
    with unit(request) as ctx:
        q = service.create_qualification(ctx.session, ctx.require_user(), body)
        return qualification_dict(q)


@router.get("/training/qualifications/{slug}")
def get_qualification(request: Request, slug: Slug) -> dict[str, Any]:
    """One qualification, its practice items, and the caller's tests left in the window."""
    with unit(request) as ctx:
        user = ctx.require_user()
        q = service.get_qualification(ctx.session, slug)
        window = service.attempts_window(ctx.session, user, q)
        return {
            **qualification_dict(q),
            "practice": [
                {"id": i.id, "kind": i.kind, "clip_id": i.clip_id, "prompt": i.prompt}
                for i in service.items_of(ctx.session, q, "practice")
            ],
            "held": service.holds(ctx.session, user, q.slug),
            "tests_left": window["left"],
            "next_test_at": window["next_at"],
        }


@router.post("/training/items/{item_id}/practice", status_code=201)
def practise(request: Request, item_id: Id, body: TrainingPracticeIn) -> dict[str, Any]:
    """Practise an annotation item: your spans scored against the right ones, both returned.
    (Recording items are practised on the page, which takes the video file.)"""
    with unit(request) as ctx:
        a = service.practise(ctx.session, ctx.require_user(), item_id, spans=[s.model_dump() for s in body.spans])
        return attempt_dict(a)


@router.post("/training/qualifications/{slug}/tests", status_code=201)
def start_test(request: Request, slug: Slug) -> dict[str, Any]:
    """Start a test (or get the open one): its items are drawn from the qualification's test items.
    429 ``training.attempts_exhausted`` once the window's tests are used."""
    with unit(request) as ctx:
        a = service.start_test(ctx.session, ctx.require_user(), slug)
        out = attempt_dict(a)
        out["questions"] = [
            {"id": i.id, "kind": i.kind, "clip_id": i.clip_id, "prompt": i.prompt}
            for i in (service.get_item(ctx.session, n) for n in a.items)
        ]
        return out


@router.post("/training/tests/{attempt_id}")
def submit_test(request: Request, attempt_id: Id, body: TrainingTestIn) -> dict[str, Any]:
    """Hand in a test's annotation answers; the score, each item's right answer, and ``passed``
    (the qualification is granted at the pass mark)."""
    with unit(request) as ctx:
        a = service.submit_test(
            ctx.session,
            ctx.require_user(),
            attempt_id,
            spans={x.item_id: [s.model_dump() for s in x.spans] for x in body.answers},
        )
        return attempt_dict(a)


@router.get("/training/tests/{attempt_id}")
def get_attempt(request: Request, attempt_id: Id) -> dict[str, Any]:
    with unit(request) as ctx:
        return attempt_dict(service.get_attempt(ctx.session, ctx.require_user(), attempt_id))
