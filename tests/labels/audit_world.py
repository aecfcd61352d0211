"""A labelled campaign written straight into the database for the audit, quality and interop tests:
the rows the annotation and aggregation work writes (annotation tasks, answer spans, gold spans,
consensus spans, the clips' label state and agreement), made from a simulated crowd
(``labels.simulate``) whose annotators' accuracy and confusions are known."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from datetime import timedelta

from egocrowd.clock import utcnow
from egocrowd.db.models import (
    AnnotationTask,
    AnnotationTaskStatus,
    Clip,
    ClipStatus,
    LabelStatus,
    Span,
    SpanKind,
)
from egocrowd.labels.aggregate import aggregate_spans
from egocrowd.labels.simulate import Crowd, default_annotators, simulate_crowd
from tests.platform.helpers import Actor, make_user

FPS = 25.0


@dataclass
class Stored:
    campaign_id: int
    crowd: Crowd
    clip_of: dict[int, int]  # simulated clip -> clip id
    user_of: dict[int, int]  # simulated annotator -> user id
    annotators: dict[int, Actor]  # simulated annotator -> their account
    reviewer: Actor
    gold_clips: set[int] = field(default_factory=set)  # clip ids

    @property
    def sim_of_user(self) -> dict[int, int]:
        return {u: a for a, u in self.user_of.items()}


def taxonomy_of(labels: list[str]) -> dict[str, list[str]]:
    return {
        "verbs": sorted({x.split(" ")[0] for x in labels}),
        "nouns": sorted({x.split(" ")[1] for x in labels}),
    }


def labelled_campaign(world, *, clips: int = 120, gold: int = 12, seed: int = 3, annotators=None) -> Stored:
    """An open campaign of ``world``'s lab with ``clips`` accepted, annotated and aggregated clips,
    the first ``gold`` of them gold clips (the crowd's truth as a reviewer's reference)."""
    crowd = simulate_crowd(clips, annotators=annotators or default_annotators(count=8, bad=2, seed=seed), seed=seed)
    campaign = world.open_campaign(
        taxonomy=taxonomy_of(crowd.labels), annotation={"enabled": True, "per_clip": 3}, target_clips=clips + 10
    )
    reviewer = make_user(world.db, "reviewer")
    people = {a.id: make_user(world.db, "worker", token=True) for a in crowd.annotators}
    user_of = {a: p.id for a, p in people.items()}
    gold_sim = set(sorted(crowd.clip_ms)[:gold])
    gold_spans = crowd.gold(gold)
    with warnings.catch_warnings():  # crowd-kit's own use of a pandas call that pandas deprecates
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        agg = aggregate_spans(crowd.answers)
    now = utcnow()
    clip_of: dict[int, int] = {}
    with world.db.transaction() as s:
        for sim_clip, length in sorted(crowd.clip_ms.items()):
            digest = hashlib.sha256(f"{campaign['id']}:{sim_clip}:{seed}".encode()).hexdigest()
            ca = agg.clips.get(sim_clip)
            clip = Clip(
                campaign_id=campaign["id"],
                worker_id=world.worker.id,
                source_ref=f"test:{digest[:20]}",
                sha256=digest,
                size=1000 + sim_clip,
                original_name="kitchen.mp4",
                client_meta={},
                status=ClipStatus.accepted,
                decided_at=now,
                probe={"fps": FPS, "duration_s": length / 1000, "display_width": 640, "display_height": 360},
                label_status=LabelStatus.done,
                agreement={
                    "alpha": ca.alpha if ca else None,
                    "mean_iou": ca.mean_iou if ca else None,
                    "annotators": ca.annotators if ca else 0,
                    "round": 1,
                },
                is_gold=sim_clip in gold_sim,
            )
            s.add(clip)
            s.flush()
            clip_of[sim_clip] = clip.id
        tasks: dict[tuple[int, int], int] = {}
        for sim_clip, who in crowd.submitted.items():
            for a in who:
                t = AnnotationTask(
                    clip_id=clip_of[sim_clip],
                    campaign_id=campaign["id"],
                    annotator_id=user_of[a],
                    round=1,
                    is_gold=sim_clip in gold_sim,
                    status=AnnotationTaskStatus.submitted,
                    claimed_at=now - timedelta(minutes=20),
                    lease_expires_at=now + timedelta(minutes=10),
                    submitted_at=now,
                )
                s.add(t)
                s.flush()
                tasks[(sim_clip, a)] = t.id
        for a in crowd.answers:
            s.add(
                Span(
                    clip_id=clip_of[a.clip],
                    kind=SpanKind.answer,
                    task_id=tasks[(a.clip, a.annotator)],
                    author_id=user_of[a.annotator],
                    round=1,
                    start_ms=a.start_ms,
                    end_ms=a.end_ms,
                    verb=a.verb,
                    noun=a.noun,
                )
            )
        for g in gold_spans:
            s.add(
                Span(
                    clip_id=clip_of[g.clip],
                    kind=SpanKind.gold,
                    author_id=reviewer.id,
                    start_ms=g.start_ms,
                    end_ms=g.end_ms,
                    verb=g.verb,
                    noun=g.noun,
                )
            )
        for c in agg.spans:
            if c.clip in gold_sim:
                continue
            s.add(
                Span(
                    clip_id=clip_of[c.clip],
                    kind=SpanKind.consensus,
                    start_ms=c.start_ms,
                    end_ms=c.end_ms,
                    verb=c.verb,
                    noun=c.noun,
                    confidence=c.confidence,
                    support=c.support,
                )
            )
    return Stored(
        campaign_id=campaign["id"],
        crowd=crowd,
        clip_of=clip_of,
        user_of=user_of,
        annotators=people,
        reviewer=reviewer,
        gold_clips={clip_of[c] for c in gold_sim},
    )
