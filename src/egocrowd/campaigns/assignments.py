"""Assignments: a worker claims one slot of an open campaign under a lease.

Correct under concurrency by construction, on SQLite and PostgreSQL alike:
- the campaign's slot counter moves only through one conditional UPDATE
  (``slots_taken = slots_taken + 1 WHERE slots_taken < target_clips AND status = 'open'``), which the
  database applies atomically, so a slot is never handed out twice and the target is never passed;
- the worker's row is locked (``SELECT … FOR UPDATE``) while their open assignments are counted, so
  two simultaneous claims by one worker cannot both slip under the cap;
- expiring a lease is a conditional UPDATE on the assignment (``WHERE status = 'active'``), so two
  sweepers racing on the same lease free its slot once. Housekeeping sweeps every campaign; a claim
  sweeps its campaign only when it found no slot, then tries once more.
Rows are locked in one global order, so two transactions never wait on each other in a cycle
(PostgreSQL would abort one of them as a deadlock): the worker's user row, then campaign rows in
ascending id, then that campaign's assignment rows. Locks are ``FOR NO KEY UPDATE`` (what an UPDATE
takes), which does not conflict with the key-share locks that foreign-key checks take when an
audit event or a clip references the same rows.
On SQLite every write transaction starts with BEGIN IMMEDIATE (see egocrowd.db.engine), which
serialises the same steps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from egocrowd import audit, consent, telemetry
from egocrowd.accounts import policy
from egocrowd.campaigns import levels
from egocrowd.campaigns.service import get_campaign
from egocrowd.clock import db_now, utcnow
from egocrowd.db.models import (
    Assignment,
    AssignmentStatus,
    Campaign,
    CampaignStatus,
    Clip,
    ClipStatus,
    ConsentDocument,
    ConsentRecord,
    User,
)
from egocrowd.errors import Conflict, EgocrowdError, Forbidden, Gone, NotFound
from egocrowd.i18n import _

A = AssignmentStatus


@telemetry.count_outcomes(telemetry.CLAIMS, EgocrowdError, kind="assignment")
def claim(
    session: Session,
    worker: User,
    campaign_id: int,
    *,
    lease: timedelta = timedelta(hours=24),
    max_open: int = 3,
    now: datetime | None = None,
) -> Assignment:
    """Give ``worker`` one slot of the campaign under a lease, or refuse with a problem.

    Lean on purpose (#17: a launch brings thousands of claims a minute): one claim is eight
    statements including the caller's token lookup and the audit event (PostgreSQL locks the
    worker's row and takes the slot and writes the assignment in one statement; SQLite needs no row
    lock and writes in two), pinned by tests/platform/test_claim_cost.py. Stale leases are swept by
    housekeeping (egocrowd.worker); a claim sweeps its own campaign only when it finds no slot left,
    so a full campaign still gives back the slots of leases that ran out without waiting for it.
    A campaign read as full (and holding no stale lease) refuses at once, before the worker's lock:
    four statements, so a launch's refusals do not slow its grants; there, ``assignment.no_slots``
    comes before the deadline and cap refusals."""
    campaign = get_campaign(session, worker, campaign_id, state_only=True)
    policy.require(worker, "assignment.claim", campaign)
    if campaign.target_clips == 0:  # an evaluation only (#19): its work is battles, not recordings
        raise Conflict(
            "This campaign records nothing: it only evaluates robots; judge its battles instead.",
            code="campaign.evaluation_only",
        )
    if campaign.allowed_countries and worker.country not in campaign.allowed_countries:
        raise Forbidden("This campaign is not open to workers in your country.", code="campaign.country_not_allowed")
    consent.require_cover(session, worker, campaign)
    _require_training(session, worker, campaign)
    if _full(session, campaign, now):
        # A launch's late comers (#17: thousands for a few hundred slots) are refused here, without
        # the worker's lock, the counts or the slot's UPDATE.
        raise Conflict("No slots left in this campaign.", code="assignment.no_slots")

    # The worker's row first (the global lock order), the database's time read in the same statement.
    now = _lock_worker(session, worker.id, now)
    if campaign.deadline_at is not None and now >= campaign.deadline_at:
        raise Conflict("This campaign's deadline has passed.", code="campaign.past_deadline")
    # Counted under the worker's lock, both in one statement (built once, see _COUNTS).
    per_campaign = campaign.max_clips_per_worker is not None
    open_now, held = session.execute(
        _COUNTS[per_campaign], {"worker_id": worker.id, "campaign_id": campaign.id, "now": now}
    ).one()
    if campaign.max_clips_per_worker is not None and (held or 0) >= campaign.max_clips_per_worker:
        raise Conflict(
            f"You have taken {held} slots in this campaign, its limit per worker.",
            code="assignment.per_worker_limit",
            limit=campaign.max_clips_per_worker,
        )
    if open_now >= max_open:
        raise Conflict(
            f"You already have {open_now} open assignments; submit or release one first.",
            code="assignment.worker_cap",
            limit=max_open,
        )

    a = _take_slot_for(session, campaign, worker.id, now, lease)
    if a is None and _expire_stale(session, campaign.id, now):
        a = _take_slot_for(session, campaign, worker.id, now, lease)
    if a is None:
        raise Conflict("No slots left in this campaign.", code="assignment.no_slots")
    audit.record(
        session, worker, "assignment.claimed", a, {"campaign_id": campaign.id, "lease_expires_at": a.lease_expires_at}
    )
    return a


# The claim's statements, built once with bound parameters: every claim runs them, and building a
# statement (operators, coercions, its cache key) cost this server more CPU than the database took
# to answer it (#17). SQLAlchemy compiles each once per process all the same.
def _build_counts(per_campaign: bool) -> sa.Select[int, int | None]:
    """(the worker's live leases, their slots in this campaign, or NULL when the campaign sets no
    limit per worker). A lease that ran out is dead even before a sweep marks it expired: it counts
    for neither. Slots held "to the end" (submitted, accepted) count too; given back or expired ones
    are free again."""
    live = sa.and_(Assignment.status == A.active, Assignment.lease_expires_at > sa.bindparam("now"))
    held_here = sa.and_(
        Assignment.campaign_id == sa.bindparam("campaign_id"),
        sa.or_(Assignment.status.in_([A.submitted, A.accepted]), live),
    )
    return sa.select(
        sa.func.count().filter(live), sa.func.count().filter(held_here) if per_campaign else sa.null()
    ).where(Assignment.worker_id == sa.bindparam("worker_id"))


_COUNTS = {per_campaign: _build_counts(per_campaign) for per_campaign in (False, True)}
_LOCK_WORKER = (
    sa.select(User.id, sa.func.now()).where(User.id == sa.bindparam("worker_id")).with_for_update(key_share=True)
)


def _full(session: Session, campaign: Campaign, now: datetime | None) -> bool:
    """Whether the campaign as read is open with every slot taken by a lease still running (one plain
    read, only when it looks full). A slot given back after the read is missed as by a claim made a
    moment earlier; the conditional UPDATE still decides every slot that is handed out."""
    if campaign.status is not CampaignStatus.open or campaign.slots_taken < campaign.target_clips:
        return False
    if now is None:  # the database's time on PostgreSQL (several hosts compare leases), else this host's
        cutoff: Any = sa.func.now() if session.get_bind().dialect.name == "postgresql" else utcnow()
    else:
        cutoff = now
    return _stale_lease(session, campaign.id, cutoff) is None


def _stale_lease(session: Session, campaign_id: int, cutoff: Any) -> int | None:
    return session.scalar(
        sa.select(Assignment.id)
        .where(
            Assignment.campaign_id == campaign_id, Assignment.status == A.active, Assignment.lease_expires_at <= cutoff
        )
        .limit(1)
    )


def _lock_worker(session: Session, worker_id: int, now: datetime | None) -> datetime:
    """Lock the worker's row (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises every write
    transaction) and return ``now``, else the database's time, read in the same round trip."""
    if session.get_bind().dialect.name != "postgresql":
        return now or utcnow()
    db_time = session.execute(_LOCK_WORKER, {"worker_id": worker_id}).one()[1]
    return now or db_time.astimezone(UTC)


