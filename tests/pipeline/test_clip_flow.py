"""An uploaded clip, end to end: tus upload (real tuspy client, real server) → Clip → probe → QC."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from tusclient import client as tus
from tusclient.exceptions import TusCommunicationError

from egocrowd.blobs import BlobStore
from egocrowd.db.models import Assignment, AuditEvent, Clip, Job
from egocrowd.pipeline.executors import get_executor
from egocrowd.pipeline.runner import Runner, RunnerConfig

REQ = {
    "min_duration_s": 3,
    "max_duration_s": 60,
    "min_width": 240,
    "min_height": 240,
    "min_fps": 24,
    "max_upload_mb": 5,
}


@pytest.fixture
def assigned(world):
    """The world's worker holds a slot of a campaign sized for the test clips; another worker signed too."""
    c = world.open_campaign(requirements=REQ, target_clips=10)
    other = world.signed_worker()
    return {"lab": world.lab, "worker": world.worker, "other": other, "campaign": c, "assignment": world.claim(c["id"])}


def upload(live, actor, assignment_id, path, **kw):
    c = tus.TusClient(live.base + "/api/v1/uploads/", headers=actor.headers)
    up = c.uploader(
        str(path),
        chunk_size=kw.pop("chunk_size", 64 * 1024),
        metadata={"assignment": str(assignment_id), "filename": "../../etc/my clip.mp4", "device": "Pixel 8"},
        **kw,
    )
    up.upload()
    return up


def drain(app, db):
    runner = Runner(db, app.state.blobs, get_executor("inline"), RunnerConfig(backoff_base_s=0.01))
    return runner.drain(wait_for_retries=True, timeout_s=120)


def test_upload_becomes_a_checked_clip(app, db, client, live, assigned, qc_media):
    worker, lab, a = assigned["worker"], assigned["lab"], assigned["assignment"]
    upload(live, worker, a["id"], qc_media["good"])
    with db.transaction() as s:
        clip = s.scalar(sa.select(Clip))
        assert clip.sha256 == hashlib.sha256(qc_media["good"].read_bytes()).hexdigest()
        assert clip.original_name == "my clip.mp4"  # no path, safe characters
        assert clip.client_meta["device"] == "Pixel 8"
        assert s.get(Assignment, a["id"]).status.value == "submitted"
        assert BlobStore(app.state.settings.blobs_path).exists(clip.sha256)
        assert [j.stage for j in s.scalars(sa.select(Job))] == ["probe"]
    ran = drain(app, db)
    r = client.get(f"/api/v1/clips/{clip.id}", headers=worker.headers)
    body = r.json()
    assert body["status"] in ("qc_passed", "qc_failed"), body
    assert ran == (4 if body["status"] == "qc_passed" else 2)  # probe, qc, and deidentify and review for a passed clip
    assert body["qc_report"]["format_version"] >= 1
    assert {c["name"] for c in body["qc_report"]["checks"]} >= {"duration", "too_dark", "blur", "hands_visible"}
    # the requester sees the campaign's QC statistics; another worker sees nothing of this clip
    stats = client.get(f"/api/v1/campaigns/{assigned['campaign']['id']}/qc", headers=lab.headers).json()
    assert stats["clips"] == 1 and stats["pass_rate"] in (0.0, 1.0)
    assert client.get(f"/api/v1/clips/{clip.id}", headers=assigned["other"].headers).status_code == 404
    with db.transaction() as s:
        actions = [e.action for e in s.scalars(sa.select(AuditEvent).where(AuditEvent.entity_type == "clip"))]
    last = ["clip.qc_passed", "clip.deidentified"] if body["status"] == "qc_passed" else ["clip.qc_failed"]
    assert actions[0] == "clip.uploaded" and actions[-len(last) :] == last


def test_dark_clip_fails_with_advice_and_the_worker_may_retry(app, db, client, live, assigned, qc_media):
    worker, a = assigned["worker"], assigned["assignment"]
    upload(live, worker, a["id"], qc_media["dark"])
    drain(app, db)
    body = client.get("/api/v1/clips", headers=worker.headers).json()["items"][0]
    assert body["status"] == "qc_failed"
    fails = [f for f in body["feedback"] if f["status"] == "fail"]
    assert any(f["name"] == "too_dark" for f in fails), body["feedback"]
    assert all(f["message"] and f["advice"] for f in fails)
    # the slot is the worker's again: they may record once more
    assert client.get(f"/api/v1/assignments/{a['id']}", headers=worker.headers).json()["status"] == "active"
    page = client.get("/clips", headers=worker.headers)
    assert page.status_code == 200


