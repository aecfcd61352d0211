"""Runs pending pipeline jobs: lease → prepare → compute (executor) → apply, one transaction each side.

Guarantees:
- a job is taken under a lease (``lease_owner``, ``lease_expires_at``); a worker killed with SIGKILL
  mid-stage loses nothing: the lease runs out and another run takes the job again; a live runner
  renews its leases while it works, so a slow stage is never taken from it (see ``_heartbeat``);
- stages are idempotent: ``apply`` runs only while the lease is still ours, and it overwrites, never
  appends;
- unexpected failures retry with exponential backoff and, after ``max_attempts``, end in a visible
  ``error`` state (job and clip) with the cause recorded, never stuck silently.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit, telemetry
from egocrowd.clock import db_now, utcnow
from egocrowd.db import Database
from egocrowd.db.models import Clip, ClipStatus, Job, JobStatus, UTCDateTime
from egocrowd.pipeline.executors import Abandoned, capture_error, rebuild_error
from egocrowd.pipeline.stages import FIRST_STAGE, STAGES, StageContext
from egocrowd.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from egocrowd.blobs import Blobs
    from egocrowd.pipeline.executors import Executor

log = logging.getLogger("egocrowd.pipeline")


@dataclass
class RunnerConfig:
    lease_s: float = 600.0  # a stage taking longer than this is presumed dead
    max_attempts: int = 4
    backoff_base_s: float = 5.0  # 5 s, 10 s, 20 s, … capped at backoff_max_s
    backoff_max_s: float = 600.0
    batch: int = 8
    # A live runner renews its leases (every lease_s / 3) while it prepares, computes and applies,
    # but never for longer than this: a runner that hangs for good still loses its jobs. Generous:
    # a batch of 8 QC jobs (bounded at 900 s each) on the inline executor may take 2 h.
    max_hold_s: float = 6 * 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RunnerConfig:
        return cls(
            lease_s=settings.stage_lease_s,
            max_attempts=settings.stage_max_attempts,
            backoff_base_s=settings.stage_backoff_s,
        )


def enqueue(session: Session, clip: Clip, stage: str = FIRST_STAGE, *, now: datetime | None = None) -> Job:
    """Add (or re-arm) the job for ``stage`` of ``clip`` in the caller's transaction."""
    job = session.scalar(sa.select(Job).where(Job.clip_id == clip.id, Job.stage == stage))
    if job is None:
        now = now or db_now(session)
        job = Job(clip_id=clip.id, stage=stage, status=JobStatus.pending, run_after=now, created_at=now)
        session.add(job)
    else:
        job.status, job.attempts, job.run_after, job.lease_owner, job.lease_expires_at = (
            JobStatus.pending,
            0,
            now or db_now(session),
            None,
            None,
        )
    return job