def _slot_update(campaign_id: Any) -> sa.Update:
    """The one conditional UPDATE that hands out a slot (atomic: never twice, never past the target)."""
    return (
        sa.update(Campaign)
        .where(
            Campaign.id == campaign_id,
            Campaign.status == CampaignStatus.open,
            Campaign.slots_taken < Campaign.target_clips,
        )
        .values(slots_taken=Campaign.slots_taken + 1)
    )


_ASSIGNMENT_VALUES = ("worker_id", "status", "claimed_at", "lease_expires_at")
# SQLite: the slot's UPDATE alone (the assignment is added to the session after it).
_TAKE_SLOT = _slot_update(sa.bindparam("campaign_id")).execution_options(synchronize_session=False)


def _build_take_slot_and_insert() -> sa.Insert:
    """PostgreSQL: the slot's UPDATE in a CTE and the assignment INSERTed from what it returned,
    one statement (see :func:`_take_slot_for`)."""
    slot = _slot_update(sa.bindparam("campaign_id")).returning(Campaign.id).cte("slot")
    # bound as new_<column>: a parameter named like a column of the table is taken for its VALUES
    columns = [sa.bindparam(f"new_{k}", type_=getattr(Assignment, k).type).label(k) for k in _ASSIGNMENT_VALUES]
    return (
        sa.insert(Assignment)
        .from_select(["campaign_id", *_ASSIGNMENT_VALUES], sa.select(slot.c.id, *columns))
        .returning(Assignment)
        # the parameters fill the bound values; without this the ORM reads them as rows to bulk-insert
        .execution_options(dml_strategy="orm")
    )


