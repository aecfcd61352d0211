"""Finishing uploads into clips on the platform: completion after a restart, the orphan-blob sweep
racing an upload that is finishing, and simultaneous finishes of one source."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from egocrowd import clips
from egocrowd.blobs import BlobStore
from egocrowd.db.models import Clip, ConsentRecord
from tests.platform.helpers import (
    claim,
    make_user,
    open_campaign,
    publish_consent,
    sign,
)
from tests.support.world import table_away

TUS = {"Tus-Resumable": "1.0.0"}
UPLOADS = "/api/v1/uploads"
OCTETS = {"Content-Type": "application/offset+octet-stream"}


def _world(client, db):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab R")
    worker = make_user(db, "worker")
    c = open_campaign(client, lab)
    sign(client, worker)
    r = claim(client, worker, c["id"])
    assert r.status_code == 201, r.text
    return worker, r.json()["id"]


def test_completion_retried_after_a_restart_mid_upload_and_a_failed_first_try(settings, db, app, client):
    """After a restart mid-upload the server has no streamed sha256. If the first completion attempt
    moved the bytes into the blob store and then failed (database hiccup), the retry used to find
    neither the data file nor a hash to look the blob up by: FileNotFoundError on every retry, the
    upload stuck in ``completing`` and the bytes swept later as an orphan."""
    from egocrowd.web import create_app

    worker, aid = _world(client, db)
    data = os.urandom(300_000)
    meta = f"assignment {base64.b64encode(str(aid).encode()).decode()}"
    r = client.post(
        UPLOADS, headers={**TUS, **worker.headers, "Upload-Length": str(len(data)), "Upload-Metadata": meta}
    )
    assert r.status_code == 201, r.text
    url = r.headers["Location"]
    r = client.patch(url, content=data[:100_000], headers={**TUS, **OCTETS, **worker.headers, "Upload-Offset": "0"})
    assert r.status_code == 204, r.text

    # The server restarts (a fresh process: no running hash of the first part).
    with TestClient(create_app(settings, db), base_url="http://testserver") as client2:
        with table_away(db, "jobs"):
            r = client2.patch(
                url, content=data[100_000:], headers={**TUS, **OCTETS, **worker.headers, "Upload-Offset": "100000"}
            )
            assert r.status_code == 500, r.text  # transient: the upload stays ``completing``
        r = client2.patch(
            url, content=b"", headers={**TUS, **OCTETS, **worker.headers, "Upload-Offset": str(len(data))}
        )
        assert r.status_code == 204, r.text
        clip_id = int(r.headers["Egocrowd-Clip-Id"])
    with db.transaction() as s:
        clip = s.get(Clip, clip_id)
        assert clip.sha256 == hashlib.sha256(data).hexdigest() and clip.size == len(data)
        # the signature that covered the upload, which releases and withdrawals follow
        record = s.get(ConsentRecord, clip.consent_record_id)
        assert record is not None and record.user_id == worker.id and record.withdrawn_at is None
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
        cid = s.scalar(
            sa.select(sa.text("campaign_id")).select_from(sa.text("assignments")).where(sa.text(f"id = {aid}"))
        )

    part = tmp_path / "upload.part"
    part.write_bytes(data)
    kw = {
        "source_ref": "tus:" + "b" * 32,
        "path": part,
        "worker_id": worker.id,
        "assignment_id": aid,
        "campaign_id": cid,
        "original_name": "again.mp4",
        "sha256": sha,
        "move": True,
    }
    # The table is missing: SQLite says OperationalError, PostgreSQL ProgrammingError (UndefinedTable).
    with (
        table_away(db, "jobs"),
        pytest.raises(
            (sa.exc.OperationalError, sa.exc.ProgrammingError),
            match='no such table: jobs|relation "jobs" does not exist',
        ),
    ):
        clips.finish_upload(db, blobs, **kw)  # bytes stored (dedup), then the transaction failed
    assert not part.exists()  # the upload's own copy is gone: the store holds the only one
    assert clips.sweep_orphan_blobs(db, blobs) == []  # the default 6 h grace restarts on reuse
    clip = clips.finish_upload(db, blobs, **kw)  # the retry
    assert clip.sha256 == sha and blobs.exists(sha)


def test_simultaneous_finishes_of_one_source_make_one_clip(client, db, settings, tmp_path):
    """Two finishers of the same source at the same moment (e.g. two `egocrowd ingest` runs over
    one folder) end with one clip, and both get it back instead of an IntegrityError."""
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    worker = make_user(db, "worker")
    c = open_campaign(client, lab)
    blobs = BlobStore(settings.blobs_path)
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"same bytes" * 1000)
    barrier = threading.Barrier(6)
    ids, errors = [], []

    def finish():
        barrier.wait()
        try:
            ids.append(
                clips.finish_upload(
                    db,
                    blobs,
                    source_ref="ingest:1:same",
                    path=src,
                    worker_id=worker.id,
                    assignment_id=None,
                    campaign_id=c["id"],
                    original_name="clip.mp4",
                ).id
            )
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=finish) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(ids)) == 1 and len(ids) == 6
    with db.transaction() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Clip)) == 1
