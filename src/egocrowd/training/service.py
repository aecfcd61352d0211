"""Qualifications, practice and tests (#15, docs/training.md).

A lab (owners, editors) or an admin makes a qualification: its pass mark, its test size, how many
tests a worker may start in a window of hours, and items — annotation items on the lab's own gold
clips, recording items that QC judges. Workers practise any item as often as they like and see the
right answer (annotation) or every QC check explained on their own recording next to a sample clip.
A test draws ``test_items`` of the test items; its score is the mean of the items' scores (0..100);
reaching the pass mark grants the Qualification (``granted_by`` None: earned). Gold clips used here
are told to the trainee: a lab should keep its hidden gold clips out of its training items.

Practice recordings are judged and thrown away: they are not clips, carry no consent, and are
never stored (only the QC report is kept in the attempt).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.accounts import policy
from egocrowd.campaigns import levels as rule
from egocrowd.clock import db_now
from egocrowd.db.models import (
    Clip,
    ClipStatus,
    Derivative,
    Qualification,
    Role,
    TrainingAttempt,
    TrainingItem,
    TrainingQualification,
    User,
)
from egocrowd.errors import Conflict, Forbidden, InvalidInput, NotFound, TooManyRequests
from egocrowd.i18n import N_, _, tr
from egocrowd.inputs import InputModel
from egocrowd.labels import tasks
from egocrowd.labels.aggregate import SpanAnswer, compare

#: the slug of the qualification that opens annotation work (labels.tasks checks this skill)
ANNOTATE = tasks.SKILL
SLUG = r"^[a-z0-9][a-z0-9-]{1,39}$"
#: a practice file QC cannot read at all, told like a failed check (msgids: the page translates them)
READABLE = (
    N_("Readable video"),
    N_("We could not read this file as a video."),
    N_("record with the phone's own camera app and send the video file it saved"),
)
#: how close (temporal IoU) a span must be to the right one to count, as in the label audits
IOU = 0.3


class TrainingItemIn(InputModel):
    kind: Literal["annotate", "record"]
    use: Literal["practice", "test"]
    clip_id: int | None = Field(None, ge=1, le=2**53, description="annotate: a gold clip of your lab")
    prompt: str = Field("", max_length=2000)


class TrainingQualificationIn(InputModel):
    slug: str = Field(pattern=SLUG, description='Lower-case words and dashes: "record-kitchen"')
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    kind: Literal["record", "annotate"]
    pass_mark: int = Field(80, ge=1, le=100, description="Percent of the test's points")
    test_items: int = Field(5, ge=1, le=50)
    max_attempts: int = Field(3, ge=1, le=20, description="Tests a worker may start in any window of cooldown_hours")
    cooldown_hours: int = Field(24, ge=0, le=24 * 30)
    sample_clip_id: int | None = Field(None, ge=1, le=2**53, description="An accepted clip that shows a good recording")
    items: list[TrainingItemIn] = Field(default_factory=list, max_length=200)


# --- authoring -----------------------------------------------------------------------------------
def _may_author(user: User, org_id: int | None) -> bool:
    return policy.can(user, "campaign.create") and (user.role is Role.admin or user.organization_id == org_id)


def _own_clip(session: Session, user: User, clip_id: int, *, gold: bool) -> Clip:
    clip = session.get(Clip, clip_id)
    if clip is None or not (user.role is Role.admin or clip.campaign.organization_id == user.organization_id):
        raise NotFound(tr("No clip {clip_id} in your lab's campaigns.", clip_id=clip_id), code="clip.not_found")
    if clip.status is not ClipStatus.accepted:
        raise Conflict(_("Only an accepted clip can be used in training."), code="training.clip_not_accepted")
    if gold and not tasks.gold_spans(session, clip.id):
        raise Conflict(
            _("An annotation item needs a gold clip (one with reference spans)."), code="training.clip_not_gold"
        )
    return clip


def create_qualification(session: Session, actor: User, data: TrainingQualificationIn) -> TrainingQualification:
    policy.require(actor, "campaign.create")
    if session.scalar(sa.select(TrainingQualification.id).where(TrainingQualification.slug == data.slug)):
        raise Conflict(tr("The name {slug} is taken.", slug=data.slug), code="training.slug_taken", field="slug")
    if data.sample_clip_id is not None:
        _own_clip(session, actor, data.sample_clip_id, gold=False)
    if not any(i.use == "test" for i in data.items):
        raise InvalidInput(_("A qualification needs at least one test item."), code="training.no_test_items")
    q = TrainingQualification(
        slug=data.slug,
        title=data.title,
        description=data.description,
        kind=data.kind,
        organization_id=None if actor.role is Role.admin else actor.organization_id,
        pass_mark=data.pass_mark,
        test_items=data.test_items,
        max_attempts=data.max_attempts,
        cooldown_hours=data.cooldown_hours,
        sample_clip_id=data.sample_clip_id,
        created_by=actor.id,
        created_at=db_now(session),
    )
    session.add(q)
    session.flush()
    for n, i in enumerate(data.items):
        if i.kind == "annotate" and i.clip_id is None:
            raise InvalidInput(_("An annotation item needs a gold clip."), code="training.clip_not_gold")
        if i.clip_id is not None:
            _own_clip(session, actor, i.clip_id, gold=i.kind == "annotate")
        session.add(
            TrainingItem(
                qualification_id=q.id,
                kind=i.kind,
                use=i.use,
                clip_id=i.clip_id if i.kind == "annotate" else None,
                prompt=i.prompt,
                position=n,
            )
        )
    session.flush()
    audit.record(session, actor, "training.qualification_created", q, {"slug": q.slug, "items": len(data.items)})
    return q


def list_qualifications(session: Session) -> list[TrainingQualification]:
    return list(
        session.scalars(
            sa.select(TrainingQualification)
            .where(TrainingQualification.archived_at.is_(None))
            .order_by(TrainingQualification.title, TrainingQualification.id)
        )
    )


def authored_by(session: Session, actor: User) -> list[TrainingQualification]:
    """The qualifications a lab member (or an admin: all) may look after."""
    return [q for q in list_qualifications(session) if _may_author(actor, q.organization_id)]


def get_qualification(session: Session, slug: str) -> TrainingQualification:
    q = session.scalar(
        sa.select(TrainingQualification).where(
            TrainingQualification.slug == slug, TrainingQualification.archived_at.is_(None)
        )
    )
    if q is None:
        raise NotFound(tr("No qualification {slug}.", slug=slug), code="training.not_found")
    return q


def items_of(session: Session, q: TrainingQualification, use: str | None = None) -> list[TrainingItem]:
    return list(
        session.scalars(
            sa.select(TrainingItem)
            .where(TrainingItem.qualification_id == q.id, *([TrainingItem.use == use] if use else []))
            .order_by(TrainingItem.position, TrainingItem.id)
        )
    )


def get_item(session: Session, item_id: int) -> TrainingItem:
    item = session.get(TrainingItem, item_id)
    if item is None:
        raise NotFound(tr("No training item {item_id}.", item_id=item_id), code="training.item_not_found")
    return item


def training_clip(session: Session, user: User, item_id: int) -> Clip:
    """The clip of a practice item, for its video: anyone logged in may practise. Test items'
    clips are shown only inside the viewer's own open test (never before: no studying the answers)."""
    item = get_item(session, item_id)
    if item.clip is None:
        raise NotFound(tr("Training item {item_id} has no clip.", item_id=item_id), code="training.item_not_found")
    if item.use == "test" and not _in_open_test(session, user, item):
        raise Forbidden(_("This clip is part of a test you have not started."), code="training.item_not_open")
    return item.clip


