"""The ``aggregate`` pipeline stage and the reviewer's fix of disagreeing spans (#10; docs/labels.md).

When a clip's round has its k answers (labels.tasks.submit), the stage runs:
- ``prepare`` gathers the campaign's answers of every clip whose round is complete (the label model,
  Dawid–Skene, learns each annotator's confusions from all of them), the answers on gold clips, and
  the gold reference spans;
- ``compute`` is :func:`egocrowd.labels.aggregate.aggregate_spans` (pure, in the executor);
- ``apply`` stores this clip's consensus spans (earlier ones superseded) and its agreement, and marks
  the labels ``done`` — or, when the annotators agree less than the campaign's ``min_agreement``
  (Krippendorff's alpha; no alpha counts as too little), ``review``, with a ``spans`` review item for
  a platform reviewer, who fixes them with :func:`fix_spans`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.accounts import policy
from egocrowd.clock import db_now
from egocrowd.db.models import (
    AUDIENCE_PLATFORM,
    AnnotationTask,
    AnnotationTaskStatus,
    Clip,
    LabelStatus,
    ReviewItem,
    ReviewKind,
    ReviewState,
    Span,
    SpanKind,
    User,
)
from egocrowd.errors import Conflict, NotFound
from egocrowd.labels import review, tasks
from egocrowd.pipeline.stages import StageContext, stage

#: spans of two annotators whose temporal IoU is at least this are taken as the same action
IOU_THRESHOLD = 0.3
#: the label model learns from this clip, the campaign's gold clips and this many of its latest
#: aggregated clips: enough to know each annotator, and each run's cost stays bounded as the
#: campaign grows (all of a large campaign, once per clip, would grow with its square)
TRAINING_CLIPS = 2000


def aggregation_round(clip: Clip) -> int:
    """The round the stage aggregates: the open one, or (an operator running it again) the last."""
    if clip.label_status is LabelStatus.annotating:
        return tasks.open_round(clip)
    return int((clip.agreement or {}).get("round", 1))


def _prepare(session: Session, clip: Clip, ctx: StageContext) -> dict[str, Any]:
    rnd = aggregation_round(clip)

    def counts(cid: int, task_round: int, is_gold: bool, agreement: dict[str, Any] | None) -> bool:
        """Whether an answer enters this aggregation: this clip's round, every answer on a gold
        clip, the aggregated round of every other clip (rounds still open are left out)."""
        if cid == clip.id:
            return task_round == rnd
        if is_gold:
            return True
        return agreement is not None and task_round == agreement.get("round")

    recent = sa.select(Clip.id).where(
        Clip.campaign_id == clip.campaign_id,
        Clip.is_gold.is_(False),
        Clip.label_status.in_((LabelStatus.done, LabelStatus.review)),
        Clip.id != clip.id,
    )
    learn_from = {clip.id, *session.scalars(recent.order_by(Clip.id.desc()).limit(TRAINING_CLIPS))}
    learn_from |= set(
        session.scalars(sa.select(Clip.id).where(Clip.campaign_id == clip.campaign_id, Clip.is_gold.is_(True)))
    )
    ids = sorted(learn_from)

    submitted: dict[int, set[int]] = {}
    for cid, annotator, task_round, is_gold, agreement in session.execute(
        sa.select(
            AnnotationTask.clip_id, AnnotationTask.annotator_id, AnnotationTask.round, Clip.is_gold, Clip.agreement
        )
        .join(Clip, Clip.id == AnnotationTask.clip_id)
        .where(AnnotationTask.clip_id.in_(ids), AnnotationTask.status == AnnotationTaskStatus.submitted)
    ):
        if counts(cid, task_round, is_gold, agreement):
            submitted.setdefault(cid, set()).add(annotator)
    answers = [
        (cid, author, start, end, verb, noun)
        for cid, author, start, end, verb, noun, span_round, is_gold, agreement in session.execute(
            sa.select(
                Span.clip_id,
                Span.author_id,
                Span.start_ms,
                Span.end_ms,
                Span.verb,
                Span.noun,
                Span.round,
                Clip.is_gold,
                Clip.agreement,
            )
            .join(AnnotationTask, AnnotationTask.id == Span.task_id)
            .join(Clip, Clip.id == Span.clip_id)
            .where(
                Span.clip_id.in_(ids),
                Span.kind == SpanKind.answer,
                AnnotationTask.status == AnnotationTaskStatus.submitted,
            )
            .order_by(Span.id)
        )
        if counts(cid, span_round, is_gold, agreement)
    ]
    gold = session.execute(
        sa.select(Span.clip_id, Span.author_id, Span.start_ms, Span.end_ms, Span.verb, Span.noun)
        .join(Clip, Clip.id == Span.clip_id)
        .where(Clip.campaign_id == clip.campaign_id, Span.kind == SpanKind.gold, Span.superseded_at.is_(None))
        .order_by(Span.id)
    ).all()
    return {
        "clip_id": clip.id,
        "round": rnd,
        "answers": answers,
        "gold": [tuple(g) for g in gold],
        # annotators who answered "nothing happens" count too: they disagree with every span
        "submitted": {cid: sorted(people) for cid, people in sorted(submitted.items())},
        "iou_threshold": IOU_THRESHOLD,
    }


def _apply(session: Session, clip: Clip, result: dict[str, Any]) -> str | None:
    if result["round"] != aggregation_round(clip) or clip.is_gold:
        return None  # the clip moved on (sent back again, made gold) while this ran: a newer run follows
    now = db_now(session)
    for old in session.scalars(
        sa.select(Span).where(Span.clip_id == clip.id, Span.kind == SpanKind.consensus, Span.superseded_at.is_(None))
    ):
        old.superseded_at = now
    for s in result["spans"]:
        session.add(
            Span(
                clip_id=clip.id,
                kind=SpanKind.consensus,
                round=result["round"],
                start_ms=s["start_ms"],
                end_ms=s["end_ms"],
                verb=s["verb"],
                noun=s["noun"],
                confidence=s["confidence"],
                support=s["support"],
                created_at=now,
            )
        )
    agreement = {**result["agreement"], "round": result["round"], "method": result["method"]}
    clip.agreement = agreement
    alpha = agreement.get("alpha")
    bar = tasks.settings_of(clip.campaign).min_agreement
    if alpha is None or alpha < bar:
        clip.label_status = LabelStatus.review
        review.open_item(session, clip, ReviewKind.spans, audience=AUDIENCE_PLATFORM)
    else:
        clip.label_status = LabelStatus.done
    audit.record(
        session,
        None,
        "clip.labels_aggregated",
        clip,
        {**agreement, "spans": len(result["spans"]), "label_status": clip.label_status.value},
    )
    return None


def _give_up(session: Session, clip: Clip, code: str) -> None:
    """An accepted clip stays accepted: a person fixes its labels instead."""
    clip.label_status = LabelStatus.review
    review.open_item(session, clip, ReviewKind.spans, audience=AUDIENCE_PLATFORM)


def _put_back(session: Session, clip: Clip) -> None:
    """Running the stage again changes nothing the clip shows until it has run."""


@stage("aggregate", "1", prepare=_prepare, apply=_apply, give_up=_give_up, put_back=_put_back)
def compute_aggregate(inputs: dict[str, Any]) -> dict[str, Any]:
    """Consensus spans of a clip from its annotators' answers (temporal IoU, Dawid–Skene)."""
    # Imported here: the aggregation pulls in pandas and crowd-kit (slow to import), which the web
    # server and the worker's parent process must not load at start-up.
    from egocrowd.labels.aggregate import SpanAnswer, aggregate_spans

    answers = [SpanAnswer(*a) for a in inputs["answers"]]
    gold = [SpanAnswer(*g) for g in inputs["gold"]]
    agg = aggregate_spans(answers, gold=gold, iou_threshold=inputs["iou_threshold"], submitted=inputs["submitted"])
    cid = inputs["clip_id"]
    spans = [
        {
            "start_ms": int(s.start_ms),
            "end_ms": int(s.end_ms),
            "verb": s.verb,
            "noun": s.noun,
            "confidence": float(s.confidence),
            "support": int(s.support),
        }
        for s in agg.spans
        if s.clip == cid
    ]
    mine = agg.clips.get(cid)
    return {
        "round": inputs["round"],
        "spans": sorted(spans, key=lambda s: (s["start_ms"], s["end_ms"], s["verb"], s["noun"])),
        "agreement": {
            "alpha": None if mine is None or mine.alpha is None else float(mine.alpha),
            "mean_iou": None if mine is None or mine.mean_iou is None else float(mine.mean_iou),
            "annotators": 0 if mine is None else int(mine.annotators),
        },
        "method": dict(agg.method),
    }


