"""The hash chain: each event is given its place and its hashes once, when its transaction commits.

``audit.record`` hands the event to :func:`defer`; nothing is written until the transaction
commits. Then, in SQLAlchemy's ``before_commit`` hook, after the transaction's own writes are
flushed (so every row lock it needs is already held), :func:`append` takes the chain's lock, reads
the head (the last chained event), numbers the new events after it, hashes them and inserts them.
The lock is the last one a transaction takes, and under it only the events are inserted, so it
cannot close a cycle with the row-lock order of campaigns/assignments.py: the foreign key of an
event's actor takes a key-share lock, which the ``FOR NO KEY UPDATE`` locks of that order never
block. It is held from the head read until COMMIT, a few milliseconds.

- PostgreSQL: a transaction-level advisory lock (one per schema), so writers on every host queue;
  the head is read after the lock is granted (READ COMMITTED: that statement sees the last
  committer's events). Times are the database's ``clock_timestamp()``, read under the lock, so they
  never go backwards along the chain, whichever host wrote the event.
- SQLite: every write transaction already holds the database's one write lock (BEGIN IMMEDIATE,
  see egocrowd.db.engine); one host, whose clock is this one.

The unique index on ``seq`` is the last guard: a writer that somehow skipped the lock could not
fork the chain, its commit would fail.

Events recorded inside a savepoint (``session.begin_nested()``) that is rolled back are dropped
with it, like the rows they describe.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, SessionTransaction, make_transient_to_detached

from egocrowd.audit.encoding import GENESIS, body_hash, event_body
from egocrowd.clock import utcnow
from egocrowd.db.models import AuditEvent

_PENDING = "egocrowd.audit.pending"
#: work to do once the events are chained, before COMMIT (checkpoints at a release)
_AFTER_APPEND = "egocrowd.audit.after_append"

# One advisory lock per schema (tests and benchmarks share a database with a schema each).
_PG_LOCK = sa.text("SELECT pg_advisory_xact_lock(1164863795, hashtext(current_schema()))")
# The same lock, then the time and the head read after it, in one round trip (migration 0009).
_PG_LOCK_AND_HEAD = sa.text("SELECT head_at, head_seq, head_hash FROM audit_chain_head()")
_HEAD = sa.text("SELECT seq, hash FROM audit_events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1")
# The events' INSERT (see append), built once; ids come back in the order the rows were given.
_COLUMNS = ("at", "actor_id", "action", "entity_type", "entity_id", "payload", "seq", "prev_hash", "hash")
_TABLE = cast(sa.Table, AuditEvent.__table__)
_INSERT = sa.insert(_TABLE).returning(_TABLE.c.id, sort_by_parameter_order=True)


def defer(session: Session, event: AuditEvent) -> None:
    """Keep ``event`` until ``session``'s transaction commits (then :func:`append` writes it)."""
    if session.get_transaction() is None:
        session.connection()  # begins the transaction the event belongs to
    owner = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_PENDING, []).append((owner, event))


def at_commit(session: Session, work: Any) -> None:
    """Run ``work(session, head_seq, head_hash)`` at commit, after this transaction's events are
    chained, still under the chain lock (used for a checkpoint that must cover them)."""
    session.info.setdefault(_AFTER_APPEND, []).append(work)


def pending(session: Session) -> list[AuditEvent]:
    """Events recorded in this transaction and not yet chained (they are, at commit)."""
    return [e for _, e in session.info.get(_PENDING, ())]


def append(session: Session, events: Sequence[AuditEvent]) -> tuple[int, str]:
    """Chain and insert ``events`` in this order, after the current head; returns the new head
    (seq, hash). Call only at the end of a transaction (it takes the chain lock until COMMIT)."""
    if session.get_bind().dialect.name == "postgresql":
        now, seq, prev = session.execute(_PG_LOCK_AND_HEAD).one()
        now = now.astimezone(UTC)
    else:
        head = session.execute(_HEAD).first()
        seq, prev = head if head is not None else (None, None)
        now = utcnow()
    seq = seq or 0
    prev = prev or GENESIS
    for e in events:
        seq += 1
        e.seq, e.prev_hash, e.at = seq, prev, now
        prev = body_hash(
            event_body(
                seq=seq,
                prev_hash=e.prev_hash,
                at=now,
                actor_id=e.actor_id,
                action=e.action,
                entity_type=e.entity_type,
                entity_id=e.entity_id,
                payload=e.payload,
            )
        )
        e.hash = prev
    # A Core INSERT, not the unit of work: under the chain's lock every other writer waits, and the
    # ORM's flush of the events took this server more CPU than the database took to store them (#17).
    ids = session.scalars(_INSERT, [{c: getattr(e, c) for c in _COLUMNS} for e in events]).all()
    for e, id_ in zip(events, ids, strict=True):
        e.id = id_
        make_transient_to_detached(e)  # stored: as an event added and flushed would be
        session.add(e)
    return seq, prev


def head(session: Session) -> tuple[int, str]:
    """The last chained event's (seq, hash) as this transaction sees it; (0, GENESIS) when none."""
    row = session.execute(_HEAD).first()
    return (int(row[0]), str(row[1])) if row is not None else (0, GENESIS)


@sa_event.listens_for(Session, "before_commit")
def _chain_at_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint is released: its events wait for the outer commit
    events = [e for _, e in session.info.pop(_PENDING, ())]
    after = session.info.pop(_AFTER_APPEND, [])
    if not events and not after:
        return
    # The transaction's own writes first: every lock they need is taken before the chain's.
    session.flush()
    if events:
        seq, hash_ = append(session, events)
    else:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(_PG_LOCK)
        seq, hash_ = head(session)
    for work in after:
        work(session, seq, hash_)


@sa_event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous: SessionTransaction) -> None:
    kept = [(owner, e) for owner, e in session.info.get(_PENDING, ()) if not _within(owner, previous)]
    if kept:
        session.info[_PENDING] = kept
    else:
        session.info.pop(_PENDING, None)
    if previous.parent is None:
        session.info.pop(_AFTER_APPEND, None)


@sa_event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction: SessionTransaction) -> None:
    # A session closed without commit or rollback must not carry events into its next transaction.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_AFTER_APPEND, None)


def _within(owner: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while owner is not None:
        if owner is ended:
            return True
        owner = owner.parent
    return False


__all__ = ["append", "at_commit", "defer", "head", "pending"]
