"""Housekeeping as an operator runs it: one process at a time, the orphan sweep in few queries."""

from __future__ import annotations

import time
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import event

from egocrowd import clips
from egocrowd.blobs import BlobStore
from egocrowd.uploads import UploadStore
from egocrowd.worker import housekeeping


def test_one_process_at_a_time(db, settings):
    blobs, store = BlobStore(settings.blobs_path), UploadStore(settings.uploads_path)
    with db.exclusive("housekeeping") as ours:  # another worker is at it (same lock, other session)
        assert ours
        assert housekeeping(db, blobs, store) == {"skipped": 1}
    done = housekeeping(db, blobs, store)
    assert set(done) == {
        "uploads_recovered",
        "leases_expired",
        "annotation_leases_expired",
        "battle_leases_expired",
        "campaigns_closed",
        "clips_auto_accepted",
        "uploads_expired",
        "orphan_blobs_deleted",
        "login_counters_forgotten",
        "catalog_samples_made",
        "top_ups_proposed",
    }


def test_the_orphan_sweep_asks_the_database_once_per_chunk(db, settings, qc_media, world):
    blobs = BlobStore(settings.blobs_path)
    orphans = [blobs.put_bytes(f"orphan {i}".encode()).sha256 for i in range(120)]
    kept = blobs.put_file(qc_media["good"]).sha256
    campaign = world.open_campaign()["id"]
    world.upload_clip(blobs, campaign, qc_media["good"], "t:kept")

    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        removed = clips.sweep_orphan_blobs(db, blobs, grace=timedelta(0), now=time.time() + 1, chunk=50)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert sorted(removed) == sorted(orphans)
    assert blobs.exists(kept)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 3, statements  # 121 old blobs, chunks of 50: three lookups, not 121
    with db.transaction(write=False) as s:
        assert s.scalar(sa.text("SELECT count(*) FROM clips")) == 1
