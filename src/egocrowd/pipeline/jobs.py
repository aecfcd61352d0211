"""The pipeline queue as operators see it: what is waiting, what failed, and putting work back.

- :func:`list_jobs` and :func:`queue_depths` answer "what is the pipeline doing?";
- :func:`retry` gives failed jobs (``error``: the runner gave up after its attempts) a fresh set
  of attempts, once the cause is fixed;
- :func:`requeue` runs a stage again for clips it already finished: after a stage's new version
  (``stale_only`` picks the jobs a different version produced) or a QC fix.
Each job put back writes an audit event, and its clip returns to ``processing`` until the stage
has run again, so nobody reads a verdict that is about to change (a stage may say otherwise with
its ``put_back``: the deidentify stage keeps the QC verdict and marks the copy pending).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.clock import db_now
from egocrowd.db.models import Clip, ClipStatus, Job, JobStatus, User
from egocrowd.errors import InvalidInput
from egocrowd.pipeline.stages import STAGES


@dataclass(frozen=True)
class JobFilter:
    """Which jobs an operator means; every field narrows, none means all."""

    stage: str | None = None
    status: JobStatus | None = None
    campaign_id: int | None = None
    stage_version: str | None = None
    stale_only: bool = False  # finished by another version of the stage than the registered one
    job_id: int | None = None  # one job (the admin's health page puts back one at a time)

    def where(self) -> list[sa.ColumnElement[bool]]:
        if self.stage is not None:
            STAGES.get(self.stage)  # an unknown name: pipeline.unknown_stage, listing the known ones
        if self.stale_only and self.stage is None:
            raise InvalidInput("Name the stage whose stale results to requeue.", code="pipeline.stage_required")
        clauses: list[sa.ColumnElement[bool]] = []
        if self.stage is not None:
            clauses.append(Job.stage == self.stage)
        if self.status is not None:
            clauses.append(Job.status == self.status)
        if self.campaign_id is not None:
            clauses.append(Job.clip_id.in_(sa.select(Clip.id).where(Clip.campaign_id == self.campaign_id)))
        if self.stage_version is not None:
            clauses.append(Job.stage_version == self.stage_version)
        if self.job_id is not None:
            clauses.append(Job.id == self.job_id)
        if self.stale_only and self.stage is not None:  # without a stage: refused above
            current = STAGES.get(self.stage).version
            clauses.append(sa.or_(Job.stage_version.is_(None), Job.stage_version != current))
        return clauses


def list_jobs(session: Session, where: JobFilter, *, limit: int = 100) -> list[Job]:
    q = sa.select(Job).where(*where.where()).order_by(Job.id.desc()).limit(limit)
    return list(session.scalars(q))


def queue_depths(session: Session) -> dict[tuple[str, str], int]:
    """(stage, status) → number of jobs."""
    return {key: n for key, (n, _) in queue_summary(session).items()}


def queue_summary(
    session: Session, *, statuses: Iterable[JobStatus] | None = None
) -> dict[tuple[str, str], tuple[int, datetime]]:
    """(stage, status) → (number of jobs, the earliest ``run_after`` among them), in one query:
    the oldest ready job of a stage says how long its queue makes clips wait. ``statuses`` narrows
    it to some states: the metrics scrape asks for the unfinished ones only, which the
    ``ix_jobs_ready`` index finds without reading the ever-growing ``done`` rows."""
    q = sa.select(Job.stage, Job.status, sa.func.count(), sa.func.min(Job.run_after))
    if statuses is not None:
        q = q.where(Job.status.in_(list(statuses)))
    rows = session.execute(q.group_by(Job.stage, Job.status))
    return {(stage, status.value): (n, first) for stage, status, n, first in rows}


#: the states a job waits or works in: what a queue's depth counts
UNFINISHED = (JobStatus.pending, JobStatus.running, JobStatus.error)


def retry(session: Session, where: JobFilter, *, actor: User | None = None) -> list[int]:
    """Failed jobs (``error``) matching ``where`` run again with fresh attempts. Returns their ids."""
    if where.status not in (None, JobStatus.error):
        raise InvalidInput(
            "Only failed jobs can be retried; use requeue for finished ones.", code="pipeline.not_failed"
        )
    chosen = JobFilter(**{**where.__dict__, "status": JobStatus.error})
    return _put_back(session, chosen, "job.retried", actor)


def requeue(session: Session, where: JobFilter, *, actor: User | None = None) -> list[int]:
    """Finished or failed jobs of one stage run again (a new stage version, a fixed check)."""
    if where.stage is None:
        raise InvalidInput("Name the stage to requeue (e.g. --stage qc).", code="pipeline.stage_required")
    if where.status in (JobStatus.pending, JobStatus.running):
        raise InvalidInput("Pending and running jobs are already queued.", code="pipeline.already_queued")
    ids: list[int] = []
    for status in (where.status,) if where.status else (JobStatus.done, JobStatus.error):
        ids += _put_back(session, JobFilter(**{**where.__dict__, "status": status}), "job.requeued", actor)
    return ids


def _put_back(session: Session, where: JobFilter, action: str, actor: User | None) -> list[int]:
    # Row locks (PostgreSQL) so a runner finishing one of these jobs right now waits for us.
    q = sa.select(Job).where(*where.where()).order_by(Job.id)
    if session.bind is not None and session.bind.dialect.name != "sqlite":
        q = q.with_for_update()
    jobs = list(session.scalars(q))
    now = db_now(session)
    for job in jobs:
        before = job.status.value
        job.status, job.attempts, job.run_after = JobStatus.pending, 0, now
        job.lease_owner = job.lease_expires_at = job.finished_at = None
        clip = job.clip
        stage = STAGES.get(job.stage).obj if job.stage in STAGES else None
        if stage is not None and stage.put_back is not None:
            stage.put_back(session, clip)  # deidentify: the QC verdict stands, the copy is pending
        elif clip.status is not ClipStatus.processing:
            clip.status, clip.reason_code, clip.updated_at = ClipStatus.processing, None, now
        audit.record(
            session,
            actor,
            action,
            job.clip_id,
            {"job_id": job.id, "stage": job.stage, "was": before, "stage_version": job.stage_version},
            entity_type="clip",
        )
    return [job.id for job in jobs]
