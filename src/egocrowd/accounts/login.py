"""Logging in with a password, throttled per account and per client address.

Attempts are counted in the database (``login_throttles``), so every app process sees the same
counts, and an attempt is counted *before* the password is hashed: a refused attempt costs one
indexed write instead of an Argon2 hash (deliberately ~0.1 s of CPU). A success gives back its own
count (the account's counter starts again), so the counters hold failures and attempts in flight.

Three short transactions: count (or refuse), hash with no transaction open (no lock held during
Argon2, on SQLite the write lock), then record the outcome.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from egocrowd.accounts import service as accounts
from egocrowd.accounts.validation import email_key
from egocrowd.db.models import LoginThrottle, utcnow
from egocrowd.errors import TooManyRequests, Unauthenticated


@dataclass(frozen=True)
class Limits:
    window: timedelta = timedelta(minutes=15)
    per_account: int = 10
    per_address: int = 100  # generous: mobile carriers put many workers behind one address

    @classmethod
    def from_settings(cls, settings) -> Limits:
        return cls(
            timedelta(minutes=settings.login_window_minutes),
            settings.login_attempts_per_account,
            settings.login_attempts_per_address,
        )


def log_in(
    db, email: str, password: str, *, address: str | None, limits: Limits = Limits(), now: datetime | None = None
) -> int:
    """The user id for this email and password, or 401 ``auth.bad_credentials``, or 429
    ``auth.throttled`` (with ``retry_after`` seconds) before any hashing."""
    keys = _keys(email, address, limits)
    with db.transaction() as s:
        reserve(s, keys, limits.window, now=now)
        user_id, stored = accounts.stored_password(s, email)
    if not accounts.verify_password(stored, password or ""):  # hashed even for unknown emails: no timing leak
        user_id = None
    with db.transaction() as s:
        settle(s, keys, success=user_id is not None)
        if user_id is not None:
            accounts.rehash_if_needed(s, user_id, password)
    if user_id is None:
        raise Unauthenticated("Wrong email or password.", code="auth.bad_credentials")
    return user_id


def _keys(email: str | None, address: str | None, limits: Limits, kind: str = "") -> list[tuple[str, int, bool]]:
    """(hashed key, limit, is the account's) for the account and, when known, the client's network.
    ``kind`` keeps other counts (password-reset requests...) apart from log-ins."""
    keys = [(_hash(kind + "account:" + email_key(email)), limits.per_account, True)] if email is not None else []
    if address:
        keys.append((_hash(kind + "address:" + _network(address)), limits.per_address, False))
    return sorted(keys)  # one lock order for every process


def count_attempt(
    session: Session, kind: str, *, email: str | None, address: str | None, limits: Limits = Limits()
) -> None:
    """Count one attempt of something else worth throttling like a log-in (asking for reset emails,
    using reset links), per account and client address, in counters of its own: 429 past the limits."""
    reserve(session, _keys(email, address, limits, kind + ":"), limits.window)


def _network(address: str) -> str:
    # An IPv6 client usually holds a whole /64: count it as one address.
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()  # no emails or addresses stored in clear


def reserve(session: Session, keys, window: timedelta, *, now: datetime | None = None) -> None:
    """Count one attempt on every key, or refuse (counting nothing) if any key is at its limit."""
    now = now or utcnow()
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    rows = []
    for key, limit, _ in keys:
        row = None
        while row is None:  # a sweep may delete an old row between the two statements: add it again
            session.execute(
                insert(LoginThrottle)
                .values(key=key, window_start=now, attempts=0)
                .on_conflict_do_nothing(index_elements=["key"])
            )
            row = session.scalar(sa.select(LoginThrottle).where(LoginThrottle.key == key).with_for_update())
        if row.window_start <= now - window:
            row.window_start, row.attempts = now, 0
        if row.attempts >= limit:
            wait = (row.window_start + window - now).total_seconds()
            raise TooManyRequests(
                "Too many log-in attempts. Wait a little before trying again.",
                code="auth.throttled",
                retry_after=max(1, math.ceil(wait)),
            )
        rows.append(row)
    for row in rows:
        row.attempts += 1


def settle(session: Session, keys, *, success: bool) -> None:
    """A success gives its attempt back (the account's counter restarts); a failure stays counted."""
    if not success:
        return
    for key, _, is_account in keys:
        q = sa.update(LoginThrottle).where(LoginThrottle.key == key)
        q = (
            q.values(attempts=0)
            if is_account
            else q.where(LoginThrottle.attempts > 0).values(attempts=LoginThrottle.attempts - 1)
        )
        session.execute(q.execution_options(synchronize_session=False))


def sweep(session: Session, window: timedelta, *, now: datetime | None = None) -> int:
    """Forget counters whose window is over (for housekeeping); returns how many."""
    cutoff = (now or utcnow()) - window
    done = cast(
        "sa.CursorResult[Any]",  # a DELETE's result has a rowcount
        session.execute(
            sa.delete(LoginThrottle)
            .where(LoginThrottle.window_start <= cutoff)
            .execution_options(synchronize_session=False)
        ),
    )
    return done.rowcount
