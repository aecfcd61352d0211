"""Annotation as a task kind (#10; docs/labels.md): qualifications, annotation tasks claimed under a
lease, submitting spans, and gold clips with reviewer-made reference spans.

A clip accepted on a campaign that asks for labels becomes ``label_status = annotating``
(:func:`open_annotation`). Tasks are made when claimed: ``per_clip`` (k) of them per clip and round,
each by a different qualified annotator, never the clip's own worker. With probability
``gold_rate`` a claim hands out a gold clip instead (``task.is_gold``), never marked as such to the
annotator. When a clip's round has k submitted answers, the ``aggregate`` stage is queued
(labels.consensus).

Rounds: a clip's current round is one more than the round of its latest aggregation
(``clip.agreement["round"]``), or the ``reopened_round`` a label audit wrote there, so a clip sent
back for re-annotation starts a fresh round without a column of its own.

Concurrency, as in campaigns.assignments: the annotator's user row is locked while their open tasks
are counted (the cap), then the clip row while its round's tasks are counted, so two claims never
take the last slot of a clip twice; the unique (clip, annotator, round) stops a double claim. Submit,
release and expiry are conditional UPDATEs on ``status = 'active'``. Lock order: user, then clip.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from pydantic import Field, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from egocrowd import audit, telemetry
from egocrowd.accounts import policy
from egocrowd.campaigns.schema import AnnotationSettings
from egocrowd.clock import db_now, utcnow
from egocrowd.db.models import (
    AnnotationTask,
    AnnotationTaskStatus,
    Campaign,
    Clip,
    ClipStatus,
    LabelStatus,
    Qualification,
    Span,
    SpanKind,
    User,
)
from egocrowd.errors import Conflict, EgocrowdError, Forbidden, Gone, InvalidInput, NotFound
from egocrowd.inputs import InputModel
from egocrowd.pay import answers as pay_answers
from egocrowd.pay import budgets, rates
from egocrowd.pipeline import runner

T = AnnotationTaskStatus
SKILL = "annotate"
#: the most spans one answer (or a gold or review set) may hold
MAX_SPANS = 200
#: an answer sent in less than this share of the clip's length after the claim is flagged "too_fast"
TOO_FAST_SHARE = 0.5
#: how many candidate clips one claim looks at before saying there is no work
_CANDIDATES = 200


class SpanIn(InputModel):
    """One span as an annotator (or a reviewer) sends it: milliseconds of the clip's time."""

    start_ms: int = Field(ge=0, le=24 * 3600 * 1000)
    end_ms: int = Field(ge=0, le=24 * 3600 * 1000)
    verb: str = Field(min_length=1, max_length=60)
    noun: str = Field(min_length=1, max_length=60)


def span_rows(parsed: Sequence[SpanIn], *, clip_id: int, kind: SpanKind, author_id: int, **columns: Any) -> list[Span]:
    """Rows for the spans one person sent (an answer, a gold clip's reference, a reviewer's fix),
    as :func:`check_spans` gave them; ``columns``: the rest of each row (round, task, time...)."""
    return [
        Span(
            clip_id=clip_id,
            kind=kind,
            author_id=author_id,
            start_ms=s.start_ms,
            end_ms=s.end_ms,
            verb=s.verb,
            noun=s.noun,
            **columns,
        )
        for s in parsed
    ]


def settings_of(campaign: Campaign) -> AnnotationSettings:
    """The campaign's annotation settings ({} in the column means the defaults)."""
    return AnnotationSettings.model_validate(campaign.annotation or {})


def open_round(clip: Clip) -> int:
    """The round a task claimed on ``clip`` now belongs to (see the module doc): the next one after
    its latest aggregation, or the one a label audit reopened (``agreement["reopened_round"]``).
    Not :func:`latest_rounds`, the round a clip's answers are in so far."""
    agreement = clip.agreement or {}
    reopened = agreement.get("reopened_round")
    if isinstance(reopened, int):
        return reopened
    return int(agreement.get("round", 0)) + 1


