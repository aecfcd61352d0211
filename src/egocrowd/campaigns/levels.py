"""Skill levels (#15, docs/training.md): the one rule that turns a worker's record of work into a
level 1..5, and the recording level a claim checks.

The rule is pure: ``level_for(done, accuracy)`` is the highest level whose two thresholds are both
met — enough accepted work *and* good enough work. For recording, ``done`` is the worker's accepted
clips and ``accuracy`` the share of their decided clips (accepted or rejected) that were accepted.
The annotation and review levels (egocrowd.training.levels) use the same rule with gold accuracy.

It lives here, below training, because a claim must check a campaign's minimum level and campaigns
may not import training (pyproject.toml's layers): training builds on this module, not the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd.db.models import Assignment, AssignmentStatus, Qualification

MAX_LEVEL = 5


@dataclass(frozen=True)
class Threshold:
    level: int
    done: int  # accepted work (clips, annotation tasks, review decisions)
    accuracy: float  # 0..1


#: Level 1 is everyone's start; each later level needs both of its numbers.
THRESHOLDS: tuple[Threshold, ...] = (
    Threshold(1, 0, 0.0),
    Threshold(2, 5, 0.60),
    Threshold(3, 20, 0.75),
    Threshold(4, 60, 0.85),
    Threshold(5, 150, 0.92),
)


def level_for(done: int, accuracy: float | None) -> int:
    """The highest level whose thresholds ``done`` and ``accuracy`` both meet (unknown accuracy: 0)."""
    acc = accuracy or 0.0
    return max(t.level for t in THRESHOLDS if done >= t.done and acc >= t.accuracy)


def next_threshold(level: int) -> Threshold | None:
    """What the level after ``level`` needs; None at the top."""
    return next((t for t in THRESHOLDS if t.level == level + 1), None)


def recording_record(session: Session, worker_id: int) -> tuple[int, int]:
    """(accepted clips, decided clips) of one worker, from their settled assignments."""
    rows = dict(
        session.execute(
            sa.select(Assignment.status, sa.func.count())
            .where(
                Assignment.worker_id == worker_id,
                Assignment.status.in_([AssignmentStatus.accepted, AssignmentStatus.rejected]),
            )
            .group_by(Assignment.status)
        ).all()
    )
    accepted = int(rows.get(AssignmentStatus.accepted, 0))
    return accepted, accepted + int(rows.get(AssignmentStatus.rejected, 0))


def recording_level(session: Session, worker_id: int) -> int:
    accepted, decided = recording_record(session, worker_id)
    return level_for(accepted, accepted / decided if decided else None)


def holds_qualification(session: Session, user_id: int, slug: str, campaign_id: int | None = None) -> bool:
    """Whether the person holds the qualification ``slug``, not revoked (earned by a test or granted
    by staff): for every campaign, or also for ``campaign_id`` alone when one is given. The claim,
    the campaign page and the training pages all ask this one question."""
    scope: sa.ColumnElement[bool] = Qualification.campaign_id.is_(None)
    if campaign_id is not None:
        scope = sa.or_(scope, Qualification.campaign_id == campaign_id)
    found = session.scalar(
        sa.select(Qualification.id)
        .where(
            Qualification.user_id == user_id,
            Qualification.skill == slug,
            Qualification.revoked_at.is_(None),
            scope,
        )
        .limit(1)
    )
    return found is not None
