"""The pipeline worker process (`egocrowd worker`) and the periodic housekeeping it does."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from datetime import timedelta
from functools import partial

from egocrowd import evaluations
from egocrowd.accounts import login
from egocrowd.audit.checkpoints import checkpoint_if_due, require_signing_key
from egocrowd.blobs import from_settings as blobs_from_settings
from egocrowd.campaigns.assignments import expire_leases
from egocrowd.campaigns.service import close_expired_campaigns
from egocrowd.clips import sweep_orphan_blobs
from egocrowd.clips.uploads import clip_from_upload
from egocrowd.db import Database, open_database
from egocrowd.labels import tasks as annotation_tasks
from egocrowd.labels.review import auto_accept_due
from egocrowd.notifications import deliver_notifications
from egocrowd.pay import rates
from egocrowd.pipeline.executors import Abandoned, get_executor
from egocrowd.pipeline.runner import Runner, RunnerConfig
from egocrowd.releases import buyers, credentials, withdrawals
from egocrowd.releases.builder import start_pending as start_release_builds
from egocrowd.uploads import Uploads, expire_uploads, open_upload_store, recover_completed

log = logging.getLogger("egocrowd.worker")


def make_executor(name: str, workers: int | None = None, cluster_url: str | None = None):
    if name == "inline":
        return get_executor(name)
    if name == "dask":
        return get_executor(name, max_workers=workers, cluster_url=cluster_url)
    return get_executor(name, max_workers=workers)


def housekeeping(db: Database, blobs, upload_store, settings=None) -> dict[str, int]:
    """Finish uploads whose completion failed; expire leases and stale uploads; accept clips nobody
    reviewed in time; delete blobs nobody owns. One process at a time (``Database.exclusive``): the others skip the round, returning
    ``{"skipped": 1}``."""
    with db.exclusive("housekeeping") as ours:
        return _housekeeping(db, blobs, upload_store, settings) if ours else {"skipped": 1}


def _housekeeping(db: Database, blobs, upload_store, settings=None) -> dict[str, int]:
    def leases() -> int:
        with db.transaction() as s:
            return expire_leases(s)

    def annotation_leases() -> int:
        # An annotation task whose lease ran out frees its clip's slot at once (claims do not count
        # it); marking it expired keeps the annotator's list and the audit log truthful.
        with db.transaction() as s:
            return annotation_tasks.expire_leases(s)

    def battle_leases() -> int:
        with db.transaction() as s:
            return evaluations.expire_leases(s)

    def campaigns_past_deadline() -> int:
        with db.transaction() as s:
            return close_expired_campaigns(s)

    def login_counters() -> int:
        # Failed log-in counters whose window is over (log-ins with random emails would pile up).
        # A day is past any sensible window (the setting's default is 15 minutes).
        with db.transaction() as s:
            return login.sweep(s, timedelta(days=1))

    def clips_auto_accepted() -> int:
        # Acceptance items nobody decided within the campaign's auto_accept_days (labels.review)
        with db.transaction() as s:
            return auto_accept_due(s)

    def top_ups_proposed() -> int:
        # Campaigns whose median working time shows pay under the floor get a top-up (pay.rates)
        with db.transaction() as s:
            return rates.propose_all(s)

    def recover() -> int:
        # Uploads fully received whose completion failed transiently (a database hiccup) were
        # retried only at server start (and never expire): with the phone gone, no clip until a
        # restart. A store object of our own on the same uploads: the lock still serialises us
        # with requests in flight, and no asyncio state is shared with a server's event loop.
        store = upload_store.sibling(lock_timeout=0.5)
        return len(asyncio.run(recover_completed(store, partial(clip_from_upload, db, blobs))))

    out = {}
    # Each step on its own: one failing (a bad upload record, a database hiccup) must not keep the
    # others from running, round after round. Recovery first: before its lease is expired.
    for key, step in (
        ("uploads_recovered", recover),
        ("leases_expired", leases),
        ("annotation_leases_expired", annotation_leases),
        ("battle_leases_expired", battle_leases),
        ("campaigns_closed", campaigns_past_deadline),
        ("clips_auto_accepted", clips_auto_accepted),
        ("top_ups_proposed", top_ups_proposed),
        ("uploads_expired", lambda: len(expire_uploads(upload_store))),
        ("orphan_blobs_deleted", lambda: len(sweep_orphan_blobs(db, blobs, keep=buyers.sample_blobs))),
        ("login_counters_forgotten", login_counters),
        ("catalog_samples_made", lambda: make_catalog_samples(db, blobs)),
        *(
            [("withdrawals", lambda: sum(withdrawals_step(db, blobs, settings).values()))]
            if settings is not None
            else []
        ),
        *([("notices_emailed", lambda: deliver_notifications(db, settings))] if settings is not None else []),
        *([("audit_checkpoints", lambda: checkpoint_if_due(db, settings))] if settings is not None else []),
        *([("release_builds_started", lambda: start_release_builds(db, blobs, settings))] if settings else []),
    ):
        try:
            out[key] = step()
        except Exception:  # housekeeping must never take the worker down
            log.exception("housekeeping step %s failed", key)
    return out


def withdrawals_step(db: Database, blobs, settings) -> dict[str, int]:
    """Withdrawals no door recorded, notices owed (buyers who downloaded an affected release since
    the last round too), media past its grace period purged (releases.withdrawals)."""
    return withdrawals.sweep(db, blobs, grace_days=settings.withdrawal_grace_days)


def make_runner(
    settings,
    db: Database,
    blobs,
    *,
    executor_name: str | None = None,
    workers: int | None = None,
    cluster_url: str | None = None,
):
    """The pipeline runner the settings ask for (close it with ``runner.executor.shutdown()``)."""
    executor = make_executor(
        executor_name or settings.pipeline_executor,
        workers or settings.pipeline_workers,
        cluster_url or settings.pipeline_cluster_url,
    )
    return Runner(db, blobs, executor, RunnerConfig.from_settings(settings), settings=settings)


def run_pipeline(
    db: Database,
    blobs,
    upload_store,
    runner,
    stop: threading.Event,
    *,
    housekeeping_every_s: float = 60.0,
    idle_s: float = 1.0,
) -> None:
    """Run ready stages, and housekeeping every minute, until ``stop`` is set. The one loop of both
    `egocrowd worker` and the embedded server's pipeline thread."""
    next_housekeeping = 0.0
    while not stop.is_set():
        if time.monotonic() >= next_housekeeping:
            housekeeping(db, blobs, upload_store, runner.stage_context.settings)
            next_housekeeping = time.monotonic() + housekeeping_every_s
        try:
            n = runner.run_once()
        except Abandoned:  # stop_pipeline shut the executor down under a stage: we are stopping
            return
        except Exception:  # a database hiccup must not take the worker down
            log.exception("pipeline loop error")
            n = 0
        if n == 0:
            stop.wait(idle_s)


