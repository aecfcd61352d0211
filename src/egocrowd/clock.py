"""The one clock of the application: timezone-aware UTC.

Leases, retries and the audit chain compare times written by several hosts: where that order
matters the database's ``now()`` decides (see docs/architecture.md); this is for everything else.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


__all__ = ["utcnow"]
