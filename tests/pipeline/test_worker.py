"""The `egocrowd worker` process and its housekeeping survive database hiccups and unreadable records."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.servers import server_env
from tests.support.world import table_away


def test_worker_process_survives_a_database_error_and_stops_cleanly(db, db_url, tmp_path):
    """``run_worker``'s loop called ``runner.run_once()`` unguarded: one failing query (a database
    restart, a network blip) killed every worker process, unlike the embedded loop
    (``worker.run_pipeline``, now shared by both) which logs and goes on."""
    env = server_env(db_url, tmp_path / "data", tmp_path)  # a server's worker starts only with its keys
    with table_away(db, "jobs"):  # every lease query now fails
        proc = subprocess.Popen(
            [sys.executable, "-m", "egocrowd.cli", "worker", "--executor", "inline"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            errors = 0
            deadline = time.monotonic() + 60
            for line in proc.stderr:  # ends when the process exits
                errors += "pipeline loop error" in line
                if errors >= 2 or time.monotonic() > deadline:
                    break
            assert proc.poll() is None, f"the worker died (exit {proc.returncode})"
            assert errors >= 2
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)  # drain stderr so logging never blocks the exit
    assert proc.returncode == 0


def test_an_unreadable_upload_record_does_not_stop_housekeeping(db, settings, tmp_path):
    """An upload record this code cannot read (written by a newer version during a rolling deploy)
    made ``expire_uploads`` raise from its leftovers sweep (``store.get`` of the old ``.part``'s
    stem), and ``housekeeping`` ran its steps in one ``try``: orphan blobs were then never swept
    again (nor later steps run) for as long as that record existed."""
    import json
    from datetime import timedelta

    from egocrowd.blobs import BlobStore
    from egocrowd.uploads.store import UploadStore
    from egocrowd.worker import housekeeping

    store = UploadStore(settings.uploads_path, ttl=timedelta(hours=1))
    info = store.create(length=10, owner="1")
    record = store.info_path(info.id)
    record.write_text(json.dumps({**json.loads(record.read_text()), "format_version": 99}))
    old = time.time() - 7 * 3600
    for p in (store.data_path(info.id), record):
        os.utime(p, (old, old))
    blobs = BlobStore(settings.blobs_path)
    orphan = blobs.put_bytes(b"bytes of an upload whose completion was refused").sha256
    os.utime(blobs.path(orphan), (old, old))

    out = housekeeping(db, blobs, store)
    assert out.get("orphan_blobs_deleted") == 1, out
    assert not blobs.exists(orphan)
    assert record.exists() and store.data_path(info.id).exists()  # unreadable is not garbage


def test_housekeeping_finishes_an_upload_whose_completion_failed_after_the_client_left(db, client, world, settings):
    """All bytes received, ``on_complete`` failed transiently (a database hiccup), the phone went
    away. Only ``recover_completed`` at server start retried it, and ``expire_uploads`` never
    expires ``completing`` uploads: the clip was never created (the worker never paid, the bytes
    kept forever) until someone restarted the server."""
    import base64

    import sqlalchemy as sa

    from egocrowd.blobs import BlobStore
    from egocrowd.db.models import Clip
    from egocrowd.worker import housekeeping

    worker = world.worker
    aid = world.claim(world.open_campaign()["id"])["id"]
    data = os.urandom(20_000)
    with table_away(db, "jobs"):
        r = client.post(
            "/api/v1/uploads",
            content=data,
            headers={
                "Tus-Resumable": "1.0.0",
                "Content-Type": "application/offset+octet-stream",
                **worker.headers,
                "Upload-Length": str(len(data)),
                "Upload-Metadata": f"assignment {base64.b64encode(str(aid).encode()).decode()}",
            },
        )
        assert r.status_code == 500, r.text  # created, all bytes in, completion failed: ``completing``
    with db.transaction() as s:
        assert s.scalar(sa.select(Clip.id).where(Clip.assignment_id == aid)) is None

    out = housekeeping(db, BlobStore(settings.blobs_path), client.app.state.upload_store)
    assert out.get("uploads_recovered") == 1, out
    with db.transaction() as s:
        clip = s.scalar(sa.select(Clip).where(Clip.assignment_id == aid))
        assert clip is not None and clip.size == len(data)


def test_a_worker_without_a_signing_authority_refuses_to_start(db_url, tmp_path):
    """It starts release builds: without the content-credentials authority each would fail
    (c2pa.no_authority), round after round. A server's worker says so at once instead."""
    if db_url.startswith("sqlite"):
        pytest.skip("the embedded setup makes its own authority")
    from click.testing import CliRunner

    from egocrowd.cli import main

    env = server_env(db_url, tmp_path / "data", tmp_path)
    env["EGOCROWD_CONTENT_CREDENTIALS_DIR"] = str(tmp_path / "nowhere")
    refused = CliRunner().invoke(main, ["worker", "--once", "--executor", "inline"], env=env)
    assert refused.exit_code == 1, refused.output
    assert "[c2pa.no_authority]" in refused.output and "egocrowd c2pa init" in refused.output
    assert "Traceback" not in refused.output