def sample_clip(session: Session, slug: str) -> Clip:
    q = get_qualification(session, slug)
    if q.sample_clip_id is None:
        raise NotFound(tr("The qualification {slug} has no sample clip.", slug=slug), code="training.item_not_found")
    clip = session.get(Clip, q.sample_clip_id)
    assert clip is not None
    return clip


def _in_open_test(session: Session, user: User, item: TrainingItem) -> bool:
    open_tests = session.scalars(
        sa.select(TrainingAttempt).where(
            TrainingAttempt.user_id == user.id,
            TrainingAttempt.qualification_id == item.qualification_id,
            TrainingAttempt.mode == "test",
            TrainingAttempt.finished_at.is_(None),
        )
    )
    return any(item.id in a.items for a in open_tests)


# --- the worker's standing -----------------------------------------------------------------------
def holds(session: Session, user: User, slug: str) -> bool:
    """Whether ``user`` holds ``slug`` for every campaign (what a test earns)."""
    return rule.holds_qualification(session, user.id, slug)


def held_qualifications(session: Session, user: User) -> list[Qualification]:
    return list(
        session.scalars(
            sa.select(Qualification)
            .where(Qualification.user_id == user.id, Qualification.revoked_at.is_(None))
            .order_by(Qualification.granted_at)
        )
    )