class Runner:
    def __init__(
        self,
        db: Database,
        blobs: Blobs,
        executor: Executor,
        config: RunnerConfig | None = None,
        owner: str | None = None,
        *,
        settings: Settings | None = None,
    ) -> None:
        self.db, self.blobs, self.executor = db, blobs, executor
        self.config = config or RunnerConfig()
        self.stage_context = StageContext(blobs, settings or Settings())
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        # the leases the heartbeat renews (see _hold)
        self._beat_lock = threading.Lock()
        self._beat: threading.Thread | None = None
        self._working: set[int] = set()
        self._held_since = 0.0

    # -- leasing ------------------------------------------------------------------------------------
    # The hot path costs round trips and Python, not work in the database: a no-op stage pays for
    # each statement, BEGIN and COMMIT, and for building statements. So a batch's transactions share one
    # connection (_Link); on PostgreSQL a batch is leased with one autocommitted UPDATE (its rows
    # picked by a SELECT … SKIP LOCKED inside it), prepared by autocommitted reads (every clip at
    # once), and the results at hand are applied together in one transaction (one UPDATE marks them
    # done, one SELECT reads their clips): 4 statements and one COMMIT a batch. The statements are
    # built once (_Sql). benchmarks/pipeline_overhead.py measures it against a bare loop.
    def _lease(self, link: _Link, n: int) -> list[tuple[int, int, str]]:
        sql = _sql(self.db.is_sqlite)
        now = utcnow()  # SQLite only: PostgreSQL's statements use its now() (see _sql)
        lease = timedelta(seconds=self.config.lease_s)
        params = {"n": n, "owner": self.owner, "lease": lease, "until": now + lease, "now": now}
        params["max_attempts"] = self.config.max_attempts
        # PostgreSQL: picked and taken in one autocommitted statement (one round trip); SQLite: the
        # same two steps in one BEGIN IMMEDIATE transaction (it has no FOR UPDATE, and its RETURNING
        # cannot name the rows as they were).
        with link.transaction(autocommit=True) as s:
            if sql.lease is not None:
                rows = s.execute(sql.lease, params).all()
            else:
                rows = s.execute(sql.ready, params).all()
                if rows:
                    s.execute(sql.take, {**params, "ids": [r[0] for r in rows]})
        taken: list[tuple[int, int, str]] = []
        spent: list[tuple[int, int, str]] = []
        for job_id, clip_id, stage, status, owner, attempts in rows:  # as they were before the lease
            if status is JobStatus.running:
                log.warning(
                    "job %s (%s of clip %s): lease of %s expired, taking it over", job_id, stage, clip_id, owner
                )
            # A job out of attempts is leased too (its count unchanged), so that nobody else gives up on it
            (spent if attempts >= self.config.max_attempts else taken).append((job_id, clip_id, stage))
        if spent:  # rare: its worker died max_attempts times; a crash here leaves it to its lease
            with link.transaction() as s:
                for job_id, _, _ in spent:
                    job = self._still_ours(s, job_id)
                    if job is not None:
                        self._give_up(s, job, job.last_error or "the worker running it died repeatedly")
        return taken

    def _still_ours(self, s: Session, job_id: int) -> Job | None:
        job = s.scalar(sa.select(Job).where(Job.id == job_id).with_for_update())
        if job is None or job.status is not JobStatus.running or job.lease_owner != self.owner:
            log.warning("job %s is no longer leased to %s; dropping its result", job_id, self.owner)
            return None
        return job

    # -- one job ------------------------------------------------------------------------------------
    def _prepare(self, link: _Link, taken: list[tuple[int, int, str]]) -> tuple[dict[int, Any], list[tuple[int, str]]]:
        """Every job's inputs, in one transaction for the batch. Returns (inputs by job, failures).

        A prepare that raises may have broken the transaction (PostgreSQL aborts it on an error), and
        what the others read in it is rolled back with it: the failing job is set aside and the
        rest prepared again in a fresh one. An error no prepare raised (reading the clips, the
        commit) is retried job by job, so each job fails or not on its own, as before batching."""
        left = list(taken)
        failures: list[tuple[int, str]] = []
        while left:
            culprit: tuple[int, int, str] | None = None
            try:
                with link.transaction(autocommit=True) as s:  # prepares read: no transaction needed
                    clips = {
                        c.id: c for c in s.scalars(_sql(self.db.is_sqlite).clips, {"ids": [c for _, c, _ in left]})
                    }
                    inputs = {}
                    for job in left:
                        culprit = job
                        job_id, clip_id, stage_name = job
                        if clip_id not in clips:
                            raise LookupError(f"clip {clip_id} of job {job_id} does not exist")
                        inputs[job_id] = STAGES.get(stage_name).obj.prepare(s, clips[clip_id], self.stage_context)
                    culprit = None
                return inputs, failures
            except Exception:
                if culprit is None:
                    break
                failures.append((culprit[0], traceback.format_exc()))
                left.remove(culprit)
        inputs = {}
        for job_id, clip_id, stage_name in left:
            try:
                with link.transaction() as s:
                    clip = s.get_one(Clip, clip_id)
                    inputs[job_id] = STAGES.get(stage_name).obj.prepare(s, clip, self.stage_context)
            except Exception:
                failures.append((job_id, traceback.format_exc()))
        return inputs, failures

    def _apply(self, link: _Link, ready: list[tuple[int, int, str, dict[str, Any]]]) -> list[tuple[int, str]]:
        """Record the results at hand, in one transaction; returns the jobs whose apply failed.

        Should one of them fail, the transaction takes every result of it back, and they are applied
        again one transaction each, so a job succeeds or fails on its own as if it had been alone."""
        if len(ready) > 1:
            try:
                self._apply_together(link, ready)
                return []
            except Exception:
                log.info("applying jobs %s together failed; applying them one by one", [r[0] for r in ready])
        failures = []
        for job in ready:
            try:
                self._apply_together(link, [job])
            except Exception:
                failures.append((job[0], traceback.format_exc()))
        return failures

    def _apply_together(self, link: _Link, ready: list[tuple[int, int, str, dict[str, Any]]]) -> None:
        sql = _sql(self.db.is_sqlite)
        by_stage: dict[str, list[int]] = {}
        for job_id, _, stage_name, _ in ready:
            by_stage.setdefault(stage_name, []).append(job_id)
        with link.transaction() as s:
            # Marking the jobs done first takes their row locks and checks their leases in one
            # statement (one per stage among them); should an apply fail, the rollback takes the
            # marks back with it.
            marked: set[int] = set()
            for stage_name, ids in by_stage.items():
                params = {"ids": ids, "owner": self.owner, "version": str(STAGES.get(stage_name).version)}
                marked.update(s.scalars(sql.finish, {**params, "now": utcnow()}))
            wanted = [clip_id for job_id, clip_id, _, _ in ready if job_id in marked]
            clips = {c.id: c for c in s.scalars(sql.clips, {"ids": wanted})} if wanted else {}
            for job_id, clip_id, stage_name, result in ready:
                if job_id not in marked:
                    log.warning("job %s is no longer leased to %s; dropping its result", job_id, self.owner)
                    continue
                clip = clips[clip_id]
                nxt = STAGES.get(stage_name).obj.apply(s, clip, result)
                if nxt is not None:
                    enqueue(s, clip, nxt)

    def _failed(self, link: _Link, job_id: int, error: str) -> None:
        with link.transaction() as s:
            job = self._still_ours(s, job_id)
            if job is None:
                return
            job.last_error = error[-4000:]
            if job.attempts >= self.config.max_attempts:
                self._give_up(s, job, error)
                return
            delay = min(self.config.backoff_base_s * 2 ** (job.attempts - 1), self.config.backoff_max_s)
            job.status, job.lease_owner, job.lease_expires_at = JobStatus.pending, None, None
            job.run_after = db_now(s) + timedelta(seconds=delay)
            log.warning(
                "job %s (%s of clip %s) failed, retry %d in %.0f s: %s",
                job.id,
                job.stage,
                job.clip_id,
                job.attempts,
                delay,
                error.splitlines()[-1] if error else "",
            )

    def _give_up(self, s: Session, job: Job, error: str) -> None:
        now = db_now(s)
        job.status, job.finished_at, job.lease_owner, job.lease_expires_at = JobStatus.error, now, None, None
        job.last_error = error[-4000:]
        clip = s.get_one(Clip, job.clip_id)
        code = f"pipeline.{job.stage}_failed"
        stage = STAGES.get(job.stage).obj if job.stage in STAGES else None
        if stage is not None and stage.give_up is not None:
            stage.give_up(s, clip, code)  # the stage says what the clip shows (deidentify: deid_status)
        else:
            clip.status, clip.reason_code, clip.updated_at = ClipStatus.error, code, now
        audit.record(
            s,
            None,
            "clip.pipeline_error",
            clip,
            {"stage": job.stage, "attempts": job.attempts, "error": job.last_error.splitlines()[-1:]},
        )
        log.error("job %s (%s of clip %s) gave up after %d attempts", job.id, job.stage, job.clip_id, job.attempts)

    # -- lease renewal ------------------------------------------------------------------------------
    # Without it a stage running longer than lease_s (QC is bounded at 900 s, the lease is 600 s), or
    # a job waiting behind the others of its batch on the inline executor, was taken over by another
    # runner while this live one still computed it: the work ran twice, our result was dropped, and
    # each takeover counted as an attempt until the clip ended in ``error`` though nobody had died.
    def _renew(self, job_ids: list[int]) -> None:
        if not job_ids:
            return
        with self.db.transaction() as s:
            s.execute(
                sa.update(Job)
                .where(Job.id.in_(job_ids), Job.status == JobStatus.running, Job.lease_owner == self.owner)
                .values(lease_expires_at=db_now(s) + timedelta(seconds=self.config.lease_s))
                .execution_options(synchronize_session=False)
            )

    # One heartbeat thread per runner, not one per batch: starting and joining a thread for each
    # batch cost more than leasing it (two waits for the scheduler on a busy machine). It starts
    # with a batch when none is beating and ends at a beat that finds nothing held.
    def _hold(self, job_ids: set[int]) -> None:
        """Hand a batch's leases to the heartbeat, starting it if it is not beating."""
        with self._beat_lock:
            self._working, self._held_since = set(job_ids), time.monotonic()
            if self._beat is None:
                self._beat = threading.Thread(target=self._heartbeat, daemon=True, name=f"lease-renewal-{self.owner}")
                self._beat.start()

    def _let_go(self, job_ids: Iterable[int]) -> None:
        with self._beat_lock:
            self._working.difference_update(job_ids)

    def _heartbeat(self) -> None:
        while True:
            time.sleep(max(self.config.lease_s / 3, 0.05))
            with self._beat_lock:
                if not self._working:
                    self._beat = None
                    return
                ids = sorted(self._working)
                if time.monotonic() - self._held_since > self.config.max_hold_s:
                    continue  # held for too long: a runner that hangs for good loses its jobs
            try:
                self._renew(ids)
            except Exception:  # a database hiccup: try again at the next beat
                log.exception("renewing the leases of jobs %s failed", ids)

    # -- loop ---------------------------------------------------------------------------------------
    def run_once(self) -> int:
        """Lease a batch, run it, record results. Returns how many jobs were leased."""
        # One connection for the batch's transactions, handed back with it: a connection kept from
        # batch to batch outlived runners that nobody closed (and the engine's dispose()).
        link = _Link(self.db.engine)
        try:
            taken = self._lease(link, self.config.batch)
            if not taken:
                return 0
            self._hold({job_id for job_id, _, _ in taken})
            try:
                self._run_taken(link, taken)
            finally:
                self._let_go(job_id for job_id, _, _ in taken)
            return len(taken)
        finally:
            link.close()

    def _run_taken(self, link: _Link, taken: list[tuple[int, int, str]]) -> None:
        def done(job_id: int) -> None:
            self._let_go((job_id,))

        inputs, failures = self._prepare(link, taken)
        for job_id, error in failures:
            done(job_id)
            self._failed(link, job_id, error)
        futures: dict[cf.Future[Any], tuple[int, int, str]] = {}
        for job_id, clip_id, stage_name in taken:
            if job_id in inputs:
                compute = STAGES.get(stage_name).obj.compute
                futures[self.executor.submit(_timed, compute, inputs.pop(job_id))] = (job_id, clip_id, stage_name)
        submitted = time.perf_counter()
        # Results are applied as they come, those at hand together (see _apply)
        while futures:
            finished, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
            ready = []
            for fut in [f for f in futures if f in finished]:  # in the order the jobs were leased
                job_id, clip_id, stage_name = futures.pop(fut)
                try:
                    ready.append((job_id, clip_id, stage_name, _outcome(fut, stage_name, submitted)))
                except Exception:
                    done(job_id)
                    self._failed(link, job_id, traceback.format_exc())
            try:
                for job_id, error in self._apply(link, ready):
                    self._failed(link, job_id, error)
            finally:
                for job_id, _, _, _ in ready:
                    done(job_id)

    def drain(self, *, timeout_s: float | None = None, wait_for_retries: bool = False) -> int:
        """Run until nothing is ready (or, with ``wait_for_retries``, until nothing is pending)."""
        done, started = 0, time.monotonic()
        while timeout_s is None or time.monotonic() - started < timeout_s:
            n = self.run_once()
            done += n
            if n == 0:
                if not wait_for_retries or self.pending() == 0:
                    break
                time.sleep(0.2)
        return done

    def pending(self) -> int:
        with self.db.transaction() as s:
            return s.execute(
                sa.select(sa.func.count())
                .select_from(Job)
                .where(Job.status.in_([JobStatus.pending, JobStatus.running]))
            ).scalar_one()


