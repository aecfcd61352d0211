"""The ``aggregate`` stage end to end with an inline runner (k answers in, consensus spans, agreement
and the clip's label state out; disagreeing answers to a reviewer) and the reviewer's span fix."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from egocrowd.db.models import (
    AnnotationTask,
    AuditEvent,
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
from egocrowd.labels import consensus, tasks
from egocrowd.pipeline.executors import InlineExecutor
from egocrowd.pipeline.runner import Runner
from tests.labels.annotating import accepted_clip, annotation_campaign, annotator, span
from tests.platform.helpers import make_user

# the pure aggregation comes from branch agg; until it is merged there is nothing to run
pytest.importorskip("egocrowd.labels.aggregate")

AGREE = [
    [span(0, 1000, "open", "jar"), span(1500, 2800, "close", "lid")],
    [span(100, 1100, "open", "jar"), span(1400, 2700, "close", "lid")],
    [span(0, 900, "open", "jar"), span(1600, 2900, "close", "lid")],
]
DISAGREE = [
    [span(0, 2900, "pour", "water")],
    [span(100, 600, "open", "jar"), span(2000, 2900, "wipe", "table")],
    [span(1000, 1500, "fold", "towel")],
]


def _answer(db, staff, clip_id: int, answers: list[list[dict]]) -> list:
    people = [annotator(db, staff) for _ in answers]
    for person, spans in zip(people, answers, strict=True):
        with db.transaction() as s:
            task = tasks.claim_task(s, s.get_one(User, person.id))
            assert task.clip_id == clip_id
            late = task.claimed_at + timedelta(seconds=10)
            tasks.submit(s, s.get_one(User, person.id), task.id, spans, nothing_happens=not spans, now=late)
    return people


def _run(app, db) -> int:
    runner = Runner(db, app.state.blobs, InlineExecutor(), settings=app.state.settings)
    return runner.drain()


@pytest.fixture
def scene(world, app, tmp_path):
    staff = make_user(world.db, "reviewer")
    cid = annotation_campaign(world, per_clip=3, min_agreement=0.6)
    clip = accepted_clip(world.db, app.state.blobs, tmp_path, cid, world.worker.id)
    return staff, clip


def test_agreeing_answers_become_consensus_spans(world, app, scene):
    staff, clip = scene
    _answer(world.db, staff, clip, AGREE)
    assert _run(app, world.db) == 1
    with world.db.transaction() as s:
        c = s.get_one(Clip, clip)
        assert c.label_status is LabelStatus.done
        assert c.agreement["round"] == 1 and c.agreement["annotators"] == 3
        assert c.agreement["alpha"] >= 0.6 and c.agreement["mean_iou"] > 0.7
        assert c.agreement["method"]
        spans = s.scalars(sa.select(Span).where(Span.clip_id == clip, Span.kind == SpanKind.consensus)).all()
        got = sorted((x.verb, x.noun, x.support) for x in spans)
        assert got == [("close", "lid", 3), ("open", "jar", 3)]
        opened = next(x for x in spans if x.verb == "open")
        assert opened.start_ms == 0 and opened.end_ms == 1000  # the median boundaries
        assert all(0 < x.confidence <= 1 for x in spans)
        assert s.scalar(sa.select(sa.func.count()).select_from(ReviewItem)) == 0
        ev = s.scalars(sa.select(AuditEvent).where(AuditEvent.action == "clip.labels_aggregated")).one()
        assert ev.payload["label_status"] == "done"


def test_disagreeing_answers_go_to_a_reviewer_who_fixes_them(world, app, scene):
    staff, clip = scene
    _answer(world.db, staff, clip, DISAGREE)
    _run(app, world.db)
    with world.db.transaction() as s:
        c = s.get_one(Clip, clip)
        assert c.label_status is LabelStatus.review
        assert c.agreement["alpha"] is None or c.agreement["alpha"] < 0.6
        item = s.scalars(sa.select(ReviewItem).where(ReviewItem.clip_id == clip)).one()
        assert item.kind is ReviewKind.spans and item.audience == "platform" and item.state is ReviewState.open
        item_id = item.id
        shown = consensus.spans_for_review(s, c)
        assert len(shown["answers"]) == 3
    with world.db.transaction() as s, pytest.raises(NotFound):
        consensus.fix_spans(s, s.get_one(User, world.worker.id), item_id, [span(0, 1000)])
    with world.db.transaction() as s:
        fixed = consensus.fix_spans(
            s, s.get_one(User, staff.id), item_id, [span(0, 1000), span(1500, 2900, "wipe", "table")]
        )
        assert len(fixed) == 2
    with world.db.transaction() as s:
        c = s.get_one(Clip, clip)
        assert c.label_status is LabelStatus.done
        live = s.scalars(
            sa.select(Span).where(
                Span.clip_id == clip, Span.kind.in_((SpanKind.consensus, SpanKind.review)), Span.superseded_at.is_(None)
            )
        ).all()
        assert sorted((x.kind, x.verb) for x in live) == [(SpanKind.review, "open"), (SpanKind.review, "wipe")]
        item = s.get_one(ReviewItem, item_id)
        assert item.state is ReviewState.done and item.decision == "fixed" and item.decided_by == staff.id
    with world.db.transaction() as s, pytest.raises(Conflict) as e:
        consensus.fix_spans(s, s.get_one(User, staff.id), item_id, [span(0, 1000)])
    assert e.value.code == "review.already_decided"


def test_an_empty_answer_counts_as_disagreement(world, app, scene):
    staff, clip = scene
    _answer(world.db, staff, clip, [AGREE[0], AGREE[1], []])
    _run(app, world.db)
    with world.db.transaction() as s:
        c = s.get_one(Clip, clip)
        assert c.agreement["annotators"] == 3


def test_a_clip_sent_back_is_annotated_again_in_a_new_round(world, app, scene):
    staff, clip = scene
    first = _answer(world.db, staff, clip, AGREE)
    _run(app, world.db)
    with world.db.transaction() as s:
        assert tasks.reopen_annotation(s, None, s.get_one(Clip, clip), "audit") == 2
    _answer(world.db, staff, clip, DISAGREE)
    _run(app, world.db)
    with world.db.transaction() as s:
        c = s.get_one(Clip, clip)
        assert c.agreement["round"] == 2 and c.label_status is LabelStatus.review
        rounds = s.scalars(sa.select(AnnotationTask.round).where(AnnotationTask.clip_id == clip)).all()
        assert sorted(rounds) == [1, 1, 1, 2, 2, 2]
        # the first round's consensus is superseded, not deleted
        old = s.scalars(
            sa.select(Span).where(Span.clip_id == clip, Span.kind == SpanKind.consensus, Span.round == 1)
        ).all()
        assert old and all(x.superseded_at is not None for x in old)
    assert len(first) == 3


def test_gold_answers_teach_the_model_but_get_no_consensus(world, app, scene, tmp_path):
    staff, clip = scene
    cid = None
    with world.db.transaction() as s:
        cid = s.get_one(Clip, clip).campaign_id
    gold = accepted_clip(world.db, app.state.blobs, tmp_path, cid, world.worker.id)
    with world.db.transaction() as s:
        tasks.set_gold(s, s.get_one(User, staff.id), gold, [span(0, 1000, "open", "jar")])
    _answer(world.db, staff, clip, AGREE)
    _run(app, world.db)
    with world.db.transaction() as s:
        assert (
            s.scalar(
                sa.select(sa.func.count())
                .select_from(Span)
                .where(Span.clip_id == gold, Span.kind == SpanKind.consensus)
            )
            == 0
        )
        assert s.get_one(Clip, clip).label_status is LabelStatus.done


def test_acceptance_opens_annotation_only_where_asked(world, app, tmp_path):
    """review.accept_clip is the one door into annotation: a campaign that asks for labels gets an
    ``annotating`` clip, one that does not gets none."""
    from egocrowd.db.models import ClipStatus
    from egocrowd.labels import review
    from tests.support.deid import add_clip, make_video

    video = make_video(tmp_path / "v.mp4")
    asks = annotation_campaign(world)
    plain = world.open_campaign()["id"]
    ids = [
        add_clip(world.db, app.state.blobs, campaign_id=c, worker_id=world.worker.id, raw=video, derived=None)
        for c in (asks, plain)
    ]
    with world.db.transaction() as s:
        for cid in ids:
            review.accept_clip(s, s.get_one(Clip, cid), None, how="auto")
    with world.db.transaction() as s:
        got = [(s.get_one(Clip, c).status, s.get_one(Clip, c).label_status) for c in ids]
    assert got == [(ClipStatus.accepted, LabelStatus.annotating), (ClipStatus.accepted, None)]


def test_the_stage_loads_no_heavy_library_until_it_computes():
    """Looking the stage up (as the web server and the worker's parent do) imports neither pandas
    nor crowd-kit: only ``compute`` does."""
    import subprocess
    import sys

    code = (
        "import sys, egocrowd.web.app, egocrowd.worker;"
        "from egocrowd.pipeline.stages import STAGES; STAGES.get('aggregate');"
        "print(sorted(m for m in ('pandas', 'crowdkit', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_the_label_model_learns_from_a_bounded_window(world, app, tmp_path, monkeypatch):
    staff = make_user(world.db, "reviewer")
    cid = annotation_campaign(world, per_clip=1)
    clips = [accepted_clip(world.db, app.state.blobs, tmp_path, cid, world.worker.id) for _ in range(4)]
    for clip in clips[:3]:
        _answer(world.db, staff, clip, [AGREE[0]])
        _run(app, world.db)
    _answer(world.db, staff, clips[3], [AGREE[1]])
    monkeypatch.setattr(consensus, "TRAINING_CLIPS", 1)
    with world.db.transaction() as s:
        inputs = consensus._prepare(s, s.get_one(Clip, clips[3]), None)  # type: ignore[arg-type]
    assert sorted({a[0] for a in inputs["answers"]}) == [clips[2], clips[3]]  # itself and the latest one
    assert sorted(inputs["submitted"]) == [clips[2], clips[3]]