def attempts_window(session: Session, user: User, q: TrainingQualification, now: datetime | None = None) -> dict:
    """Tests started in the last ``cooldown_hours``, how many are left, and when the next opens."""
    now = now or db_now(session)
    since = now - timedelta(hours=q.cooldown_hours)
    started = list(
        session.scalars(
            sa.select(TrainingAttempt.started_at)
            .where(
                TrainingAttempt.user_id == user.id,
                TrainingAttempt.qualification_id == q.id,
                TrainingAttempt.mode == "test",
                TrainingAttempt.started_at > since,
            )
            .order_by(TrainingAttempt.started_at)
        )
    )
    left = max(0, q.max_attempts - len(started))
    next_at = None
    if left == 0:
        oldest = started[-q.max_attempts]
        next_at = _aware(oldest) + timedelta(hours=q.cooldown_hours)
    return {"used": len(started), "left": left, "max": q.max_attempts, "next_at": next_at}


def _aware(t: datetime) -> datetime:
    from datetime import UTC

    return t if t.tzinfo else t.replace(tzinfo=UTC)


def recent_attempts(session: Session, user: User, q: TrainingQualification | None = None, limit: int = 20):
    return list(
        session.scalars(
            sa.select(TrainingAttempt)
            .where(
                TrainingAttempt.user_id == user.id,
                *([TrainingAttempt.qualification_id == q.id] if q else []),
            )
            .order_by(TrainingAttempt.id.desc())
            .limit(limit)
        )
    )


def get_attempt(session: Session, user: User, attempt_id: int) -> TrainingAttempt:
    a = session.get(TrainingAttempt, attempt_id)
    if a is None or a.user_id != user.id:
        raise NotFound(tr("No attempt {attempt_id}.", attempt_id=attempt_id), code="training.attempt_not_found")
    return a