def latest_rounds(session: Session, clips: Sequence[Clip]) -> dict[int, int]:
    """Each clip's latest round, the one its latest answers are in (what a label audit judges): the
    highest round of its tasks (1 with none), or the round an audit reopened it for. For a clip
    whose answers were aggregated this is one less than :func:`open_round`, the round to come."""
    ids = [c.id for c in clips]
    highest: dict[int, int] = {}
    for chunk in range(0, len(ids), 500):
        part = ids[chunk : chunk + 500]
        rows = session.execute(
            sa.select(AnnotationTask.clip_id, sa.func.max(AnnotationTask.round))
            .where(AnnotationTask.clip_id.in_(part))
            .group_by(AnnotationTask.clip_id)
        )
        highest.update({clip_id: top for clip_id, top in rows})
    out = {}
    for c in clips:
        reopened = (c.agreement or {}).get("reopened_round")
        out[c.id] = int(reopened) if isinstance(reopened, int) else int(highest.get(c.id) or 1)
    return out


def duration_ms(clip: Clip) -> int | None:
    """The clip's length in ms, from its probe (None: not probed)."""
    seconds = (clip.probe or {}).get("duration_s")
    return int(round(float(seconds) * 1000)) if seconds else None


# --- qualifications ------------------------------------------------------------------------------
def grant(
    session: Session, actor: User, user_id: int, skill: str = SKILL, campaign_id: int | None = None, note: str = ""
) -> Qualification:
    """Let ``user_id`` do ``skill`` work (on one campaign, or on all with None)."""
    policy.require(actor, "qualification.grant")
    target = session.get(User, user_id)
    if target is None:
        raise NotFound(f"No user {user_id}.", code="user.not_found")
    if skill != SKILL:
        raise InvalidInput(f"Unknown skill {skill!r}; known: {SKILL}.", code="qualification.unknown_skill")
    if not policy.can(target, "annotation.take"):
        raise InvalidInput("Only workers can be qualified to annotate.", code="qualification.not_a_worker")
    if campaign_id is not None and session.get(Campaign, campaign_id) is None:
        raise NotFound(f"No campaign {campaign_id}.", code="campaign.not_found")
    existing = session.scalar(_live_qualifications(user_id, skill).where(_same_scope(campaign_id)))
    if existing is not None:
        return existing  # granting twice changes nothing and writes nothing
    q = Qualification(user_id=user_id, skill=skill, campaign_id=campaign_id, granted_by=actor.id, note=note[:500])
    session.add(q)
    audit.record(
        session, actor, "qualification.granted", q, {"user_id": user_id, "skill": skill, "campaign_id": campaign_id}
    )
    return q


def grant_by_email(
    session: Session, actor: User, email: str, campaign_id: int | None = None, note: str = ""
) -> Qualification:
    """:func:`grant` to the account with this email (the staff page's form)."""
    policy.require(actor, "qualification.grant")
    target = session.scalar(sa.select(User).where(sa.func.lower(User.email) == email.strip().lower()))
    if target is None:
        raise NotFound(f"No account has the email {email.strip()!r}.", code="user.not_found")
    return grant(session, actor, target.id, SKILL, campaign_id, note)


def annotators(session: Session, actor: User) -> list[tuple[Qualification, User]]:
    """Every live annotation qualification with its person, newest first (staff)."""
    policy.require(actor, "qualification.grant")
    rows = session.execute(
        sa.select(Qualification, User)
        .join(User, User.id == Qualification.user_id)
        .where(Qualification.skill == SKILL, Qualification.revoked_at.is_(None))
        .order_by(Qualification.id.desc())
        .limit(500)
    ).all()
    return [(q, u) for q, u in rows]


