"""An uploaded clip, end to end, with the blobs in an S3-compatible object store (moto's server):
tus upload → Clip → probe → QC → de-identification → the video plays through Range requests that
read only the asked bytes from the store."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from tusclient import client as tus

from egocrowd.blobs import S3BlobStore
from egocrowd.db.models import Clip, ClipStatus, DeidStatus, Derivative
from tests.pipeline.test_clip_flow import REQ, drain
from tests.platform.helpers import API, make_user


@pytest.fixture
def settings(s3_settings):  # every fixture built on settings (app, client, live, world) uses the bucket
    return s3_settings


def test_a_clip_goes_through_the_pipeline_and_plays_from_s3(app, db, client, live, world, qc_media, settings):
    blobs = app.state.blobs
    assert isinstance(blobs, S3BlobStore)
    c = world.open_campaign(requirements=REQ)
    a = world.claim(c["id"])
    up = tus.TusClient(live.base + "/api/v1/uploads/", headers=world.worker.headers)
    up.uploader(str(qc_media["good"]), chunk_size=1024 * 1024, metadata={"assignment": str(a["id"])}).upload()
    with db.transaction() as s:
        cid, sha = s.execute(sa.select(Clip.id, Clip.sha256)).one()
    assert sha == hashlib.sha256(qc_media["good"].read_bytes()).hexdigest()
    assert blobs.exists(sha)
    assert not (settings.data_dir / "blobs").exists()  # nothing went to the local default

    drain(app, db)
    with db.transaction() as s:
        clip = s.get(Clip, cid)
        assert clip.status is ClipStatus.qc_passed, clip.qc_report
        assert clip.probe and clip.probe["width"] > 0
        status, derived = clip.deid_status, s.get(Derivative, clip.derived_id)
    assert derived is not None and blobs.exists(derived.sha256)  # the render went up to the bucket
    if status is DeidStatus.review:  # the detectors were unsure: a reviewer looks first
        reviewer = make_user(db, "reviewer")
        assert client.post(f"{API}/clips/{cid}/redactions/reviewed", headers=reviewer.headers).status_code == 200

    size = blobs.size(derived.sha256)
    with live.client(headers=world.lab.headers) as http:
        url = f"{API}/clips/{cid}/video"
        r = http.get(url, headers={"Range": "bytes=100-1099"})
        assert r.status_code == 206 and r.headers["content-range"] == f"bytes 100-1099/{size}"
        assert r.content == blobs.read_range(derived.sha256, 100, 1100)
        r = http.get(url, headers={"Range": "bytes=-16"})
        assert r.status_code == 206 and r.content == blobs.read_range(derived.sha256, size - 16, size)
        r = http.get(url, headers={"Range": f"bytes={size}-"})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
        r = http.get(url)
        assert r.status_code == 200 and r.headers["accept-ranges"] == "bytes"
        assert r.headers["content-type"] == "video/mp4"
        assert hashlib.sha256(r.content).hexdigest() == derived.sha256
