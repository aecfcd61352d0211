"""Annotation tasks (labels.tasks) on SQLite and PostgreSQL: qualifications, claims (own clip never,
k per clip, the cap, gold mixed in at its rate), leases, submitting spans and what is refused."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from egocrowd import audit
from egocrowd.db.models import (
    AnnotationTask,
    AnnotationTaskStatus,
    AuditEvent,
    Clip,
    Job,
    LabelStatus,
    Span,
    SpanKind,
    User,
)
from egocrowd.errors import Conflict, EgocrowdError, Forbidden, Gone, InvalidInput
from egocrowd.labels import tasks
from tests.labels.annotating import accepted_clip, annotation_campaign, annotator, span
from tests.platform.helpers import make_user


@pytest.fixture
def setup(world, app, tmp_path):
    staff = make_user(world.db, "reviewer")
    cid = annotation_campaign(world)
    clips = [accepted_clip(world.db, app.state.blobs, tmp_path, cid, world.worker.id) for _ in range(2)]
    return world, staff, cid, clips


def _user(s, actor):
    return s.get_one(User, actor.id)


def claim(db, actor, **kw):
    with db.transaction() as s:
        t = tasks.claim_task(s, _user(s, actor), **kw)
        return t.id, t.clip_id, t.is_gold


def submit(db, actor, task_id, spans, *, late_s: float = 10.0, **kw):
    """Submit as if ``late_s`` seconds after the claim (not too fast for a 3 s clip)."""
    with db.transaction() as s:
        t = s.get_one(AnnotationTask, task_id)
        return tasks.submit(
            s, _user(s, actor), task_id, spans, now=t.claimed_at + timedelta(seconds=late_s), **kw
        ).flags


def test_only_qualified_workers_claim_and_grants_are_audited(setup):
    world, staff, cid, _ = setup
    with pytest.raises(Forbidden) as e:
        claim(world.db, make_user(world.db, "worker"))
    assert e.value.code == "annotation.not_qualified"
    with pytest.raises(Forbidden):
        claim(world.db, staff)  # reviewers review; they do not take tasks
    other = annotator(world.db, staff)
    assert claim(world.db, other)[1] is not None
    with world.db.transaction() as s:
        q = tasks.list_qualifications(s, _user(s, staff), other.id)[0]
        tasks.revoke(s, _user(s, staff), q.id)
        actions = [e.action for e in audit.find(s, entity_type="qualification")]
    assert actions == ["qualification.granted", "qualification.revoked"]
    with pytest.raises(Forbidden):
        claim(world.db, other)
    with world.db.transaction() as s, pytest.raises(Forbidden):
        tasks.grant(s, s.get_one(User, world.worker.id), other.id)  # a worker grants nothing


def test_campaign_scoped_qualification(setup):
    world, staff, cid, _ = setup
    scoped = annotator(world.db, staff, campaign_id=cid)
    _, clip, _ = claim(world.db, scoped, campaign_id=cid)
    with world.db.transaction() as s:
        assert s.get_one(Clip, clip).campaign_id == cid


def test_nobody_annotates_their_own_clip(setup):
    world, staff, cid, clips = setup
    with world.db.transaction() as s:
        tasks.grant(s, _user(s, staff), world.worker.id)
    with pytest.raises(Conflict) as e:
        claim(world.db, world.worker)
    assert e.value.code == "annotation.no_tasks"


def test_k_per_clip_each_clip_once_per_person_and_the_cap(setup):
    world, staff, cid, clips = setup
    people = [annotator(world.db, staff) for _ in range(4)]
    got = {p.id: [claim(world.db, p)[1] for _ in range(2)] for p in people[:3]}
    for ids in got.values():
        assert sorted(ids) == sorted(clips)  # both clips, never one twice
    with pytest.raises(Conflict) as e:
        claim(world.db, people[3])  # 3 per clip: both full
    assert e.value.code == "annotation.no_tasks"
    # the cap: settings.annotation_max_open
    with pytest.raises(Conflict) as e:
        claim(world.db, people[0], max_open=2)
    assert e.value.code == "annotation.worker_cap"


def test_released_and_expired_tasks_free_the_slot(setup):
    world, staff, cid, clips = setup
    people = [annotator(world.db, staff) for _ in range(4)]
    first = [claim(world.db, p, campaign_id=cid) for p in people[:3]]
    assert {c for _, c, _ in first} == {clips[0]}
    with world.db.transaction() as s:
        tasks.release(s, _user(s, people[0]), first[0][0])
        with pytest.raises(Conflict) as e:
            tasks.release(s, _user(s, people[0]), first[0][0])
        assert e.value.code == "annotation.not_active"
    assert claim(world.db, people[3])[1] == clips[0]
    # a lease that ran out no longer holds a slot, even before housekeeping sweeps it
    with world.db.transaction() as s:
        t = s.get_one(AnnotationTask, first[1][0])
        t.lease_expires_at = t.claimed_at - timedelta(seconds=1)
    fifth = annotator(world.db, staff)
    assert claim(world.db, fifth)[1] == clips[0]
    with world.db.transaction() as s:
        assert tasks.expire_leases(s) == 1
        assert tasks.expire_leases(s) == 0
        assert s.get_one(AnnotationTask, first[1][0]).status is AnnotationTaskStatus.expired


def test_late_submit_is_gone_and_nothing_is_stored(setup):
    world, staff, cid, clips = setup
    a = annotator(world.db, staff)
    tid, _, _ = claim(world.db, a, lease=timedelta(minutes=5))
    for answer in ([span(0, 1000)], [span(0, 99_000)]):
        with pytest.raises(Gone) as e:
            submit(world.db, a, tid, answer, late_s=301)
        assert e.value.code == "annotation.lease_expired"
    with world.db.transaction() as s:
        tasks.expire_leases(s, now=s.get_one(AnnotationTask, tid).lease_expires_at)
    with pytest.raises(Gone):
        submit(world.db, a, tid, [span(0, 1000)], late_s=1)
    with world.db.transaction() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Span)) == 0


def test_double_submit_stores_once(setup):
    world, staff, cid, clips = setup
    a = annotator(world.db, staff)
    tid, clip, _ = claim(world.db, a)
    assert submit(world.db, a, tid, [span(0, 1000), span(1200, 2900, "close", "lid")]) == []
    for again in ([span(0, 1000)], [span(0, 99_000)]):  # a second answer is told so, even a bad one
        with pytest.raises(Conflict) as e:
            submit(world.db, a, tid, again)
        assert e.value.code == "annotation.already_submitted"
    with world.db.transaction() as s:
        rows = s.scalars(sa.select(Span).where(Span.task_id == tid)).all()
        assert [(r.start_ms, r.end_ms, r.verb, r.noun, r.kind, r.author_id) for r in rows] == [
            (0, 1000, "open", "jar", SpanKind.answer, a.id),
            (1200, 2900, "close", "lid", SpanKind.answer, a.id),
        ]


@pytest.mark.parametrize(
    ("spans", "code"),
    [
        ([span(1000, 3001)], "annotation.span_outside_clip"),
        ([span(2000, 1000)], "annotation.span_reversed"),
        ([span(1000, 1000)], "annotation.span_reversed"),
        ([span(0, 1000, "dance", "jar")], "annotation.unknown_label"),
        ([span(0, 1000, "open", "moon")], "annotation.unknown_label"),
        ([{"start_ms": -5, "end_ms": 10, "verb": "open", "noun": "jar"}], "annotation.bad_span"),
        ([{"start_ms": 0.5, "end_ms": 10, "verb": "open", "noun": "jar"}], "annotation.bad_span"),
        ([{"start_ms": 0, "end_ms": 10, "verb": "open"}], "annotation.bad_span"),
        ([span(0, 10)] * 201, "annotation.too_many_spans"),
        ([], "annotation.empty_answer"),
    ],
)
def test_bad_spans_are_refused_whole(setup, spans, code):
    world, staff, cid, clips = setup
    a = annotator(world.db, staff)
    tid, _, _ = claim(world.db, a)
    good_then_bad = [span(0, 500)] + spans if spans and code != "annotation.too_many_spans" else spans
    with pytest.raises(InvalidInput) as e:
        submit(world.db, a, tid, good_then_bad)
    assert e.value.code == code
    with world.db.transaction() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Span)) == 0
        assert s.get_one(AnnotationTask, tid).status is AnnotationTaskStatus.active  # may try again


def test_nothing_happens_and_too_fast_are_flagged(setup):
    world, staff, cid, clips = setup
    a, b = annotator(world.db, staff), annotator(world.db, staff)
    ta, _, _ = claim(world.db, a)
    with pytest.raises(InvalidInput) as e:
        submit(world.db, a, ta, [span(0, 10)], nothing_happens=True)
    assert e.value.code == "annotation.contradictory"
    assert submit(world.db, a, ta, [], nothing_happens=True) == ["nothing_happens"]
    tb, _, _ = claim(world.db, b)
    assert submit(world.db, b, tb, [span(0, 1000)], late_s=1.0) == ["too_fast"]  # 1 s for a 3 s clip
    with world.db.transaction() as s:
        ev = s.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "annotation.submitted").order_by(AuditEvent.id)
        ).all()
        assert [e.payload["flags"] for e in ev] == [["nothing_happens"], ["too_fast"]]


def test_only_the_annotator_submits(setup):
    world, staff, cid, clips = setup
    a, b = annotator(world.db, staff), annotator(world.db, staff)
    tid, _, _ = claim(world.db, a)
    with pytest.raises(EgocrowdError) as e:
        submit(world.db, b, tid, [span(0, 1000)])
    assert e.value.code == "annotation.not_found"


def test_k_answers_queue_the_aggregate_stage(setup):
    world, staff, cid, clips = setup
    people = [annotator(world.db, staff) for _ in range(3)]
    ids = [claim(world.db, p, campaign_id=cid)[0] for p in people]
    for p, tid in zip(people[:2], ids[:2], strict=True):
        submit(world.db, p, tid, [span(0, 1000)])
    with world.db.transaction() as s:
        assert s.scalars(sa.select(Job.stage).where(Job.clip_id == clips[0])).all() == []
    submit(world.db, people[2], ids[2], [span(0, 1000)])
    with world.db.transaction() as s:
        assert s.scalars(sa.select(Job.stage).where(Job.clip_id == clips[0])).all() == ["aggregate"]


def test_gold_is_mixed_in_at_its_rate_and_not_counted(world, app, tmp_path):
    staff = make_user(world.db, "reviewer")
    cid = annotation_campaign(world, gold_rate=0.3, per_clip=1)
    for _ in range(40):
        accepted_clip(world.db, app.state.blobs, tmp_path, cid, world.worker.id)
    golds = [accepted_clip(world.db, app.state.blobs, tmp_path, cid, world.worker.id) for _ in range(40)]
    with world.db.transaction() as s:
        for g in golds:
            tasks.set_gold(s, _user(s, staff), g, [span(0, 1000)])
        assert s.get_one(Clip, golds[0]).is_gold
    rng = random.Random(7)
    gold_count = 0
    for _ in range(40):
        a = annotator(world.db, staff)
        _, clip, is_gold = claim(world.db, a, rng=rng)
        assert is_gold == (clip in golds)
        gold_count += is_gold
    assert 6 <= gold_count <= 18, gold_count  # 40 draws at 0.3: 12 expected
    # gold tasks never count toward a clip's k, and gold clips never enter the regular pool
    with world.db.transaction() as s:
        assert all(s.get_one(Clip, g).label_status is LabelStatus.annotating for g in golds)


def test_set_gold_replaces_reference_spans(setup):
    world, staff, cid, clips = setup
    with world.db.transaction() as s:
        tasks.set_gold(s, _user(s, staff), clips[0], [span(0, 1000)])
        tasks.set_gold(s, _user(s, staff), clips[0], [span(100, 900, "close", "lid"), span(1000, 2000)])
        live = tasks.gold_spans(s, clips[0])
        assert [(x.start_ms, x.verb) for x in live] == [(100, "close"), (1000, "open")]
        assert s.scalar(sa.select(sa.func.count()).select_from(Span).where(Span.superseded_at.is_not(None))) == 1
    with world.db.transaction() as s, pytest.raises(Forbidden):
        tasks.set_gold(s, s.get_one(User, world.worker.id), clips[0], [span(0, 1000)])


def test_concurrent_claims_of_the_last_slot(world, app, tmp_path):
    """Eight annotators race for a clip with k=3: exactly three get it, on both databases."""
    staff = make_user(world.db, "reviewer")
    cid = annotation_campaign(world)
    clip = accepted_clip(world.db, app.state.blobs, tmp_path, cid, world.worker.id)
    people = [annotator(world.db, staff) for _ in range(8)]
    barrier = threading.Barrier(len(people))
    results: list[object] = []

    def go(p):
        barrier.wait()
        try:
            results.append(claim(world.db, p)[1])
        except Conflict as exc:
            results.append(exc.code)

    threads = [threading.Thread(target=go, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(str, results)) == sorted([str(clip)] * 3 + ["annotation.no_tasks"] * 5)
    with world.db.transaction() as s:
        assert (
            s.scalar(sa.select(sa.func.count()).select_from(AnnotationTask).where(AnnotationTask.clip_id == clip)) == 3
        )


def test_open_round_follows_aggregation_and_audits():
    clip = Clip(agreement=None)
    assert tasks.open_round(clip) == 1
    clip.agreement = {"round": 1, "alpha": 0.9}
    assert tasks.open_round(clip) == 2
    clip.agreement = {"round": 1, "reopened_round": 2}  # what labels.audits writes when it sends spans back
    assert tasks.open_round(clip) == 2


def test_two_submits_at_once_store_one_answer(setup):
    """The same answer sent twice at the same moment (a double tap, a retried request)."""
    world, staff, cid, clips = setup
    a = annotator(world.db, staff)
    tid, _, _ = claim(world.db, a)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def go():
        barrier.wait()
        try:
            submit(world.db, a, tid, [span(0, 1000)])
            outcomes.append("ok")
        except Conflict as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["annotation.already_submitted", "ok"]
    with world.db.transaction() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Span).where(Span.task_id == tid)) == 1
        events = s.scalars(sa.select(AuditEvent.action).where(AuditEvent.action == "annotation.submitted")).all()
        assert len(events) == 1


def test_housekeeping_expires_annotation_leases(setup, settings):
    from egocrowd.blobs import BlobStore
    from egocrowd.uploads import UploadStore
    from egocrowd.worker import housekeeping

    world, staff, cid, clips = setup
    a = annotator(world.db, staff)
    tid, _, _ = claim(world.db, a)
    with world.db.transaction() as s:
        t = s.get_one(AnnotationTask, tid)
        t.lease_expires_at = t.claimed_at - timedelta(seconds=1)
    done = housekeeping(world.db, BlobStore(settings.blobs_path), UploadStore(settings.uploads_path))
    assert done["annotation_leases_expired"] == 1
    with world.db.transaction() as s:
        assert s.get_one(AnnotationTask, tid).status is AnnotationTaskStatus.expired
        assert s.scalars(sa.select(AuditEvent.action).where(AuditEvent.action == "annotation.expired")).all() == [
            "annotation.expired"
        ]
