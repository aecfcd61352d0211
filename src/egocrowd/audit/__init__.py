"""Append-only, hash-chained audit trail. Every state change calls :func:`record` inside the same
transaction; the event is chained and written when that transaction commits (``chain``), so a
change and its event are committed together or not at all.

- ``encoding``: the canonical bytes of an event and of a checkpoint (format ``egocrowd.audit/1``);
- ``chain``: numbering and hashing events at commit, one order for every writer;
- ``checkpoints``: Ed25519-signed checkpoints of the chain's head and the signing key;
- ``verify``: checking a log (the database or an export file) in constant memory;
- ``export``: the auditors' JSONL file.

See docs/provenance.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd.audit import chain
from egocrowd.audit.encoding import normalize_payload
from egocrowd.db.models import AuditEvent, User


def record(
    session: Session,
    actor: User | None,
    action: str,
    entity: Any,
    payload: dict | None = None,
    *,
    entity_type: str | None = None,
) -> AuditEvent:
    """Write one audit event in ``session``'s transaction. ``entity`` is an ORM object (its table
    name and id are used) or an id together with ``entity_type``. The event is inserted when the
    transaction commits, numbered and hashed into the chain then (its ``id``, ``seq`` and ``at``
    are set at that moment); a rolled-back transaction or savepoint drops it."""
    if entity_type is None:
        entity_type = entity.__tablename__.removesuffix("s")
        session.flush()  # the entity needs its id
        entity_id = entity.id
    else:
        entity_id = entity
    event = AuditEvent(
        actor_id=actor.id if actor else None,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        payload=normalize_payload(_jsonable(payload or {})),
    )
    chain.defer(session, event)
    return event


def events_for(session: Session, entity_type: str, entity_id: Any) -> list[AuditEvent]:
    """The entity's events in order, this transaction's own (not yet chained: no id) last."""
    return find(session, entity_type=entity_type, entity_id=entity_id)


def find(
    session: Session, *, action: str | None = None, entity_type: str | None = None, entity_id: Any = None
) -> list[AuditEvent]:
    """Events matching every filter given, in order, this transaction's own (not yet chained: no
    id) last. A query of the table in the same transaction does not see those: they are written
    at commit (audit.chain), so code and tests that look for an event they may have just recorded
    ask here."""
    q = sa.select(AuditEvent).order_by(AuditEvent.id)
    if action is not None:
        q = q.where(AuditEvent.action == action)
    if entity_type is not None:
        q = q.where(AuditEvent.entity_type == entity_type)
    if entity_id is not None:
        q = q.where(AuditEvent.entity_id == str(entity_id))
    mine = [
        e
        for e in chain.pending(session)
        if (action is None or e.action == action)
        and (entity_type is None or e.entity_type == entity_type)
        and (entity_id is None or e.entity_id == str(entity_id))
    ]
    return list(session.scalars(q)) + mine


def list_events(
    session: Session,
    *,
    after_id: int = 0,
    before_id: int | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    action: str | None = None,
    actor_id: int | None = None,
    actor_email: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    newest_first: bool = False,
    limit: int = 100,
) -> list[AuditEvent]:
    """One page of the log. Paged by id (keyset: a page never shifts when events are added):
    oldest first after ``after_id``, or ``newest_first`` before ``before_id``. Every other argument
    narrows: ``action`` is a prefix ("campaign." finds every campaign event), ``actor_email`` an
    address (any case), ``since``/``until`` a half-open time range [since, until)."""
    q = sa.select(AuditEvent).where(AuditEvent.id > after_id)
    if before_id is not None:
        q = q.where(AuditEvent.id < before_id)
    if entity_type:
        q = q.where(AuditEvent.entity_type == entity_type)
    if entity_id:
        q = q.where(AuditEvent.entity_id == entity_id)
    if action:
        # a prefix, matched literally (LIKE's wildcards in it are escaped)
        q = q.where(AuditEvent.action.startswith(action, autoescape=True))
    if actor_id is not None:
        q = q.where(AuditEvent.actor_id == actor_id)
    if actor_email:
        q = q.where(
            AuditEvent.actor_id.in_(sa.select(User.id).where(sa.func.lower(User.email) == actor_email.strip().lower()))
        )
    if since is not None:
        q = q.where(AuditEvent.at >= since)
    if until is not None:
        q = q.where(AuditEvent.at < until)
    q = q.order_by(AuditEvent.id.desc() if newest_first else AuditEvent.id).limit(limit)
    return list(session.scalars(q))


def iter_events(session: Session, *, after_id: int = 0, chunk: int = 1000) -> Iterator[AuditEvent]:
    """Stream the whole log in id order, a chunk at a time (never loaded whole)."""
    while True:
        rows = list(
            session.scalars(sa.select(AuditEvent).where(AuditEvent.id > after_id).order_by(AuditEvent.id).limit(chunk))
        )
        if not rows:
            return
        yield from rows
        after_id = rows[-1].id


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "value") and not isinstance(value, (int, float, str, bool)):
        return value.value  # enums
    return value