_TAKE_SLOT_AND_INSERT = _build_take_slot_and_insert()


def _take_slot_for(
    session: Session, campaign: Campaign, worker_id: int, now: datetime, lease: timedelta
) -> Assignment | None:
    """Take a slot and write the worker's assignment for it, or None when no slot is left.

    On PostgreSQL both in one statement (the UPDATE in a CTE, the INSERT from what it returned): the
    campaign's row stays locked by the UPDATE until COMMIT and every claim of the campaign queues on
    it, so one round trip fewer there is one fewer for each of them (#17). SQLite, which has no
    writing CTE and serialises whole write transactions anyway, runs the two statements."""
    values = {"worker_id": worker_id, "status": A.active, "claimed_at": now, "lease_expires_at": now + lease}
    if session.get_bind().dialect.name == "postgresql":
        a = session.scalar(
            _TAKE_SLOT_AND_INSERT, {"campaign_id": campaign.id, **{f"new_{k}": v for k, v in values.items()}}
        )
        if a is not None:
            set_committed_value(a, "campaign", campaign)  # for the answer, without a load
        return a
    taken = cast(
        "sa.CursorResult[Any]",  # an UPDATE's result has a rowcount
        session.execute(_TAKE_SLOT, {"campaign_id": campaign.id}),
    )
    if taken.rowcount != 1:
        return None
    a = Assignment(campaign=campaign, **values)
    session.add(a)
    return a


def _expire_stale(session: Session, campaign_id: int, now: datetime) -> bool:
    """A full campaign's last resort: expire its leases that ran out (their slots come back).
    A plain read first, so that the refusals of a launch stampede do not queue on the campaign's
    row lock when there is nothing to expire. Returns whether a slot came back."""
    return _stale_lease(session, campaign_id, now) is not None and _expire_in(session, campaign_id, now) > 0


def _require_training(session: Session, worker: User, campaign: Campaign) -> None:
    """A campaign's training requirements (#15, docs/training.md): its qualification, held and not
    revoked (earned by a test or granted by staff, for all campaigns or this one), and its minimum
    recording level. The problem names what to practise; pages link to /training from it."""
    slug = campaign.required_qualification
    if slug and not levels.holds_qualification(session, worker.id, slug, campaign.id):
        raise Forbidden(
            _("This campaign needs a qualification you do not have yet: practise and pass its test first."),
            code="training.qualification_required",
            qualification=slug,
            practise=f"/training/q/{slug}",
        )
    if campaign.min_level > 0:
        have = levels.recording_level(session, worker.id)
        if have < campaign.min_level:
            raise Forbidden(
                _("This campaign needs a higher recording level than yours."),
                code="training.level_required",
                level=have,
                required=campaign.min_level,
                practise="/training",
            )


