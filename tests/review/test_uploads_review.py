"""Review findings on the upload path: hostile tus headers, completion after a restart, and the
orphan-blob sweep racing an upload that is finishing."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from egocrowd import clips
from egocrowd.blobs import BlobStore
from egocrowd.db.models import Clip
from tests.platform.helpers import claim, make_user, open_campaign, publish_consent, sign

TUS = {"Tus-Resumable": "1.0.0"}
UPLOADS = "/api/v1/uploads"
OCTETS = {"Content-Type": "application/offset+octet-stream"}


# Over a real HTTP server (the in-process TestClient re-encodes header bytes as UTF-8): Latin-1
# superscript digits pass str.isdigit() but not int(); 5000 digits exceed Python's int-conversion
# limit. Both used to escape as ValueError -> 500 upload.internal.
HOSTILE = [b"\xb2", b"\xb9\xb3", b"1" * 5000]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_upload_length_is_a_400_not_a_500(live, value):
    import httpx

    r = httpx.post(live.base + UPLOADS, headers={**TUS, "Upload-Length": value})
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.json()["code"] == "upload.bad_request"


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_upload_offset_is_a_400_not_a_500(live, value):
    import httpx

    r = httpx.patch(f"{live.base}{UPLOADS}/{'a' * 32}", content=b"x",
                    headers={**TUS, **OCTETS, "Upload-Offset": value})
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.json()["code"] == "upload.bad_request"


def _world(client, db):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab R")
    worker = make_user(db, "worker")
    c = open_campaign(client, lab)
    sign(client, worker)
    r = claim(client, worker, c["id"])
    assert r.status_code == 201, r.text
    return worker, r.json()["id"]


class _TableAway:
    """Make the database really fail for a moment (a missing table), like an outage would."""

    def __init__(self, db, table: str) -> None:
        self.db, self.table = db, table

    def __enter__(self):
        with self.db.engine.begin() as c:
            c.execute(sa.text(f"ALTER TABLE {self.table} RENAME TO {self.table}_away"))
        return self

    def __exit__(self, *exc):
        with self.db.engine.begin() as c:
            c.execute(sa.text(f"ALTER TABLE {self.table}_away RENAME TO {self.table}"))


def test_completion_retried_after_a_restart_mid_upload_and_a_failed_first_try(settings, db, app, client):
    """After a restart mid-upload the server has no streamed sha256. If the first completion attempt
    moved the bytes into the blob store and then failed (database hiccup), the retry used to find
    neither the data file nor a hash to look the blob up by: FileNotFoundError on every retry, the
    upload stuck in ``completing`` and the bytes swept later as an orphan."""
    from egocrowd.web import create_app

    worker, aid = _world(client, db)
    data = os.urandom(300_000)
    meta = f"assignment {base64.b64encode(str(aid).encode()).decode()}"
    r = client.post(UPLOADS, headers={**TUS, **worker.headers, "Upload-Length": str(len(data)),
                                      "Upload-Metadata": meta})
    assert r.status_code == 201, r.text
    url = r.headers["Location"]
    r = client.patch(url, content=data[:100_000], headers={**TUS, **OCTETS, **worker.headers, "Upload-Offset": "0"})
    assert r.status_code == 204, r.text

    # The server restarts (a fresh process: no running hash of the first part).
    with TestClient(create_app(settings, db), base_url="http://testserver") as client2:
        with _TableAway(db, "jobs"):
            r = client2.patch(url, content=data[100_000:],
                              headers={**TUS, **OCTETS, **worker.headers, "Upload-Offset": "100000"})
            assert r.status_code == 500, r.text  # transient: the upload stays ``completing``
        r = client2.patch(url, content=b"", headers={**TUS, **OCTETS, **worker.headers,
                                                     "Upload-Offset": str(len(data))})
        assert r.status_code == 204, r.text
        clip_id = int(r.headers["Egocrowd-Clip-Id"])
    with db.transaction() as s:
        clip = s.get(Clip, clip_id)
        assert clip.sha256 == hashlib.sha256(data).hexdigest() and clip.size == len(data)
    blobs = BlobStore(settings.blobs_path)
    assert blobs.exists(clip.sha256)
    assert clips.sweep_orphan_blobs(db, blobs, grace=timedelta(0)) == []


def test_sweep_spares_an_old_blob_that_an_upload_finishing_now_deduplicated_into(settings, db, client, tmp_path):
    """An orphan blob (e.g. a finished upload whose lease had expired) is old. The same bytes are
    uploaded again: storing them is a dedup hit, the new copy is dropped, and the clip is about to be
    committed. A sweep in that window saw an old, unreferenced blob and deleted it: the clip then
    pointed at nothing (and a retry of the completion could not find its bytes anywhere)."""
    worker, aid = _world(client, db)
    blobs = BlobStore(settings.blobs_path)
    data = os.urandom(50_000)
    sha = hashlib.sha256(data).hexdigest()
    ref = blobs.put_bytes(data)  # the orphan, stored 7 hours ago
    old = time.time() - 7 * 3600
    os.utime(blobs.path(ref.sha256), (old, old))
    with db.transaction() as s:
        cid = s.scalar(sa.select(sa.text("campaign_id")).select_from(sa.text("assignments"))
                       .where(sa.text(f"id = {aid}")))

    part = tmp_path / "upload.part"
    part.write_bytes(data)
    kw = dict(source_ref="tus:" + "b" * 32, path=part, worker_id=worker.id, assignment_id=aid,
              campaign_id=cid, original_name="again.mp4", sha256=sha, move=True)
    with _TableAway(db, "jobs"), pytest.raises(Exception):
        clips.finish_upload(db, blobs, **kw)  # bytes stored (dedup), then the transaction failed
    assert not part.exists()  # the upload's own copy is gone: the store holds the only one
    assert clips.sweep_orphan_blobs(db, blobs) == []  # the default 6 h grace restarts on reuse
    clip = clips.finish_upload(db, blobs, **kw)  # the retry
    assert clip.sha256 == sha and blobs.exists(sha)
