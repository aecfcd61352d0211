"""Two finishers of the same source at the same moment (e.g. two `egocrowd ingest` runs over one
folder) end with one clip, and both get it back instead of an IntegrityError."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from egocrowd import clips
from egocrowd.blobs import BlobStore
from egocrowd.db.models import Clip
from tests.platform.helpers import make_user, open_campaign, publish_consent


def test_simultaneous_finishes_of_one_source_make_one_clip(client, db, settings, tmp_path):
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
            ids.append(clips.finish_upload(db, blobs, source_ref="ingest:1:same", path=src, worker_id=worker.id,
                                           assignment_id=None, campaign_id=c["id"], original_name="clip.mp4").id)
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