def _lock(session: Session, table, row_id: int) -> None:
    session.execute(sa.select(table.id).where(table.id == row_id).with_for_update(key_share=True))


def _free_slot(session: Session, campaign_id: int, n: int = 1) -> None:
    session.execute(
        sa.update(Campaign)
        .where(Campaign.id == campaign_id)
        .values(slots_taken=Campaign.slots_taken - n)
        .execution_options(synchronize_session=False)
    )


def expire_leases(session: Session, *, now: datetime | None = None, campaign_id: int | None = None) -> int:
    """Expire active assignments whose lease ran out and give their slots back. Returns how many.
    Campaigns are handled one at a time in id order (the global lock order, see the module doc)."""
    now = now or db_now(session)
    if campaign_id is not None:
        return _expire_in(session, campaign_id, now)
    stale = session.scalars(
        sa.select(Assignment.campaign_id)
        .distinct()
        .where(Assignment.status == A.active, Assignment.lease_expires_at <= now)
        .order_by(Assignment.campaign_id)
    ).all()
    return sum(_expire_in(session, cid, now) for cid in stale)


def _expire_in(session: Session, campaign_id: int, now: datetime) -> int:
    _lock(session, Campaign, campaign_id)
    rows = session.execute(
        sa.update(Assignment)
        .where(Assignment.campaign_id == campaign_id, Assignment.status == A.active, Assignment.lease_expires_at <= now)
        .values(status=A.expired, closed_at=now)
        .returning(Assignment.id, Assignment.worker_id)
        .execution_options(synchronize_session=False)
    ).all()
    if rows:
        _free_slot(session, campaign_id, len(rows))
    for aid, wid in sorted(rows):
        audit.record(
            session,
            None,
            "assignment.expired",
            aid,
            {"campaign_id": campaign_id, "worker_id": wid},
            entity_type="assignment",
        )
    return len(rows)


def get_assignment(session: Session, user: User, assignment_id: int) -> Assignment:
    a = session.get(Assignment, assignment_id)
    if a is None or not policy.can(user, "assignment.view", a):
        raise NotFound(f"No assignment {assignment_id}.", code="assignment.not_found")
    return a


def list_assignments(
    session: Session,
    user: User,
    *,
    campaign_id: int | None = None,
    status: AssignmentStatus | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Assignment]:
    q = sa.select(Assignment).where(policy.visible_assignments(user)).order_by(Assignment.id.desc())
    if campaign_id is not None:
        q = q.where(Assignment.campaign_id == campaign_id)
    if status is not None:
        q = q.where(Assignment.status == status)
    return list(session.scalars(q.limit(limit).offset(offset)))


def release(session: Session, worker: User, a: Assignment, *, reason: str = "worker") -> Assignment:
    """The worker gives the slot back (or their consent was withdrawn)."""
    policy.require(worker, "assignment.release", a)
    _lock(session, Campaign, a.campaign_id)  # campaign before assignment: the global lock order
    done = cast(
        "sa.CursorResult[Any]",  # an UPDATE's result has a rowcount
        session.execute(
            sa.update(Assignment)
            .where(Assignment.id == a.id, Assignment.status == A.active)
            .values(status=A.released, closed_at=db_now(session))
            .execution_options(synchronize_session=False)
        ),
    )
    if done.rowcount != 1:
        session.refresh(a)
        raise Conflict(
            f"This assignment is {a.status.value}; only active ones can be released.", code="assignment.not_active"
        )
    _free_slot(session, a.campaign_id)
    session.refresh(a)
    audit.record(session, worker, "assignment.released", a, {"campaign_id": a.campaign_id, "reason": reason})
    return a


