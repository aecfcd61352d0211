"""A campaign's capture requirements reach QC through a real upload: the mount the worker confirmed
(tus Upload-Metadata ``mount``), the displayed orientation; and every QC verdict notifies the worker."""

from __future__ import annotations

import sqlalchemy as sa
from tusclient import client as tus

from egocrowd.db.models import Clip, Notification
from tests.pipeline.test_clip_flow import REQ, drain


def _upload(live, actor, assignment_id, path, **meta):
    c = tus.TusClient(live.base + "/api/v1/uploads/", headers=actor.headers)
    c.uploader(str(path), chunk_size=256 * 1024, metadata={"assignment": str(assignment_id), **meta}).upload()


def _checks(client, worker, clip_id):
    report = client.get(f"/api/v1/clips/{clip_id}", headers=worker.headers).json()["qc_report"]
    return {c["name"]: c for c in report["checks"]}


def test_the_confirmed_mount_and_the_orientation_are_checked(app, db, client, live, world, qc_media):
    worker = world.worker
    c = world.open_campaign(
        requirements={**REQ, "camera_placement": "chest_mounted", "orientation": "landscape", "hands_in_view": False},
        target_clips=10,
    )
    first = world.claim(c["id"])
    _upload(live, worker, first["id"], qc_media["good"], mount="chest_mounted")
    second = world.claim(c["id"])
    _upload(live, worker, second["id"], qc_media["portrait_rotated"], mount="head_mounted")
    drain(app, db)
    with db.transaction() as s:
        good, portrait = s.scalars(sa.select(Clip).order_by(Clip.id)).all()
        assert good.client_meta["mount"] == "chest_mounted"  # kept from the upload's metadata
    ok = _checks(client, worker, good.id)
    assert ok["mount"]["status"] == "pass" and ok["orientation"]["status"] == "pass"
    bad = _checks(client, worker, portrait.id)
    assert bad["orientation"]["message"] == "recorded in portrait (288x352), the campaign needs landscape"
    assert bad["mount"]["status"] == "fail"
    assert "chest harness" in bad["mount"]["message"]
    body = client.get(f"/api/v1/clips/{portrait.id}", headers=worker.headers).json()
    assert body["status"] == "qc_failed"
    assert {f["name"] for f in body["feedback"] if f["status"] == "fail"} == {"orientation", "mount"}


def test_every_qc_verdict_notifies_the_worker(app, db, client, live, world, qc_media):
    worker = world.worker
    c = world.open_campaign(requirements={**REQ, "hands_in_view": False, "camera_placement": "any"}, target_clips=10)
    for name in ("good", "dark", "zip_renamed"):
        _upload(live, worker, world.claim(c["id"])["id"], qc_media[name])
    drain(app, db)
    with db.transaction() as s:
        clips = s.scalars(sa.select(Clip).order_by(Clip.id)).all()
        notes = {n.link: n for n in s.scalars(sa.select(Notification).where(Notification.user_id == worker.id))}
        assert [c.status.value for c in clips] == ["qc_passed", "qc_failed", "rejected"]
        good, dark, junk = (notes[f"/clips/{c.id}"] for c in clips)
        assert {n.kind for n in notes.values()} == {"qc.result"} and len(notes) == 3
        assert good.subject == f"Clip {clips[0].id} passed its checks"
        assert dark.subject == f"Clip {clips[1].id} needs another take"
        assert dark.body.startswith("too dark: 100% of frames — record with the lights on")
        assert junk.subject == f"Clip {clips[2].id} could not be used" and junk.body
