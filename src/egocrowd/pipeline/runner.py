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

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from egocrowd import audit
from egocrowd.clock import db_now
from egocrowd.db import Database
from egocrowd.db.models import Clip, ClipStatus, Job, JobStatus
from egocrowd.pipeline.stages import FIRST_STAGE, STAGES, StageContext
from egocrowd.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy.orm import Session

    from egocrowd.blobs import BlobStore
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
        blobs: BlobStore,
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

    # -- leasing ------------------------------------------------------------------------------------
    def _lease(self, n: int) -> list[tuple[int, int, str]]:
        with self.db.transaction() as s:
            now = db_now(s)
            ready = sa.or_(
                sa.and_(Job.status == JobStatus.pending, Job.run_after <= now),
                sa.and_(Job.status == JobStatus.running, Job.lease_expires_at <= now),
            )
            q = sa.select(Job).where(ready).order_by(Job.run_after, Job.id).limit(n)
            if not self.db.is_sqlite:  # SQLite serialises writers instead (BEGIN IMMEDIATE)
                q = q.with_for_update(skip_locked=True)
            jobs = list(s.scalars(q))
            taken = []
            for job in jobs:
                if job.status is JobStatus.running:
                    log.warning(
                        "job %s (%s of clip %s): lease of %s expired, taking it over",
                        job.id,
                        job.stage,
                        job.clip_id,
                        job.lease_owner,
                    )
                if job.attempts >= self.config.max_attempts:
                    self._give_up(s, job, job.last_error or "the worker running it died repeatedly")
                    continue
                job.status, job.lease_owner = JobStatus.running, self.owner
                job.lease_expires_at = now + timedelta(seconds=self.config.lease_s)
                job.attempts += 1
                taken.append((job.id, job.clip_id, job.stage))
            return taken

    def _still_ours(self, s: Session, job_id: int) -> Job | None:
        job = s.scalar(sa.select(Job).where(Job.id == job_id).with_for_update())
        if job is None or job.status is not JobStatus.running or job.lease_owner != self.owner:
            log.warning("job %s is no longer leased to %s; dropping its result", job_id, self.owner)
            return None
        return job

    # -- one job ------------------------------------------------------------------------------------
    def _prepare(self, job_id: int, clip_id: int, stage_name: str) -> dict[str, Any]:
        with self.db.transaction() as s:
            clip = s.get_one(Clip, clip_id)
            return STAGES.get(stage_name).obj.prepare(s, clip, self.stage_context)

    def _apply(self, job_id: int, clip_id: int, stage_name: str, result: dict[str, Any]) -> None:
        stage = STAGES.get(stage_name)
        with self.db.transaction() as s:
            job = self._still_ours(s, job_id)
            if job is None:
                return
            clip = s.get_one(Clip, clip_id)
            nxt = stage.obj.apply(s, clip, result)
            job.status, job.finished_at, job.stage_version = JobStatus.done, db_now(s), str(stage.version)
            job.lease_owner = job.lease_expires_at = None
            job.last_error = None
            if nxt is not None:
                enqueue(s, clip, nxt)

    def _failed(self, job_id: int, error: str) -> None:
        with self.db.transaction() as s:
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

    def _heartbeat(self, working: set[int], lock: threading.Lock, stop: threading.Event) -> None:
        give_up_at = time.monotonic() + self.config.max_hold_s
        while not stop.wait(max(self.config.lease_s / 3, 0.05)) and time.monotonic() < give_up_at:
            with lock:
                ids = sorted(working)
            try:
                self._renew(ids)
            except Exception:  # a database hiccup: try again at the next beat
                log.exception("renewing the leases of jobs %s failed", ids)

    # -- loop ---------------------------------------------------------------------------------------
    def run_once(self) -> int:
        """Lease a batch, run it, record results. Returns how many jobs were leased."""
        taken = self._lease(self.config.batch)
        if not taken:
            return 0
        working, lock, stop = {job_id for job_id, _, _ in taken}, threading.Lock(), threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(working, lock, stop), daemon=True, name=f"lease-renewal-{self.owner}"
        )
        beat.start()
        try:
            self._run_taken(taken, working, lock)
        finally:
            stop.set()
            beat.join()
        return len(taken)

    def _run_taken(self, taken: list[tuple[int, int, str]], working: set[int], lock: threading.Lock) -> None:
        def done(job_id: int) -> None:
            with lock:
                working.discard(job_id)

        futures = []
        for job_id, clip_id, stage_name in taken:
            try:
                inputs = self._prepare(job_id, clip_id, stage_name)
            except Exception:
                done(job_id)
                self._failed(job_id, traceback.format_exc())
                continue
            compute = STAGES.get(stage_name).obj.compute
            futures.append((job_id, clip_id, stage_name, self.executor.submit(compute, inputs)))
        for job_id, clip_id, stage_name, fut in futures:
            try:
                result = fut.result()
            except Exception:
                done(job_id)
                self._failed(job_id, traceback.format_exc())
                continue
            try:
                self._apply(job_id, clip_id, stage_name, result)
            except Exception:
                self._failed(job_id, traceback.format_exc())
            finally:
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