# --- the reviewer's fix --------------------------------------------------------------------------
def get_spans_item(session: Session, reviewer: User, item_id: int) -> ReviewItem:
    """A spans review item ``reviewer`` may decide; 404 otherwise."""
    item = session.get(ReviewItem, item_id)
    if item is None or item.kind is not ReviewKind.spans or not policy.can(reviewer, "review.decide", item):
        raise NotFound(f"No span review {item_id}.", code="review.not_found")
    return item


def spans_for_review(session: Session, clip: Clip) -> dict[str, Any]:
    """What the reviewer sees: each annotator's answer of the latest round and the consensus."""
    rnd = aggregation_round(clip)
    answers: dict[int, list[Span]] = {}
    for s in session.scalars(
        sa.select(Span)
        .join(AnnotationTask, AnnotationTask.id == Span.task_id)
        .where(
            Span.clip_id == clip.id,
            Span.kind == SpanKind.answer,
            Span.round == rnd,
            AnnotationTask.status == AnnotationTaskStatus.submitted,
        )
        .order_by(Span.author_id, Span.start_ms)
    ):
        answers.setdefault(s.author_id or 0, []).append(s)
    consensus = list(
        session.scalars(
            sa.select(Span)
            .where(
                Span.clip_id == clip.id,
                Span.kind.in_((SpanKind.consensus, SpanKind.review)),
                Span.superseded_at.is_(None),
            )
            .order_by(Span.start_ms)
        )
    )
    # annotators are numbered, not named: the reviewer judges answers, not people
    return {"answers": [answers[k] for k in sorted(answers)], "consensus": consensus}