def revoke(session: Session, actor: User, qualification_id: int) -> Qualification:
    policy.require(actor, "qualification.grant")
    q = session.get(Qualification, qualification_id)
    if q is None:
        raise NotFound(f"No qualification {qualification_id}.", code="qualification.not_found")
    if q.revoked_at is None:
        q.revoked_at = db_now(session)
        audit.record(session, actor, "qualification.revoked", q, {"user_id": q.user_id, "skill": q.skill})
    return q


def list_qualifications(session: Session, actor: User, user_id: int) -> list[Qualification]:
    """A person's qualifications, live and revoked (staff, or the person themselves)."""
    if actor.id != user_id:
        policy.require(actor, "qualification.grant")
    return list(
        session.scalars(sa.select(Qualification).where(Qualification.user_id == user_id).order_by(Qualification.id))
    )


def is_qualified(session: Session, user: User, campaign: Campaign | None = None) -> bool:
    """``user`` may annotate ``campaign``'s clips (None: some campaign's: "may I annotate at all?")."""
    q = _live_qualifications(user.id, SKILL)
    if campaign is not None:
        q = q.where(sa.or_(Qualification.campaign_id.is_(None), Qualification.campaign_id == campaign.id))
    return session.scalar(q.limit(1)) is not None


def _live_qualifications(user_id: int, skill: str) -> sa.Select[Qualification]:
    return sa.select(Qualification).where(
        Qualification.user_id == user_id, Qualification.skill == skill, Qualification.revoked_at.is_(None)
    )


def _same_scope(campaign_id: int | None) -> sa.ColumnElement[bool]:
    col = Qualification.campaign_id
    return col.is_(None) if campaign_id is None else col == campaign_id


def _qualified_campaigns(session: Session, user: User) -> sa.ColumnElement[bool]:
    """Clips' campaigns ``user`` may annotate, as a WHERE clause on Clip."""
    general = session.scalar(_live_qualifications(user.id, SKILL).where(Qualification.campaign_id.is_(None)).limit(1))
    if general is not None:
        return sa.true()
    return Clip.campaign_id.in_(
        sa.select(Qualification.campaign_id).where(
            Qualification.user_id == user.id, Qualification.skill == SKILL, Qualification.revoked_at.is_(None)
        )
    )


# --- the clip's side ------------------------------------------------------------------------------
def open_annotation(session: Session, clip: Clip) -> bool:
    """Called when ``clip`` is accepted (labels.review.accept_clip): if its campaign asks for
    labels, annotation tasks may now be claimed on it. Returns whether it did anything."""
    if not settings_of(clip.campaign).enabled or clip.label_status is not None:
        return False
    clip.label_status = LabelStatus.annotating
    audit.record(session, None, "clip.annotation_opened", clip, {"round": open_round(clip)})
    return True


def reopen_annotation(
    session: Session,
    actor: User | None,
    clip: Clip,
    reason: str,
    *,
    new_round: int | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Send ``clip``'s spans back for a fresh round of annotation (a label audit found them
    doubtful): the one way a clip is reopened. ``new_round`` defaults to :func:`open_round`; it is
    recorded as ``agreement["reopened_round"]`` so every reader agrees. Returns the new round."""
    if clip.is_gold:
        raise Conflict("A gold clip is not annotated in rounds.", code="annotation.gold_clip")
    rnd = open_round(clip) if new_round is None else new_round
    before = clip.label_status.value if clip.label_status else None
    clip.label_status = LabelStatus.annotating
    clip.agreement = {**(clip.agreement or {}), "reopened_round": rnd}
    clip.updated_at = utcnow()
    audit.record(
        session,
        actor,
        "clip.labels_reopened",
        clip,
        {"round": rnd, "reason": reason, "label_status_before": before, **(details or {})},
    )
    return rnd


# --- claiming ------------------------------------------------------------------------------------
def _lock(session: Session, table: Any, row_id: int) -> None:
    session.execute(sa.select(table.id).where(table.id == row_id).with_for_update(key_share=True))


def _open_tasks(session: Session, user_id: int, now: datetime) -> int:
    """Tasks the annotator holds now (a lease that ran out no longer counts, swept or not)."""
    return session.execute(
        sa.select(sa.func.count())
        .select_from(AnnotationTask)
        .where(
            AnnotationTask.annotator_id == user_id,
            AnnotationTask.status == T.active,
            AnnotationTask.lease_expires_at > now,
        )
    ).scalar_one()


def _taken_in_round(session: Session, clip_id: int, rnd: int, now: datetime) -> int:
    """A clip's round slots taken: answers in, and leases still running."""
    return session.execute(
        sa.select(sa.func.count())
        .select_from(AnnotationTask)
        .where(
            AnnotationTask.clip_id == clip_id,
            AnnotationTask.round == rnd,
            sa.or_(
                AnnotationTask.status == T.submitted,
                sa.and_(AnnotationTask.status == T.active, AnnotationTask.lease_expires_at > now),
            ),
        )
    ).scalar_one()