def _timed(compute: Any, inputs: Any) -> tuple[str, Any, float]:
    """A stage's compute, timed where the executor runs it (the runner's clock would also count the
    wait for a free process). A failure comes back as a value, so that it is timed too."""
    started = time.perf_counter()
    try:
        return "ok", compute(inputs), time.perf_counter() - started
    except Exception as exc:  # noqa: BLE001 - raised again in the runner (_outcome)
        return "failed", capture_error(exc), time.perf_counter() - started


def _outcome(fut: cf.Future[Any], stage: str, submitted: float) -> Any:
    """The result of a ``_timed`` job, its time observed by stage and outcome; a failure raised again.
    When the executor lost the job (shut down under it, a dead process) only our clock is left."""
    try:
        outcome, value, seconds = fut.result()
    except (Abandoned, Exception) as exc:
        outcome = "abandoned" if isinstance(exc, Abandoned) else "failed"
        telemetry.STAGE_SECONDS.labels(stage, outcome).observe(time.perf_counter() - submitted)
        raise
    telemetry.STAGE_SECONDS.labels(stage, outcome).observe(seconds)
    if outcome != "ok":
        raise rebuild_error(value)
    return value


class _Link:
    """One connection for the short transactions of a batch (its lease, its prepare, each apply and
    failure; ``Runner.run_once`` closes it): no pool checkout and no pre-ping per transaction, as
    there used to be. A
    connection left idle longer than ``fresh_s`` (a slow stage computing) is handed back and a fresh
    one taken, pinged by the pool, so an apply never meets one that the server dropped meanwhile.
    (SQLAlchemy's pool pings at every checkout or never; nothing in it keeps a connection for a while.)"""

    def __init__(self, engine: sa.Engine, fresh_s: float = 10.0) -> None:
        self.engine, self.fresh_s = engine, fresh_s
        self._conn: sa.Connection | None = None
        self._used = 0.0

    @contextmanager
    def transaction(self, *, autocommit: bool = False) -> Iterator[Session]:
        """A session on the link's connection, committed at the end unless it raises.

        ``autocommit`` (PostgreSQL; SQLite, local, ignores it): each statement commits on its own,
        without the BEGIN and COMMIT round trips. For one statement, or for reads only, it is the
        same thing: under READ COMMITTED each statement of a transaction takes a fresh snapshot anyway."""
        if self._conn is not None and (self._conn.invalidated or time.monotonic() - self._used > self.fresh_s):
            self.close()
        if self._conn is None:
            self._conn = self.engine.connect()
        conn = self._conn
        alone = autocommit and conn.dialect.name != "sqlite"
        if alone:
            conn.execution_options(isolation_level="AUTOCOMMIT")
        try:
            with Session(conn, expire_on_commit=False) as s, s.begin():
                yield s
        finally:
            self._used = time.monotonic()
            if alone and not conn.invalidated and not conn.closed:
                conn.execution_options(isolation_level=conn.default_isolation_level)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


