"""Operating the queue: list, retry failed jobs, requeue a stage (service and `egocrowd jobs`)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from egocrowd import clips
from egocrowd.blobs import BlobStore
from egocrowd.cli import main
from egocrowd.db.models import AuditEvent, Clip, ClipStatus, Job, JobStatus
from egocrowd.errors import InvalidInput
from egocrowd.pipeline import jobs as queue
from egocrowd.pipeline.executors import get_executor
from egocrowd.pipeline.runner import Runner
from tests.platform.helpers import make_user, open_campaign, publish_consent


@pytest.fixture
def processed(client, db, settings, qc_media):
    """Two campaigns' clips, run through probe and QC by the real runner."""
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    worker = make_user(db, "worker")
    loose = {"min_duration_s": 1, "min_width": 64, "min_height": 64}
    campaigns = [open_campaign(client, lab, requirements=loose)["id"] for _ in range(2)]
    blobs = BlobStore(settings.blobs_path)
    ids = [
        clips.finish_upload(
            db,
            blobs,
            source_ref=f"t:{i}",
            path=qc_media[name],
            worker_id=worker.id,
            assignment_id=None,
            campaign_id=cid,
            original_name=name,
        ).id
        for i, (name, cid) in enumerate([("good", campaigns[0]), ("dark", campaigns[1])])
    ]
    runner = Runner(db, blobs, get_executor("inline"))
    runner.drain(timeout_s=120)
    return {"clips": ids, "campaigns": campaigns, "runner": runner}


def _job(db, clip_id: int, stage: str) -> Job:
    with db.transaction(write=False) as s:
        job = s.scalar(sa.select(Job).where(Job.clip_id == clip_id, Job.stage == stage))
        s.expunge(job)  # a detached copy with its values loaded
        return job


def test_requeue_reruns_one_campaigns_stage_and_records_it(db, processed):
    good, dark = processed["clips"]
    assert _job(db, good, "qc").status is JobStatus.done
    with db.transaction() as s:
        ids = queue.requeue(s, queue.JobFilter(stage="qc", campaign_id=processed["campaigns"][0]))
    assert ids == [_job(db, good, "qc").id]
    with db.transaction(write=False) as s:
        assert s.get(Clip, good).status is ClipStatus.processing  # nobody reads a verdict about to change
        assert s.get(Clip, dark).status is not ClipStatus.processing
        events = s.scalars(sa.select(AuditEvent).where(AuditEvent.action == "job.requeued")).all()
        assert [(e.entity_id, e.payload["stage"], e.payload["was"]) for e in events] == [(str(good), "qc", "done")]
    assert _job(db, good, "qc").status is JobStatus.pending
    assert processed["runner"].drain(timeout_s=120) == 3  # qc, deidentify again (the plan re-used), review
    with db.transaction(write=False) as s:
        assert s.get(Clip, good).status is ClipStatus.qc_passed


def test_stale_picks_only_results_of_another_version(db, processed):
    good, dark = processed["clips"]
    with db.transaction() as s:
        s.get(Job, _job(db, dark, "qc").id).stage_version = "0-old"
    with db.transaction() as s:
        assert [j.clip_id for j in queue.list_jobs(s, queue.JobFilter(stage="qc", stale_only=True))] == [dark]
        assert queue.requeue(s, queue.JobFilter(stage="qc", stale_only=True)) == [_job(db, dark, "qc").id]


def test_retry_gives_failed_jobs_fresh_attempts(db, processed):
    good, _ = processed["clips"]
    with db.transaction() as s:  # as the runner leaves a job it gave up on
        job = s.get(Job, _job(db, good, "qc").id)
        job.status, job.attempts, job.last_error = JobStatus.error, 4, "RuntimeError: decoder fell over"
        s.get(Clip, good).status = ClipStatus.error
    with db.transaction() as s:
        assert queue.retry(s, queue.JobFilter(stage="probe")) == []  # probe did not fail
        assert queue.retry(s, queue.JobFilter()) == [job.id]
    job = _job(db, good, "qc")
    assert (job.status, job.attempts) == (JobStatus.pending, 0)
    processed["runner"].drain(timeout_s=120)
    with db.transaction(write=False) as s:
        assert s.get(Clip, good).status is ClipStatus.qc_passed


def test_bad_requests_get_clear_errors(db):
    with db.transaction() as s:
        for call, where, code in [
            (queue.list_jobs, queue.JobFilter(stage="nope"), "pipeline.unknown_stage"),
            (queue.requeue, queue.JobFilter(), "pipeline.stage_required"),
            (queue.requeue, queue.JobFilter(stage="qc", status=JobStatus.running), "pipeline.already_queued"),
            (queue.retry, queue.JobFilter(status=JobStatus.done), "pipeline.not_failed"),
            (queue.list_jobs, queue.JobFilter(stale_only=True), "pipeline.stage_required"),
        ]:
            with pytest.raises(InvalidInput) as err:
                call(s, where)
            assert err.value.code == code


def test_the_command_line(db_url, tmp_path, processed):
    env = {"EGOCROWD_DATABASE_URL": db_url, "EGOCROWD_DATA_DIR": str(tmp_path / "cli")}
    listed = CliRunner().invoke(main, ["jobs", "list", "--stage", "qc"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "queue depths" in listed.output and "done" in listed.output
    requeued = CliRunner().invoke(
        main, ["jobs", "requeue", "--stage", "qc", "--campaign", str(processed["campaigns"][1]), "--yes"], env=env
    )
    assert requeued.exit_code == 0, requeued.output
    assert "1 job(s) queued again" in requeued.output
    bad = CliRunner().invoke(main, ["jobs", "requeue", "--stage", "nope", "--yes"], env=env)
    assert bad.exit_code == 1 and "pipeline.unknown_stage" in bad.output


def test_requeuing_deidentify_keeps_the_qc_verdict_and_makes_a_new_copy(db, processed):
    """deidentify never sets the clip's status: putting it back must not leave the clip "processing"
    for good (it did, from the admin's "Run a stage again"); its de-identification starts over."""
    from egocrowd.db.models import DeidStatus, Derivative

    good, _ = processed["clips"]
    with db.transaction(write=False) as s:
        clip = s.get(Clip, good)
        before = (clip.status, clip.deid_status, clip.derived_id)
    assert before[0] is ClipStatus.qc_passed and before[1] in (DeidStatus.clean, DeidStatus.review) and before[2]
    with db.transaction() as s:
        assert queue.requeue(s, queue.JobFilter(stage="deidentify")) == [_job(db, good, "deidentify").id]
    with db.transaction(write=False) as s:
        clip = s.get(Clip, good)
        assert (clip.status, clip.deid_status) == (ClipStatus.qc_passed, DeidStatus.pending)
    processed["runner"].drain(timeout_s=120)
    with db.transaction(write=False) as s:
        clip = s.get(Clip, good)
        assert clip.status is ClipStatus.qc_passed and clip.deid_status is before[1]
        assert clip.derived_id != before[2] and s.get(Derivative, clip.derived_id).clip_id == good