def _candidates(session: Session, user: User, campaign_id: int | None, *, gold: bool) -> list[Clip]:
    """Clips ``user`` might annotate, oldest first: not their own, never handed to them before."""
    done_before = sa.select(AnnotationTask.clip_id).where(AnnotationTask.annotator_id == user.id)
    q = (
        sa.select(Clip)
        .where(
            Clip.is_gold.is_(gold),
            Clip.worker_id != user.id,
            Clip.id.not_in(done_before),
            Clip.status == ClipStatus.accepted,
            _qualified_campaigns(session, user),
        )
        .order_by(Clip.id)
        .limit(_CANDIDATES)
    )
    if not gold:
        q = q.where(Clip.label_status == LabelStatus.annotating)
    if campaign_id is not None:
        q = q.where(Clip.campaign_id == campaign_id)
    clips = list(session.scalars(q))
    # a gold clip is mixed only into campaigns that ask for labels (their own or its twin's)
    return [c for c in clips if settings_of(c.campaign).enabled]


@telemetry.count_outcomes(telemetry.CLAIMS, EgocrowdError, kind="annotation")
def claim_task(
    session: Session,
    user: User,
    *,
    campaign_id: int | None = None,
    lease: timedelta = timedelta(minutes=60),
    max_open: int = 3,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> AnnotationTask:
    """Hand ``user`` the next annotation task (see the module doc). ``rng`` decides gold mixing
    (tests pass a seeded one)."""
    now = now or db_now(session)
    rng = rng or random.SystemRandom()
    policy.require(user, "annotation.take")
    campaign = None
    if campaign_id is not None:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None or not settings_of(campaign).enabled:
            raise NotFound(f"No annotation work in campaign {campaign_id}.", code="annotation.campaign_not_found")
    if not is_qualified(session, user, campaign):
        raise Forbidden(
            "You are not qualified to annotate yet: a reviewer grants the qualification.",
            code="annotation.not_qualified",
        )

    _lock(session, User, user.id)
    held = _open_tasks(session, user.id, now)
    if held >= max_open:
        raise Conflict(
            f"You already hold {held} annotation tasks; submit or release one first.",
            code="annotation.worker_cap",
            limit=max_open,
        )

    regular = _candidates(session, user, campaign_id, gold=False)
    gold = _candidates(session, user, campaign_id, gold=True)
    order = regular
    # Gold at the rate of the campaign whose clip would come next, and only while regular work is
    # left: a gold clip handed out when nothing else is would stand out
    if regular and gold and rng.random() < settings_of(regular[0].campaign).gold_rate:
        order = [c for c in gold if c.campaign_id == regular[0].campaign_id] + regular
    for clip in order:
        task = _take(session, user, clip, now, lease)
        if task is not None:
            return task
    raise Conflict("There is no annotation work for you right now; try again later.", code="annotation.no_tasks")


def _take(session: Session, user: User, clip: Clip, now: datetime, lease: timedelta) -> AnnotationTask | None:
    _lock(session, Clip, clip.id)
    session.refresh(clip)
    rnd = 1 if clip.is_gold else open_round(clip)
    if not clip.is_gold:
        if clip.label_status is not LabelStatus.annotating:
            return None
        if _taken_in_round(session, clip.id, rnd, now) >= settings_of(clip.campaign).per_clip:
            return None
    task = AnnotationTask(
        clip_id=clip.id,
        campaign_id=clip.campaign_id,
        annotator_id=user.id,
        round=rnd,
        is_gold=clip.is_gold,
        status=T.active,
        claimed_at=now,
        lease_expires_at=now + lease,
        flags=[],
    )
    try:
        with session.begin_nested():
            session.add(task)
            session.flush()
    except IntegrityError:
        raise Conflict("You already have a task on this clip.", code="annotation.already_claimed") from None
    audit.record(
        session,
        user,
        "annotation.claimed",
        task,
        {"clip_id": clip.id, "round": rnd, "gold": clip.is_gold, "lease_expires_at": task.lease_expires_at},
    )
    return task


# --- the annotator's side ------------------------------------------------------------------------
def get_task(session: Session, user: User, task_id: int) -> AnnotationTask:
    """The annotator's own task (staff may look at any); others: 404."""
    task = session.get(AnnotationTask, task_id)
    if task is None or not (task.annotator_id == user.id or policy.can(user, "labels.gold")):
        raise NotFound(f"No annotation task {task_id}.", code="annotation.not_found")
    return task


def list_tasks(session: Session, user: User, *, active_only: bool = False, limit: int = 100) -> list[AnnotationTask]:
    q = sa.select(AnnotationTask).where(AnnotationTask.annotator_id == user.id).order_by(AnnotationTask.id.desc())
    if active_only:
        q = q.where(AnnotationTask.status == T.active, AnnotationTask.lease_expires_at > db_now(session))
    return list(session.scalars(q.limit(limit)))


def answer_spans(session: Session, task: AnnotationTask) -> list[Span]:
    return list(
        session.scalars(
            sa.select(Span)
            .where(Span.task_id == task.id, Span.kind == SpanKind.answer)
            .order_by(Span.start_ms, Span.id)
        )
    )


def check_spans(clip: Clip, spans: Sequence[SpanIn | dict[str, Any]]) -> list[SpanIn]:
    """Spans valid on ``clip``: ordered, inside the clip, labels from its campaign's taxonomy."""
    if len(spans) > MAX_SPANS:
        raise InvalidInput(f"At most {MAX_SPANS} spans per answer.", code="annotation.too_many_spans", limit=MAX_SPANS)
    try:
        parsed = [s if isinstance(s, SpanIn) else SpanIn.model_validate(s) for s in spans]
    except ValidationError as exc:
        raise InvalidInput(
            "A span needs start_ms and end_ms (whole milliseconds, 0 or more), a verb and a noun.",
            code="annotation.bad_span",
            errors=[e["msg"] for e in exc.errors()][:5],
        ) from None
    length = duration_ms(clip)
    if length is None:
        raise Conflict("This clip's length is not known yet.", code="annotation.clip_not_probed")
    verbs = set((clip.campaign.taxonomy or {}).get("verbs", []))
    nouns = set((clip.campaign.taxonomy or {}).get("nouns", []))
    for i, s in enumerate(parsed, 1):
        if s.end_ms <= s.start_ms:
            raise InvalidInput(f"Span {i} ends before it starts.", code="annotation.span_reversed", span=i)
        if s.end_ms > length:
            raise InvalidInput(
                f"Span {i} ends at {s.end_ms / 1000:.2f} s, after the clip ({length / 1000:.2f} s).",
                code="annotation.span_outside_clip",
                span=i,
                duration_ms=length,
            )
        if s.verb not in verbs or s.noun not in nouns:
            raise InvalidInput(
                f"Span {i}: “{s.verb} {s.noun}” is not in this campaign's list of actions.",
                code="annotation.unknown_label",
                span=i,
            )
    return parsed


def submit(
    session: Session,
    user: User,
    task_id: int,
    spans: Sequence[SpanIn | dict[str, Any]],
    *,
    nothing_happens: bool = False,
    idle_seconds: int | None = None,
    now: datetime | None = None,
) -> AnnotationTask:
    """Store the annotator's answer once (see the module doc). An empty answer must say so with
    ``nothing_happens``; a non-empty one may not. ``idle_seconds``: the idle time the page saw
    (kept within claim → submit; pay.rates). A campaign that pays for annotation pays the answer
    (pay.answers)."""
    now = now or db_now(session)
    task = get_task(session, user, task_id)
    if task.annotator_id != user.id:
        raise NotFound(f"No annotation task {task_id}.", code="annotation.not_found")
    # Where the task stands first: a late or second answer is told so, whatever it holds
    if task.status is T.submitted:
        raise Conflict("This answer was already sent.", code="annotation.already_submitted")
    if task.status is T.expired or (task.status is T.active and task.lease_expires_at <= now):
        raise Gone("The time to annotate this clip ran out; claim a new task.", code="annotation.lease_expired")
    parsed = check_spans(task.clip, spans)
    if not parsed and not nothing_happens:
        raise InvalidInput(
            "Mark at least one action, or tick “Nothing from the list happens in this clip”.",
            code="annotation.empty_answer",
        )
    if parsed and nothing_happens:
        raise InvalidInput("You marked actions and also said nothing happens.", code="annotation.contradictory")
    done = cast(
        "sa.CursorResult[Any]",
        session.execute(
            sa.update(AnnotationTask)
            .where(
                AnnotationTask.id == task.id, AnnotationTask.status == T.active, AnnotationTask.lease_expires_at > now
            )
            .values(status=T.submitted, submitted_at=now)
            .execution_options(synchronize_session=False)
        ),
    )
    if done.rowcount != 1:
        session.refresh(task)
        if task.status is T.submitted:
            raise Conflict("This answer was already sent.", code="annotation.already_submitted")
        if task.status is T.expired or task.lease_expires_at <= now:
            raise Gone("The time to annotate this clip ran out; claim a new task.", code="annotation.lease_expired")
        raise Conflict(f"This task was {task.status.value}.", code="annotation.not_active")
    session.refresh(task)
    session.add_all(
        span_rows(
            parsed, clip_id=task.clip_id, kind=SpanKind.answer, author_id=user.id, task_id=task.id, round=task.round
        )
    )
    flags: list[str] = []
    length = duration_ms(task.clip) or 0
    if (now - task.claimed_at).total_seconds() * 1000 < TOO_FAST_SHARE * length:
        flags.append("too_fast")
    if nothing_happens:
        flags.append("nothing_happens")
    task.flags = flags
    if idle_seconds is not None:
        task.idle_seconds = rates.clamp_idle(idle_seconds, task.claimed_at, now)
    audit.record(
        session,
        user,
        "annotation.submitted",
        task,
        {"clip_id": task.clip_id, "round": task.round, "spans": len(parsed), "flags": flags},
    )
    session.flush()
    pay_answers.pay_for_answer(session, task, None, fee_bps=budgets.fee_bps())
    if not task.is_gold:
        _maybe_aggregate(session, task.clip, task.round)
    return task


def _maybe_aggregate(session: Session, clip: Clip, rnd: int) -> None:
    """Queue the ``aggregate`` stage when the clip's round has its k answers."""
    _lock(session, Clip, clip.id)
    answers = session.execute(
        sa.select(sa.func.count())
        .select_from(AnnotationTask)
        .where(
            AnnotationTask.clip_id == clip.id,
            AnnotationTask.round == rnd,
            AnnotationTask.status == T.submitted,
            AnnotationTask.is_gold.is_(False),
        )
    ).scalar_one()
    if answers == settings_of(clip.campaign).per_clip:
        runner.enqueue(session, clip, "aggregate")


def release(session: Session, user: User, task_id: int) -> AnnotationTask:
    """The annotator gives the task back: someone else may take the clip's slot."""
    task = get_task(session, user, task_id)
    if task.annotator_id != user.id:
        raise NotFound(f"No annotation task {task_id}.", code="annotation.not_found")
    done = cast(
        "sa.CursorResult[Any]",
        session.execute(
            sa.update(AnnotationTask)
            .where(AnnotationTask.id == task.id, AnnotationTask.status == T.active)
            .values(status=T.released)
            .execution_options(synchronize_session=False)
        ),
    )
    if done.rowcount != 1:
        session.refresh(task)
        raise Conflict(
            f"This task is {task.status.value}; only active ones can be given back.", code="annotation.not_active"
        )
    session.refresh(task)
    audit.record(session, user, "annotation.released", task, {"clip_id": task.clip_id})
    return task


def expire_leases(session: Session, now: datetime | None = None) -> int:
    """Mark tasks whose lease ran out as expired (housekeeping). Returns how many."""
    now = now or db_now(session)
    rows = session.execute(
        sa.update(AnnotationTask)
        .where(AnnotationTask.status == T.active, AnnotationTask.lease_expires_at <= now)
        .values(status=T.expired)
        .returning(AnnotationTask.id, AnnotationTask.annotator_id, AnnotationTask.clip_id)
        .execution_options(synchronize_session=False)
    ).all()
    for tid, uid, cid in sorted(rows):
        audit.record(
            session,
            None,
            "annotation.expired",
            tid,
            {"annotator_id": uid, "clip_id": cid},
            entity_type="annotation_task",
        )
    return len(rows)


# --- gold ----------------------------------------------------------------------------------------
def get_gold_clip(session: Session, reviewer: User, clip_id: int) -> Clip:
    policy.require(reviewer, "labels.gold")
    clip = session.get(Clip, clip_id)
    if clip is None:
        raise NotFound(f"No clip {clip_id}.", code="clip.not_found")
    return clip


def gold_spans(session: Session, clip_id: int) -> list[Span]:
    return _live_spans(session, clip_id, SpanKind.gold)


def _live_spans(session: Session, clip_id: int, *kinds: SpanKind) -> list[Span]:
    return list(
        session.scalars(
            sa.select(Span)
            .where(Span.clip_id == clip_id, Span.kind.in_(kinds), Span.superseded_at.is_(None))
            .order_by(Span.start_ms, Span.id)
        )
    )


def set_gold(session: Session, reviewer: User, clip_id: int, spans: Sequence[SpanIn | dict[str, Any]]) -> list[Span]:
    """Reviewer-made reference spans on an accepted clip, which becomes a gold clip: mixed into
    annotators' work unmarked, and never counted toward consensus. New spans supersede old ones."""
    clip = get_gold_clip(session, reviewer, clip_id)
    if clip.status is not ClipStatus.accepted:
        raise Conflict("Only an accepted clip can be a gold clip.", code="annotation.gold_not_accepted")
    parsed = check_spans(clip, spans)
    if not parsed:
        raise InvalidInput("A gold clip needs at least one reference span.", code="annotation.empty_answer")
    _lock(session, Clip, clip.id)
    now = db_now(session)
    old = gold_spans(session, clip.id)
    for s in old:
        s.superseded_at = now
    new = span_rows(parsed, clip_id=clip.id, kind=SpanKind.gold, author_id=reviewer.id, created_at=now)
    session.add_all(new)
    clip.is_gold = True
    audit.record(session, reviewer, "clip.gold_set", clip, {"spans": len(new), "replaced": len(old)})
    return new