def test_corrupt_file_is_rejected_with_a_reason_code(app, db, client, live, assigned, qc_media):
    worker, a = assigned["worker"], assigned["assignment"]
    upload(live, worker, a["id"], qc_media["zip_renamed"])
    drain(app, db)
    body = client.get("/api/v1/clips", headers=worker.headers).json()["items"][0]
    assert body["status"] == "rejected"
    assert body["reason_code"].startswith("video.")


def test_same_bytes_twice_are_flagged_and_stored_once(app, db, client, live, assigned, qc_media):
    worker, a = assigned["worker"], assigned["assignment"]
    upload(live, worker, a["id"], qc_media["good"])
    a2 = client.post(f"/api/v1/campaigns/{assigned['campaign']['id']}/claim", headers=worker.headers).json()
    upload(live, worker, a2["id"], qc_media["good"])
    with db.transaction() as s:
        first, second = s.scalars(sa.select(Clip).order_by(Clip.id)).all()
    assert second.duplicate_of == first.id and second.sha256 == first.sha256
    blobs = list(BlobStore(app.state.settings.blobs_path).iter_blobs())
    assert len(blobs) == 1


def test_only_the_assignee_may_upload_and_within_the_campaign_limit(app, db, live, assigned, qc_media, tmp_path):
    a = assigned["assignment"]
    with pytest.raises(TusCommunicationError) as err:
        upload(live, assigned["other"], a["id"], qc_media["good"])
    assert err.value.status_code == 403
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (6 * 1024 * 1024))  # campaign limit: 5 MB
    with pytest.raises(TusCommunicationError) as err:
        upload(live, assigned["worker"], a["id"], big)
    assert err.value.status_code == 413
    with db.transaction() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Clip)) == 0


def test_the_embedded_server_runs_the_pipeline_itself(tmp_path, db_url, db, qc_media):
    import time

    from egocrowd.settings import Settings
    from egocrowd.web import create_app
    from tests.support.servers import LiveServer
    from tests.support.world import World

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        secret_key="s" * 40,
        run_pipeline_in_server=True,
        pipeline_executor="inline",
    )
    app = create_app(settings, db)
    with LiveServer(app) as live, live.client() as http:
        world = World.build(http, db)
        lab, worker = world.lab, world.worker
        c = world.open_campaign(requirements=REQ)
        a = world.claim(c["id"])
        upload(live, worker, a["id"], qc_media["blurred"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            clip = http.get("/api/v1/clips", headers=worker.headers).json()["items"][0]
            if clip["status"] != "processing":
                break
            time.sleep(0.2)
        assert clip["status"] == "qc_failed", clip["status"]
        assert any(f["name"] == "blur" for f in clip["feedback"])
        page = http.get(f"/campaigns/{c['id']}", headers=lab.headers).text
        assert "Pass rate" in page and "blur" in page


def test_an_upload_is_refused_early_once_the_lease_is_over(app, db, client, live, assigned, qc_media):
    from datetime import timedelta

    from egocrowd.db.models import utcnow

    worker, a = assigned["worker"], assigned["assignment"]
    c = tus.TusClient(live.base + "/api/v1/uploads/", headers=worker.headers)
    up = c.uploader(str(qc_media["good"]), chunk_size=16 * 1024, metadata={"assignment": str(a["id"])})
    up.upload_chunk()  # the first chunk goes through while the lease runs
    with db.transaction() as s:
        s.get(Assignment, a["id"]).lease_expires_at = utcnow() - timedelta(seconds=1)
    with pytest.raises(TusCommunicationError) as err:
        up.upload_chunk()
    assert err.value.status_code == 410
    assert up.offset == 16 * 1024  # nothing more was taken


def test_a_campaign_tunes_its_qc_thresholds(client, db, assigned):
    lab = assigned["lab"]
    bad = client.post(
        "/api/v1/campaigns",
        headers=lab.headers,
        json={**_body(), "requirements": {**REQ, "qc": {"dark_fial_frac": 0.2}}},
    )
    assert bad.status_code == 422 and "dark_fial_frac" in bad.text
    ok = client.post(
        "/api/v1/campaigns",
        headers=lab.headers,
        json={**_body(), "requirements": {**REQ, "qc": {"dark_fail_frac": 0.05}}},
    )
    assert ok.status_code == 201, ok.text
    from egocrowd.pipeline.stages import qc_thresholds_for

    assert qc_thresholds_for(ok.json()["requirements"])["dark_fail_frac"] == 0.05


def _body():
    from tests.platform.helpers import campaign_body

    return campaign_body()
