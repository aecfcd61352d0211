"""The pipeline worker process (`egocrowd worker`) and the periodic housekeeping it does."""

from __future__ import annotations

import logging
import signal
import threading

from egocrowd.db import Database

log = logging.getLogger("egocrowd.worker")


def make_executor(name: str, workers: int | None = None):
    from egocrowd.pipeline.executors import get_executor

    return get_executor(name, max_workers=workers) if name != "inline" else get_executor(name)


def housekeeping(db: Database, blobs, upload_store) -> dict[str, int]:
    """Expire leases and stale uploads; delete blobs nobody owns. Safe to run from many processes."""
    from egocrowd.campaigns.assignments import expire_leases
    from egocrowd.clips import sweep_orphan_blobs
    from egocrowd.uploads.tus import expire_uploads

    out = {}
    try:
        with db.transaction() as s:
            out["leases_expired"] = expire_leases(s)
        out["uploads_expired"] = len(expire_uploads(upload_store))
        out["orphan_blobs_deleted"] = len(sweep_orphan_blobs(db, blobs))
    except Exception:  # housekeeping must never take the worker down
        log.exception("housekeeping failed")
    return out


def run_worker(settings, *, once: bool = False, executor_name: str | None = None, workers: int | None = None) -> int:
    from egocrowd.blobs import BlobStore
    from egocrowd.pipeline.runner import Runner, RunnerConfig

    db = Database(settings.db_url)
    if settings.is_embedded:
        db.upgrade()
    blobs = BlobStore(settings.blobs_path)
    executor = make_executor(executor_name or settings.pipeline_executor, workers or settings.pipeline_workers)
    runner = Runner(db, blobs, executor, RunnerConfig.from_env())
    try:
        if once:
            return runner.drain()
        from datetime import timedelta

        from egocrowd.uploads.store import UploadStore

        upload_store = UploadStore(settings.uploads_path, ttl=timedelta(hours=settings.upload_expiry_hours))
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        log.info("worker %s started", runner.owner)
        while not stop.is_set():
            housekeeping(db, blobs, upload_store)
            for _ in range(60):  # about a minute of work between housekeeping rounds
                if stop.is_set():
                    break
                if runner.run_once() == 0:
                    stop.wait(1.0)
        return 0
    finally:
        executor.shutdown()
        db.dispose()