# --- scoring (pure) ------------------------------------------------------------------------------
def score_spans(answer: Sequence[Mapping[str, Any]], gold: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """An answer against the gold spans of one clip, with labels' matching (labels.aggregate.compare):
    the score is the right spans (matched with the same label) over every span in the comparison
    (matched, missed, or marked where the gold has none); nothing marked where nothing happens: 1."""
    mine = [SpanAnswer(0, 1, s["start_ms"], s["end_ms"], s["verb"], s["noun"]) for s in answer]
    ref = [SpanAnswer(0, 0, s["start_ms"], s["end_ms"], s["verb"], s["noun"]) for s in gold]
    if not mine:
        rows = [{"expected": r.label, "given": None, "iou": 0.0} for r in ref]
    else:
        rows = [{"expected": c.expected, "given": c.given, "iou": c.iou} for c in compare(mine, ref, IOU)]
    right = sum(1 for r in rows if r["expected"] is not None and r["expected"] == r["given"])
    score = right / len(rows) if rows else 1.0
    return {"score": round(score, 4), "comparisons": rows}


def _span_dicts(spans) -> list[dict[str, Any]]:
    return [{"start_ms": s.start_ms, "end_ms": s.end_ms, "verb": s.verb, "noun": s.noun} for s in spans]


def _annotation_result(session: Session, item: TrainingItem, spans: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    assert item.clip is not None
    parsed = tasks.check_spans(item.clip, [dict(s) for s in spans])
    yours = [s.model_dump() for s in parsed]
    right = _span_dicts(tasks.gold_spans(session, item.clip.id))
    return {
        "item": item.id,
        "kind": "annotate",
        "clip_id": item.clip.id,
        "yours": yours,
        "right": right,
        **score_spans(yours, right),
    }


def _recording_result(item: TrainingItem, report: Mapping[str, Any]) -> dict[str, Any]:
    checks = [{k: c.get(k) for k in ("name", "title", "status", "message", "advice")} for c in report.get("checks", [])]
    passed = report.get("status") == "qc_passed"
    return {
        "item": item.id,
        "kind": "record",
        "status": report.get("status"),
        "checks": checks,
        "score": 1.0 if passed else 0.0,
    }


def check_recording(path: str, *, palm_model: Any = None) -> dict[str, Any]:
    """QC a practice recording with the platform's default thresholds, in the media sandbox (the
    file is hostile input, as every upload). A file QC cannot read at all fails like a failed check."""
    from egocrowd.errors import MediaError
    from egocrowd.media.bounded import call_bounded
    from egocrowd.media.qc.report import run_qc

    try:
        return call_bounded(run_qc, path, None, palm_model=palm_model, timeout_s=120).to_dict()
    except MediaError as exc:
        return {
            "status": "qc_failed",
            "checks": [
                {
                    "name": "readable",
                    "title": READABLE[0],
                    "status": "fail",
                    "message": READABLE[1],
                    "advice": READABLE[2],
                    "detail": str(exc),
                }
            ],
        }


# --- practice ------------------------------------------------------------------------------------
def _worker(user: User) -> User:
    if user.role is not Role.worker:
        raise Forbidden(_("Training is for workers."), code="auth.forbidden", action="training.take")
    return user


def practise(
    session: Session,
    user: User,
    item_id: int,
    *,
    spans: Sequence[Mapping[str, Any]] | None = None,
    report: Mapping[str, Any] | None = None,
) -> TrainingAttempt:
    """One practice answer, scored at once: spans for an annotation item, a QC report (from
    :func:`check_recording`) for a recording item."""
    _worker(user)
    item = get_item(session, item_id)
    if item.use != "practice":
        raise Forbidden(_("This item belongs to a test."), code="training.item_not_open")
    result = _result(session, item, spans, report)
    now = db_now(session)
    a = TrainingAttempt(
        qualification_id=item.qualification_id,
        user_id=user.id,
        mode="practice",
        items=[item.id],
        result={"items": [result]},
        started_at=now,
        finished_at=now,
        score=round(result["score"] * 100, 1),
    )
    session.add(a)
    session.flush()
    return a


def _result(session: Session, item: TrainingItem, spans, report) -> dict[str, Any]:
    if item.kind == "annotate":
        return _annotation_result(session, item, spans or [])
    if report is None:
        raise InvalidInput(_("Send a recording for this item."), code="training.recording_missing", item=item.id)
    return _recording_result(item, report)


# --- tests ---------------------------------------------------------------------------------------
def start_test(session: Session, user: User, slug: str, *, rng: random.Random | None = None) -> TrainingAttempt:
    """A test: its open one if there is one, else a new draw (refused when the worker holds the
    qualification already or has used their attempts in the window)."""
    _worker(user)
    q = get_qualification(session, slug)
    if holds(session, user, q.slug):
        raise Conflict(_("You hold this qualification already."), code="training.already_qualified")
    open_ = session.scalar(
        sa.select(TrainingAttempt).where(
            TrainingAttempt.user_id == user.id,
            TrainingAttempt.qualification_id == q.id,
            TrainingAttempt.mode == "test",
            TrainingAttempt.finished_at.is_(None),
        )
    )
    if open_ is not None:
        return open_
    now = db_now(session)
    window = attempts_window(session, user, q, now)
    if window["left"] == 0:
        raise TooManyRequests(
            tr("You have used your {count} tests for now; practise, then try again later.", count=q.max_attempts),
            code="training.attempts_exhausted",
            retry_at=window["next_at"].isoformat(),
        )
    pool = items_of(session, q, "test")
    drawn = (rng or random.SystemRandom()).sample(pool, min(q.test_items, len(pool)))
    a = TrainingAttempt(
        qualification_id=q.id,
        user_id=user.id,
        mode="test",
        items=sorted(i.id for i in drawn),
        result={},
        started_at=now,
    )
    session.add(a)
    session.flush()
    audit.record(session, user, "training.test_started", a, {"qualification": q.slug, "items": a.items})
    return a


def submit_test(
    session: Session,
    user: User,
    attempt_id: int,
    *,
    spans: Mapping[int, Sequence[Mapping[str, Any]]] | None = None,
    reports: Mapping[int, Mapping[str, Any]] | None = None,
) -> TrainingAttempt:
    """Score a test: ``spans`` per annotation item id, ``reports`` (QC) per recording item id; an
    item left unanswered scores 0. At the pass mark, the qualification is granted (earned)."""
    a = get_attempt(session, user, attempt_id)
    if a.mode != "test":
        raise Conflict(_("This attempt is not a test."), code="training.attempt_not_test")
    if a.finished_at is not None:
        raise Conflict(_("This test is finished."), code="training.attempt_finished")
    spans, reports = spans or {}, reports or {}
    results = []
    for item_id in a.items:
        item = get_item(session, item_id)
        if item.kind == "annotate":
            results.append(_annotation_result(session, item, spans.get(item_id, [])))
        elif item_id in reports:
            results.append(_recording_result(item, reports[item_id]))
        else:
            results.append({"item": item_id, "kind": "record", "status": None, "checks": [], "score": 0.0})
    q = a.qualification
    a.score = round(100 * sum(r["score"] for r in results) / len(results), 1) if results else 0.0
    a.passed = a.score >= q.pass_mark
    a.result = {"items": results, "pass_mark": q.pass_mark}
    a.finished_at = db_now(session)
    audit.record(
        session, user, "training.test_finished", a, {"qualification": q.slug, "score": a.score, "passed": a.passed}
    )
    if a.passed and not holds(session, user, q.slug):
        grant = Qualification(
            user_id=user.id,
            skill=q.slug,
            campaign_id=None,
            granted_by=None,
            granted_at=a.finished_at,
            note=f"passed test {a.id}",
        )
        session.add(grant)
        session.flush()
        audit.record(session, user, "qualification.earned", grant, {"skill": q.slug, "attempt": a.id})
    return a


def video_file(session: Session, user: User, clip: Clip, blobs) -> Any:
    """The de-identified video of a training clip (never the raw footage; a withdrawn clip is gone
    from training as from everywhere)."""
    from egocrowd.clips import media

    media.refuse_withdrawn(session, user, clip)
    if not media.derived_ready_for(user, clip):
        raise media.not_deidentified(user, clip)
    d = session.get(Derivative, clip.derived_id)
    if d is None or not blobs.exists(d.sha256):
        raise Conflict(
            tr("Clip {id}'s derived video is missing from storage.", id=clip.id), code="clip.derived_missing"
        )
    return media.MediaFile(d.sha256, d.mime_type or "video/mp4", f"training-{clip.id}.mp4")


def requirements(session: Session, user: User, campaign: Any) -> dict[str, Any] | None:
    """What ``campaign`` asks of workers and where ``user`` stands (the campaign page's block);
    None when it asks nothing. The same checks as the claim (campaigns.assignments)."""
    slug, need = campaign.required_qualification, campaign.min_level
    if not slug and not need:
        return None
    q = session.scalar(sa.select(TrainingQualification).where(TrainingQualification.slug == slug)) if slug else None
    held = bool(slug) and rule.holds_qualification(session, user.id, slug, campaign.id)
    level = rule.recording_level(session, user.id) if need else None
    return {
        "qualification": q,
        "slug": slug,
        "held": held,
        "min_level": need,
        "level": level,
        "ok": (not slug or held) and (not need or (level or 0) >= need),
    }
