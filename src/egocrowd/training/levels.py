"""A worker's skill level per task kind (record, annotate, review), with what the next level needs.

The rule is campaigns.levels' (one rule, checked by claims too). What counts as done work and
accuracy per kind:
- record: accepted clips; the share of decided clips that were accepted;
- annotate: annotation tasks submitted; accuracy against gold clips (labels.quality);
- review: review decisions made; their own gold accuracy as annotators (a reviewer judges labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd.campaigns import levels as rule
from egocrowd.db.models import ReviewItem, User
from egocrowd.i18n import N_
from egocrowd.labels import quality

KINDS = ("record", "annotate", "review")
#: the names of the kinds as people read them (translated where shown)
KIND_LABELS = {"record": N_("Recording"), "annotate": N_("Annotation"), "review": N_("Review")}


@dataclass(frozen=True)
class Level:
    kind: str
    level: int
    done: int
    accuracy: float | None
    next_level: int | None
    need_done: int | None  # how much more work the next level needs (0: enough)
    need_accuracy: float | None  # the accuracy it needs

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "level": self.level,
            "done": self.done,
            "accuracy": self.accuracy,
            "next_level": self.next_level,
            "need_done": self.need_done,
            "need_accuracy": self.need_accuracy,
        }


def level(kind: str, done: int, accuracy: float | None) -> Level:
    have = rule.level_for(done, accuracy)
    nxt = rule.next_threshold(have)
    return Level(
        kind,
        have,
        done,
        None if accuracy is None else round(accuracy, 4),
        nxt.level if nxt else None,
        max(0, nxt.done - done) if nxt else None,
        nxt.accuracy if nxt else None,
    )


def worker_levels(session: Session, user: User) -> list[Level]:
    accepted, decided = rule.recording_record(session, user.id)
    report = quality.annotator_report(session, user.id)
    reviews = session.scalar(sa.select(sa.func.count()).select_from(ReviewItem).where(ReviewItem.decided_by == user.id))
    return [
        level("record", accepted, accepted / decided if decided else None),
        level("annotate", report.tasks_submitted, report.gold_accuracy),
        level("review", int(reviews or 0), report.gold_accuracy),
    ]