def stop_pipeline(runner, thread: threading.Thread, stop: threading.Event, *, grace_s: float = 5.0) -> None:
    """Stop a ``run_pipeline`` thread within seconds: a stage in flight is abandoned (its executor
    processes are ended, the loop returns; the lease runs out and another run takes the job). The
    thread is a daemon: one still inside a stage of the inline executor, which cannot be cut short,
    ends with the process. Waiting for stages to finish left `serve` and `worker` stuck on SIGTERM."""
    stop.set()
    runner.executor.shutdown(wait=False)
    thread.join(grace_s)
    if thread.is_alive():
        log.warning("the pipeline thread is still in a stage: abandoned, its lease will run out")


def run_worker(
    settings,
    *,
    once: bool = False,
    executor_name: str | None = None,
    workers: int | None = None,
    cluster_url: str | None = None,
) -> int:
    require_signing_key(settings)  # no audit signing key: a clear error now, not a failed checkpoint each round
    credentials.require_authority(settings)  # likewise for the releases it builds (c2pa.no_authority)
    db = open_database(settings)
    blobs = blobs_from_settings(settings)
    try:
        runner = make_runner(settings, db, blobs, executor_name=executor_name, workers=workers, cluster_url=cluster_url)
    except BaseException:
        db.dispose()
        raise
    upload_store: Uploads | None = None
    try:
        if once:
            try:
                return runner.drain()
            finally:
                runner.executor.shutdown()
        upload_store = open_upload_store(settings, db.engine, blobs)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        log.info("worker %s started", runner.owner)
        # The loop runs in a thread so that this one, which gets the signals, can stop it while a
        # stage is in flight (see stop_pipeline).
        thread = threading.Thread(
            target=run_pipeline, args=(db, blobs, upload_store, runner, stop), name="egocrowd-pipeline", daemon=True
        )
        thread.start()
        while not stop.wait(0.25):
            if not thread.is_alive():  # the loop died of an error (the thread logged it)
                stop_pipeline(runner, thread, stop)
                return 1
        stop_pipeline(runner, thread, stop)
        return 0
    finally:
        if upload_store is not None:
            upload_store.close()
        db.dispose()


def make_catalog_samples(db: Database, blobs, *, limit: int = 5) -> int:
    """Sample frames for published releases that have none yet (releases.buyers)."""
    return buyers.make_missing_samples(db, blobs, limit=limit)