def withdraw_consent(session: Session, worker: User, record_id: int) -> ConsentRecord:
    """Withdraw a consent now (:func:`egocrowd.consent.withdraw`) and release at once the worker's
    active leases on campaigns that required it. Here, not in ``consent``: campaigns build on
    consent, not the other way round."""
    rec = consent.withdraw(session, worker, record_id)
    active = session.scalars(
        sa.select(Assignment)
        .join(Campaign)
        .where(
            Assignment.worker_id == worker.id,
            Assignment.status == A.active,
            # every campaign of the family: they all require its newest revision
            Campaign.consent_version.in_(
                sa.select(ConsentDocument.version).where(ConsentDocument.family == rec.document.family)
            ),
        )
    )
    for a in active:
        release(session, worker, a, reason="consent_withdrawn")
    return rec


def require_active_lease(
    session: Session, worker: User, assignment_id: int, *, now: datetime | None = None
) -> Assignment:
    """For uploads: the assignment must be the worker's own and its lease still running."""
    a = session.get(Assignment, assignment_id)
    if a is None or a.worker_id != worker.id:
        raise Forbidden("This is not your assignment.", code="assignment.not_yours")
    if a.campaign.status is CampaignStatus.closed:  # a paused campaign still takes running leases' clips
        raise Conflict("This campaign is closed; it takes no more uploads.", code="campaign.closed")
    if a.status is A.active and a.lease_expires_at <= (now or db_now(session)):
        raise Gone("The lease on this assignment has expired; claim a new slot.", code="assignment.lease_expired")
    if a.status is not A.active:
        raise Conflict(f"This assignment is {a.status.value}.", code="assignment.not_active")
    return a


def settle(session: Session, assignment_id: int, *, accepted: bool, clip_id: int, actor: User | None) -> bool:
    """A person (or the auto-accept rule, labels.review) decided the assignment's clip: the
    assignment becomes ``accepted`` or ``rejected``. A rejection gives the slot back to the campaign
    so someone can record again; an acceptance of a clip whose slot went back (a rejection overturned
    on appeal, a QC failure overturned after the lease ran out) takes a slot again, even past the
    target: the clip is good and the worker is owed. Returns whether the assignment changed."""
    a = session.get(Assignment, assignment_id)
    if a is None:
        return False
    _lock(session, Campaign, a.campaign_id)  # campaign before assignment: the global lock order
    had_slot = (A.active, A.submitted, A.accepted)
    settled_from = (A.active, A.submitted, A.rejected, A.expired) if accepted else (A.active, A.submitted)
    now = db_now(session)
    row = session.execute(
        sa.update(Assignment)
        .where(Assignment.id == assignment_id, Assignment.status.in_(settled_from))
        .values(status=A.accepted if accepted else A.rejected, closed_at=now)
        .returning(Assignment.id)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return False
    before = a.status
    if not accepted:
        _free_slot(session, a.campaign_id)
    elif before not in had_slot:
        _free_slot(session, a.campaign_id, -1)
    session.refresh(a)
    audit.record(
        session,
        actor,
        "assignment.accepted" if accepted else "assignment.rejected",
        a,
        {"campaign_id": a.campaign_id, "clip_id": clip_id, "before": before.value},
    )
    return True


def progress(session: Session, campaign: Campaign) -> dict[str, int]:
    """Where a campaign stands: assignments by status, slots, and its clips by state; ``accepted``
    is the number of accepted clips (what the target counts, since #10), ``accepted_left`` how many
    the target still wants."""
    counts = dict(
        session.execute(
            sa.select(Assignment.status, sa.func.count())
            .where(Assignment.campaign_id == campaign.id)
            .group_by(Assignment.status)
        ).all()
    )
    out = {s.value: int(counts.get(s, 0)) for s in A}
    clips = dict(
        session.execute(
            sa.select(Clip.status, sa.func.count()).where(Clip.campaign_id == campaign.id).group_by(Clip.status)
        ).all()
    )
    accepted = int(clips.get(ClipStatus.accepted, 0))
    out.update(
        target=campaign.target_clips,
        slots_taken=campaign.slots_taken,
        slots_left=campaign.target_clips - campaign.slots_taken,
        accepted=accepted,  # clips accepted (an assignment's "accepted" count is the same when one clip each)
        accepted_left=max(campaign.target_clips - accepted, 0),
        awaiting_decision=int(clips.get(ClipStatus.qc_passed, 0)),  # passed QC, not decided yet
        clips_declined=int(clips.get(ClipStatus.declined, 0)),
    )
    return out