@dataclass(frozen=True)
class _Sql:
    """The hot path's statements, built once: building one costs more Python than running it."""

    ready: sa.Select[Any]  # a batch of ready jobs (n), locked on PostgreSQL
    take: sa.Update  # lease them (ids, owner, max_attempts, lease; SQLite: until)
    lease: sa.Update | None  # PostgreSQL: both at once, returning the rows as they were (None: SQLite)
    finish: sa.UpdateBase  # mark them done if still ours (ids, owner, version; SQLite: now) → their ids
    clips: sa.Select[Any]  # their clips (ids), as ORM objects


@functools.cache
def _sql(sqlite: bool) -> _Sql:
    jobs = cast("sa.Table", Job.__table__)
    # The database decides time (clock.db_now): PostgreSQL's now(), inside the statements; SQLite
    # lives on one host, whose clock is ours.
    now: Any = sa.bindparam("now", type_=UTCDateTime()) if sqlite else sa.func.now()
    until: Any = (
        sa.bindparam("until", type_=UTCDateTime())
        if sqlite
        else sa.func.now() + sa.bindparam("lease", type_=sa.Interval())
    )
    ready = (
        sa.select(jobs.c.id, jobs.c.clip_id, jobs.c.stage, jobs.c.status, jobs.c.lease_owner, jobs.c.attempts)
        .where(
            sa.or_(
                sa.and_(jobs.c.status == JobStatus.pending, jobs.c.run_after <= now),
                sa.and_(jobs.c.status == JobStatus.running, jobs.c.lease_expires_at <= now),
            )
        )
        .order_by(jobs.c.run_after, jobs.c.id)
        .limit(sa.bindparam("n"))
    )
    ids: Any = sa.bindparam("ids", expanding=True)
    spent: Any = sa.bindparam("max_attempts")  # a job out of attempts is taken without counting one more

    def taking(was: Any) -> dict[str, Any]:
        return {
            "status": JobStatus.running,
            "lease_owner": sa.bindparam("owner"),
            "lease_expires_at": until,
            "attempts": sa.case((was.attempts >= spent, was.attempts), else_=was.attempts + 1),
        }

    take = sa.update(jobs).where(jobs.c.id.in_(ids)).values(**taking(jobs.c))
    lease = None
    if not sqlite:  # SQLite serialises writers instead (BEGIN IMMEDIATE)
        ready = ready.with_for_update(skip_locked=True)
        picked = ready.cte("picked")  # the rows as they were: RETURNING names them
        lease = (
            sa.update(jobs)
            .where(jobs.c.id == picked.c.id)
            .values(**taking(picked.c))
            .returning(
                jobs.c.id, jobs.c.clip_id, jobs.c.stage, picked.c.status, picked.c.lease_owner, picked.c.attempts
            )
        )
    finish = (
        sa.update(jobs)
        .where(jobs.c.id.in_(ids), jobs.c.status == JobStatus.running, jobs.c.lease_owner == sa.bindparam("owner"))
        .values(
            status=JobStatus.done,
            finished_at=now,
            stage_version=sa.bindparam("version"),
            lease_owner=None,
            lease_expires_at=None,
            last_error=None,
        )
        .returning(jobs.c.id)
    )
    return _Sql(ready, take, lease, finish, sa.select(Clip).where(Clip.id.in_(ids)))
