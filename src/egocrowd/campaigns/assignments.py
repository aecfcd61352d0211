"""Assignments: a worker claims one slot of an open campaign under a lease.

Correct under concurrency by construction, on SQLite and PostgreSQL alike:
- the campaign's slot counter moves only through one conditional UPDATE
  (``slots_taken = slots_taken + 1 WHERE slots_taken < target_clips AND status = 'open'``), which the
  database applies atomically, so a slot is never handed out twice and the target is never passed;
- the worker's row is locked (``SELECT … FOR UPDATE``) while their open assignments are counted, so
  two simultaneous claims by one worker cannot both slip under the cap;
- expiring a lease is a conditional UPDATE on the assignment (``WHERE status = 'active'``), so two
  sweepers racing on the same lease free its slot once.
On SQLite every write transaction starts with BEGIN IMMEDIATE (see egocrowd.db.engine), which
serialises the same steps.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit, consent
from egocrowd.accounts import policy
from egocrowd.campaigns.service import get_campaign
from egocrowd.clock import utcnow
from egocrowd.db.models import Assignment, AssignmentStatus, Campaign, CampaignStatus, User
from egocrowd.errors import Conflict, Forbidden, Gone, NotFound

A = AssignmentStatus


def claim(session: Session, worker: User, campaign_id: int, *, lease: timedelta = timedelta(hours=24),
          max_open: int = 3, now: datetime | None = None) -> Assignment:
    now = now or utcnow()
    campaign = get_campaign(session, worker, campaign_id)
    policy.require(worker, "assignment.claim", campaign)
    if campaign.allowed_countries and worker.country not in campaign.allowed_countries:
        raise Forbidden("This campaign is not open to workers in your country.", code="campaign.country_not_allowed")
    if consent.active_consent(session, worker, campaign.consent_version) is None:
        raise Forbidden(f"Sign consent version {campaign.consent_version} before claiming.",
                        code="consent.missing", consent_version=campaign.consent_version)

    session.execute(sa.select(User.id).where(User.id == worker.id).with_for_update())
    expire_leases(session, now=now, worker_id=worker.id)
    open_now = session.scalar(sa.select(sa.func.count()).select_from(Assignment).where(
        Assignment.worker_id == worker.id, Assignment.status == A.active))
    if open_now >= max_open:
        raise Conflict(f"You already have {open_now} open assignments; submit or release one first.",
                       code="assignment.worker_cap", limit=max_open)

    expire_leases(session, now=now, campaign_id=campaign.id)
    taken = session.execute(
        sa.update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.status == CampaignStatus.open,
               Campaign.slots_taken < Campaign.target_clips)
        .values(slots_taken=Campaign.slots_taken + 1)
        .execution_options(synchronize_session=False))
    if taken.rowcount != 1:
        raise Conflict("No slots left in this campaign.", code="assignment.no_slots")
    a = Assignment(campaign_id=campaign.id, worker_id=worker.id, status=A.active, claimed_at=now,
                   lease_expires_at=now + lease)
    session.add(a)
    audit.record(session, worker, "assignment.claimed", a,
                 {"campaign_id": campaign.id, "lease_expires_at": a.lease_expires_at})
    return a


def _free_slot(session: Session, campaign_id: int, n: int = 1) -> None:
    session.execute(sa.update(Campaign).where(Campaign.id == campaign_id)
                    .values(slots_taken=Campaign.slots_taken - n)
                    .execution_options(synchronize_session=False))


def expire_leases(session: Session, *, now: datetime | None = None, campaign_id: int | None = None,
                  worker_id: int | None = None) -> int:
    """Expire active assignments whose lease ran out and give their slots back. Returns how many."""
    now = now or utcnow()
    q = (sa.update(Assignment)
         .where(Assignment.status == A.active, Assignment.lease_expires_at <= now)
         .values(status=A.expired, closed_at=now)
         .returning(Assignment.id, Assignment.campaign_id, Assignment.worker_id)
         .execution_options(synchronize_session=False))
    if campaign_id is not None:
        q = q.where(Assignment.campaign_id == campaign_id)
    if worker_id is not None:
        q = q.where(Assignment.worker_id == worker_id)
    rows = session.execute(q).all()
    for aid, cid, wid in rows:
        _free_slot(session, cid)
        audit.record(session, None, "assignment.expired", aid, {"campaign_id": cid, "worker_id": wid},
                     entity_type="assignment")
    return len(rows)


def get_assignment(session: Session, user: User, assignment_id: int) -> Assignment:
    a = session.get(Assignment, assignment_id)
    if a is None or not policy.can(user, "assignment.view", a):
        raise NotFound(f"No assignment {assignment_id}.", code="assignment.not_found")
    return a


def list_assignments(session: Session, user: User, *, campaign_id: int | None = None,
                     status: AssignmentStatus | None = None, limit: int = 100, offset: int = 0) -> list[Assignment]:
    q = sa.select(Assignment).where(policy.visible_assignments(user)).order_by(Assignment.id.desc())
    if campaign_id is not None:
        q = q.where(Assignment.campaign_id == campaign_id)
    if status is not None:
        q = q.where(Assignment.status == status)
    return list(session.scalars(q.limit(limit).offset(offset)))


def release(session: Session, worker: User, a: Assignment, *, reason: str = "worker") -> Assignment:
    """The worker gives the slot back (or their consent was withdrawn)."""
    policy.require(worker, "assignment.release", a)
    done = session.execute(
        sa.update(Assignment).where(Assignment.id == a.id, Assignment.status == A.active)
        .values(status=A.released, closed_at=utcnow()).execution_options(synchronize_session=False))
    if done.rowcount != 1:
        session.refresh(a)
        raise Conflict(f"This assignment is {a.status.value}; only active ones can be released.",
                       code="assignment.not_active")
    _free_slot(session, a.campaign_id)
    session.refresh(a)
    audit.record(session, worker, "assignment.released", a, {"campaign_id": a.campaign_id, "reason": reason})
    return a


def require_active_lease(session: Session, worker: User, assignment_id: int, *,
                         now: datetime | None = None) -> Assignment:
    """For uploads: the assignment must be the worker's own and its lease still running."""
    a = session.get(Assignment, assignment_id)
    if a is None or a.worker_id != worker.id:
        raise Forbidden("This is not your assignment.", code="assignment.not_yours")
    if a.status is A.active and a.lease_expires_at <= (now or utcnow()):
        raise Gone("The lease on this assignment has expired; claim a new slot.", code="assignment.lease_expired")
    if a.status is not A.active:
        raise Conflict(f"This assignment is {a.status.value}.", code="assignment.not_active")
    return a


def progress(session: Session, campaign: Campaign) -> dict[str, int]:
    counts = dict(session.execute(
        sa.select(Assignment.status, sa.func.count()).where(Assignment.campaign_id == campaign.id)
        .group_by(Assignment.status)).all())
    out = {s.value: int(counts.get(s, 0)) for s in A}
    out.update(target=campaign.target_clips, slots_taken=campaign.slots_taken,
               slots_left=campaign.target_clips - campaign.slots_taken)
    return out
