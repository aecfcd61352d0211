"""The operators' view of the whole platform: how much work is where (campaigns, clips, pipeline
jobs, unfinished uploads, stored bytes, the database) and what is stuck.

It reads; putting stuck work back goes through :mod:`egocrowd.pipeline.jobs`, the functions the
``egocrowd jobs`` command uses, so both doors leave the same audit events.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from egocrowd.accounts import policy
from egocrowd.blobs import Blobs, BlobUsage
from egocrowd.clock import db_now, utcnow
from egocrowd.db.models import Campaign, CampaignStatus, Clip, ClipStatus, DeidStatus, Job, JobStatus, User
from egocrowd.pipeline import jobs
from egocrowd.uploads import Uploads


@dataclass(frozen=True)
class Overview:
    campaigns: dict[str, int]  # status → count, every status present
    clips: dict[str, int]
    jobs: dict[str, int]


@dataclass(frozen=True)
class Health:
    depths: dict[tuple[str, str], int]  # (stage, status) → jobs
    stuck: list[Job]
    uploads_open: int  # still receiving bytes (not expired)
    uploads_bytes: int  # received so far
    blobs: BlobUsage
    database_bytes: int | None  # None where the backend cannot say cheaply
    deid: dict[str, int]  # de-identification status → clips, every status present
    deid_failed: list[Clip]  # failed de-identifications, the latest first (their job is "done")


def overview(session: Session, admin: User) -> Overview:
    policy.require(admin, "system.view")

    def by_status(column, enum) -> dict[str, int]:
        counts = {s.value: 0 for s in enum}
        for status, n in session.execute(sa.select(column, sa.func.count()).group_by(column)):
            counts[status.value] = n
        return counts

    return Overview(
        campaigns=by_status(Campaign.status, CampaignStatus),
        clips=by_status(Clip.status, ClipStatus),
        jobs=by_status(Job.status, JobStatus),
    )


def stuck_jobs(session: Session, admin: User, *, limit: int = 50) -> list[Job]:
    """Failed jobs (the runner gave up) and running ones past their lease (their runner died and
    no other has taken them over yet: is ``egocrowd worker`` running?), newest first."""
    policy.require(admin, "system.view")
    past_lease = sa.and_(Job.status == JobStatus.running, Job.lease_expires_at <= db_now(session))
    q = (
        sa.select(Job)
        .options(joinedload(Job.clip))
        .where(sa.or_(Job.status == JobStatus.error, past_lease))
        .order_by(Job.id.desc())
        .limit(limit)
    )
    return list(session.scalars(q))


def health(session: Session, admin: User, blobs: Blobs, uploads: Uploads) -> Health:
    policy.require(admin, "system.view")
    now = utcnow()
    receiving = [i for i in uploads.iter_infos() if i.state == "receiving" and not i.is_expired(now)]
    return Health(
        depths=jobs.queue_depths(session),
        stuck=stuck_jobs(session, admin),
        uploads_open=len(receiving),
        uploads_bytes=sum(i.offset for i in receiving),
        blobs=blobs.usage(),
        database_bytes=database_size(session),
        deid={s.value: 0 for s in DeidStatus}
        | {
            status.value: n
            for status, n in session.execute(sa.select(Clip.deid_status, sa.func.count()).group_by(Clip.deid_status))
            if status is not None  # never de-identified (failed QC, still processing)
        },
        deid_failed=list(
            session.scalars(
                sa.select(Clip)
                .where(Clip.deid_status == DeidStatus.failed)
                .order_by(Clip.updated_at.desc(), Clip.id.desc())
                .limit(50)
            )
        ),
    )


def database_size(session: Session) -> int | None:
    """The database's size in bytes: one catalogue query on PostgreSQL, two pragmas on SQLite."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return session.scalar(sa.text("SELECT pg_database_size(current_database())"))
    if dialect == "sqlite":
        pages = session.scalar(sa.text("PRAGMA page_count")) or 0
        return pages * (session.scalar(sa.text("PRAGMA page_size")) or 0)
    return None


def retry_job(session: Session, admin: User, job_id: int) -> list[int]:
    """One failed job runs again with fresh attempts (what ``egocrowd jobs retry`` does)."""
    policy.require(admin, "system.manage")
    return jobs.retry(session, jobs.JobFilter(job_id=job_id), actor=admin)


def requeue_stage(session: Session, admin: User, stage: str, *, stale_only: bool = False) -> list[int]:
    """A stage runs again for every clip it finished or failed (``stale_only``: those an older
    version of the stage produced), as ``egocrowd jobs requeue --stage … [--stale]`` does."""
    policy.require(admin, "system.manage")
    return jobs.requeue(session, jobs.JobFilter(stage=stage, stale_only=stale_only), actor=admin)
