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
    """Finish uploads whose completion failed; expire leases and stale uploads; delete blobs nobody
    owns. Safe to run from many processes."""
    from egocrowd.campaigns.assignments import expire_leases
    from egocrowd.clips import sweep_orphan_blobs
    from egocrowd.uploads.tus import expire_uploads

    def leases() -> int:
        with db.transaction() as s:
            return expire_leases(s)

    def recover() -> int:
        # Uploads fully received whose completion failed transiently (a database hiccup) were
        # retried only at server start (and never expire): with the phone gone, no clip until a
        # restart. A store object of our own on the same directory: the flock still serialises us
        # with requests in flight, and no asyncio state is shared with a server's event loop.
        import asyncio

        from egocrowd.uploads.store import UploadStore
        from egocrowd.uploads.tus import recover_completed
        from egocrowd.web.routers.clips import PlatformHooks

        store = UploadStore(upload_store.dir, ttl=upload_store.ttl, lock_timeout=0.5)
        return len(asyncio.run(recover_completed(store, PlatformHooks(db, blobs))))

    out = {}
    # Each step on its own: one failing (a bad upload record, a database hiccup) must not keep the
    # others from running, round after round. Recovery first: before its lease is expired.
    for key, step in (("uploads_recovered", recover),
                      ("leases_expired", leases),
                      ("uploads_expired", lambda: len(expire_uploads(upload_store))),
                      ("orphan_blobs_deleted", lambda: len(sweep_orphan_blobs(db, blobs)))):
        try:
            out[key] = step()
        except Exception:  # housekeeping must never take the worker down
            log.exception("housekeeping step %s failed", key)
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
                try:
                    n = runner.run_once()
                except Exception:  # a database hiccup must not take the worker down (as in serve_forever)
                    log.exception("pipeline loop error")
                    n = 0
                if n == 0:
                    stop.wait(1.0)
        return 0
    finally:
        executor.shutdown()
        db.dispose()
