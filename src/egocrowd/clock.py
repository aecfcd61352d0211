"""The one clock of the application: timezone-aware UTC.

Leases, retries and the audit chain compare times written by several hosts: where that order
matters the database's ``now()`` decides (see docs/architecture.md); this is for everything else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy.orm import Session


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def db_now(session: Session) -> datetime:
    """The database's time, for leases and retries that several hosts compare: PostgreSQL's
    ``now()`` (the transaction's start, the same for every row it writes). SQLite lives on one
    host, whose clock is this one."""
    if session.get_bind().dialect.name == "postgresql":
        now: datetime = session.execute(sa.select(sa.func.now())).scalar_one()
        return now.astimezone(UTC)
    return utcnow()


__all__ = ["db_now", "utcnow"]