def fix_spans(
    session: Session, reviewer: User, item_id: int, spans: Sequence[tasks.SpanIn | dict[str, Any]]
) -> list[Span]:
    """The reviewer's spans replace the consensus of a clip whose annotators disagreed; the item is
    decided ``fixed`` (once: a second reviewer at the same moment gets ``review.already_decided``)."""
    item = get_spans_item(session, reviewer, item_id)
    if item.state is not ReviewState.open:
        raise Conflict("Someone else decided this item already.", code="review.already_decided")
    clip = item.clip
    parsed = tasks.check_spans(clip, spans)
    review.decide_item(session, reviewer, item.id, "fixed")
    now = db_now(session)
    for old in session.scalars(
        sa.select(Span).where(
            Span.clip_id == clip.id, Span.kind.in_((SpanKind.consensus, SpanKind.review)), Span.superseded_at.is_(None)
        )
    ):
        old.superseded_at = now
    rnd = aggregation_round(clip)
    new = tasks.span_rows(
        parsed, clip_id=clip.id, kind=SpanKind.review, author_id=reviewer.id, round=rnd, confidence=1.0, created_at=now
    )
    session.add_all(new)
    clip.label_status = LabelStatus.done
    audit.record(session, reviewer, "clip.spans_fixed", clip, {"item_id": item.id, "spans": len(new), "round": rnd})
    return new
