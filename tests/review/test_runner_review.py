"""Review findings on the pipeline runner: a stage that legitimately runs longer than the lease."""

from __future__ import annotations

import os
import threading
import time

import pytest
import sqlalchemy as sa

from egocrowd import clips
from egocrowd.blobs import BlobStore
from egocrowd.db.models import Clip, Job, JobStatus
from egocrowd.pipeline.executors import get_executor
from egocrowd.pipeline.runner import Runner, RunnerConfig, enqueue
from egocrowd.pipeline.stages import stage
from tests.platform.helpers import make_user, open_campaign, publish_consent

LEASE_S = 1.5


def _prepare(session, clip, blobs):
    return {"clip_id": clip.id}


def _apply(session, clip, result):
    clip.client_meta = {**clip.client_meta, "slow_stage": result["ok"]}
    return None


def _slow(inputs):
    time.sleep(LEASE_S * 3)  # alive and working, just slower than one lease (QC may take 900 s > 600 s)
    return {"ok": "yes"}


@pytest.fixture
def slow_stage(scratch_registries):
    stage("review_slow", "1", prepare=_prepare, apply=_apply)(_slow)


def test_a_live_worker_keeps_its_lease_while_a_stage_outlasts_it(client, db, settings, tmp_path, slow_stage):
    """Leases were never renewed: a stage running longer than ``lease_s`` (QC's own bound is 900 s,
    the default lease 600 s; or jobs queued behind others of the same batch on the inline executor)
    was taken over by another worker while the first was still computing: the work ran twice, the
    first result was thrown away, and every takeover counted as an attempt until the clip ended in
    ``error`` ("the worker running it died repeatedly") although nobody died."""
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab S")
    worker = make_user(db, "worker")
    c = open_campaign(client, lab)
    blobs = BlobStore(settings.blobs_path)
    f = tmp_path / "x.mp4"
    f.write_bytes(os.urandom(1000))
    cid = clips.finish_upload(db, blobs, source_ref="t:slow", path=f, worker_id=worker.id, assignment_id=None,
                              campaign_id=c["id"], original_name="x.mp4").id
    with db.transaction() as s:
        enqueue(s, s.get(Clip, cid), "review_slow")
        s.execute(sa.delete(Job).where(Job.clip_id == cid, Job.stage != "review_slow"))

    def runner(name):
        return Runner(db, blobs, get_executor("inline"), RunnerConfig(lease_s=LEASE_S, backoff_base_s=0.05),
                      owner=name)

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
