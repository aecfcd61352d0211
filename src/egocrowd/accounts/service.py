"""Creating users and organizations, checking passwords, browser sessions and API tokens.

Ending sessions: logging out ends one; a password change ends every other one and revokes every
API token; "log out everywhere" and suspension end all of them and revoke every token; a role change
ends all sessions (tokens stay: the role is read from the user row on every request, so they act
with the new role at once).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session, joinedload

from egocrowd import audit
from egocrowd.accounts import policy
from egocrowd.accounts.validation import (
    clean_country,
    clean_display_name,
    clean_email,
    clean_language,
    clean_password,
    clean_time_zone,
    email_key,
)
from egocrowd.clock import utcnow
from egocrowd.db.models import AccountToken, ApiToken, LoginSession, Organization, OrgRole, Role, User
from egocrowd.errors import Conflict, InvalidInput, NotFound, Unauthenticated

_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters
TOKEN_PREFIX = "egc_"
#: last_seen_at / last_used_at move at most this often: one small write a minute per active client.
TOUCH_EVERY = timedelta(seconds=60)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def get_or_create_organization(session: Session, name: str, actor: User | None = None) -> Organization:
    org = session.scalar(sa.select(Organization).where(Organization.name == name))
    if org is None:
        org = Organization(name=name)
        session.add(org)
        audit.record(session, actor, "organization.created", org, {"name": name})
    return org


def create_user(
    session: Session,
    *,
    email: str,
    password: str,
    display_name: str,
    role: Role | str,
    organization: Organization | None = None,
    country: str | None = None,
    actor: User | None = None,
    org_role: OrgRole | str | None = None,
    email_verified: bool = False,
) -> User:
    """A new account. A requester belongs to ``organization`` with ``org_role`` (default: owner of
    a lab that has no members yet, editor of one that has). ``email_verified``: for accounts an
    operator makes (CLI, demo); people who sign up confirm their address by email."""
    email = clean_email(email)
    clean_password(password, email=email)
    country = clean_country(country)
    display_name = clean_display_name(display_name)
    role = Role(role)
    if role is Role.requester and organization is None:
        raise InvalidInput("A requester must belong to an organization.", code="user.organization_required")
    if session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise Conflict("An account with this email already exists.", code="user.email_taken")
    if role is Role.requester and org_role is None:
        has_members = (
            organization is not None
            and organization.id is not None
            and session.scalar(sa.select(User.id).where(User.organization_id == organization.id).limit(1))
        )
        org_role = OrgRole.editor if has_members else OrgRole.owner
    user = User(
        email=email,
        display_name=display_name or email.split("@")[0],
        password_hash=hash_password(password),
        role=role,
        organization=organization,
        country=country,
        org_role=OrgRole(org_role) if role is Role.requester and org_role is not None else None,
        email_verified_at=utcnow() if email_verified else None,
    )
    session.add(user)
    audit.record(
        session,
        actor or None,
        "user.created",
        user,
        {
            "role": role.value,
            "organization_id": organization.id if organization else None,
            "org_role": user.org_role.value if user.org_role else None,
        },
    )
    return user


def stored_password(session: Session, email: str) -> tuple[int | None, str]:
    """(user id, password hash) for a log-in; for an unknown or suspended account (None, a dummy
    hash), so that checking it costs the same and the response time reveals nothing."""
    user = session.scalar(sa.select(User).where(User.email == email_key(email)))
    if user is None or not user.is_active:
        return None, _dummy_hash()
    return user.id, user.password_hash


def verify_password(stored: str, password: str) -> bool:
    """Argon2 verification (deliberately slow: call it outside any transaction)."""
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def rehash_if_needed(session: Session, user_id: int, password: str) -> None:
    user = session.get(User, user_id)
    if user is not None and _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)


@cache
def _dummy_hash() -> str:
    # Made on first use, not at import: an Argon2 hash costs ~50 ms and 64 MiB, which processes
    # that never log anyone in (the worker, the CLI) should not pay.
    return _hasher.hash("not-a-real-password")


def change_password(session: Session, user: User, current: str, new: str, *, keep_session: int | None = None) -> None:
    """Needs the current password. Ends every other session (``keep_session``: the caller's) and
    revokes every API token: whoever knew the old password may have made some."""
    if not verify_password(user.password_hash, current or ""):
        raise Unauthenticated("The current password is wrong.", code="auth.bad_credentials")
    user.password_hash = hash_password(clean_password(new, email=user.email))
    audit.record(session, user, "user.password_changed", user, {})
    expire_account_tokens(session, user, "reset_password")
    end_sessions(session, user, actor=user, reason="password_changed", keep=keep_session, tokens=True)


def expire_account_tokens(session: Session, user: User, purpose: str | None, *, now: datetime | None = None) -> None:
    """Kill ``user``'s unused email links (of one ``purpose``, or all): a newer one was sent, the
    password changed, the account is going."""
    now = now or utcnow()
    q = sa.update(AccountToken).where(
        AccountToken.user_id == user.id, AccountToken.used_at.is_(None), AccountToken.expires_at > now
    )
    if purpose is not None:
        q = q.where(AccountToken.purpose == purpose)
    session.execute(q.values(expires_at=now).execution_options(synchronize_session="fetch"))


def update_profile(
    session: Session,
    user: User,
    *,
    display_name: str | None = None,
    country: str | None | object = ...,
    language: str | None | object = ...,
    time_zone: str | None | object = ...,
) -> User:
    """Change the name shown to others, the country, the language pages and mail speak and the
    time zone they show times in (``None`` or "" clears a setting: the browser's is used; left
    out: kept)."""
    changed: dict[str, Any] = {}
    for field, value, clean in (("language", language, clean_language), ("time_zone", time_zone, clean_time_zone)):
        if value is not ...:
            new = clean(value if isinstance(value, str) else None)
            if new != getattr(user, field):
                changed[field] = {"from": getattr(user, field), "to": new}
                setattr(user, field, new)
    if display_name is not None:
        name = clean_display_name(display_name) or user.display_name
        if name != user.display_name:
            user.display_name, changed["display_name"] = name, True
    if country is not ...:
        code = clean_country(country if isinstance(country, str) else None)
        if code != user.country:
            changed["country"] = {"from": user.country, "to": code}
            user.country = code
    if changed:
        audit.record(session, user, "user.profile_changed", user, changed)
    return user


def blank_account(session: Session, user: User) -> None:
    """The last step of deleting an account (:func:`egocrowd.privacy.delete_account` withdraws the
    consents first): every session and token ends, personal fields are blanked, the password can
    never match. The row stays: the ledger, clips and the audit log point at its id."""
    now = utcnow()
    end_sessions(session, user, actor=user, reason="account_deleted", tokens=True)
    expire_account_tokens(session, user, None, now=now)
    user.email = f"deleted-{user.id}-{secrets.token_hex(4)}@deleted.invalid"
    user.display_name = "Deleted user"
    user.country = None
    user.password_hash = "!deleted"  # not an Argon2 hash: verify_password is always False
    user.email_verified_at = None
    user.is_active = False
    user.deleted_at = now
    audit.record(session, user, "user.deleted", user, {})


def log_out_everywhere(session: Session, user: User) -> None:
    """Every session (the caller's too) and every API token: for a lost phone or a shared computer."""
    end_sessions(session, user, actor=user, reason="everywhere", tokens=True)


def change_role(session: Session, admin: User, user: User, role: Role | str) -> User:
    policy.require(admin, "user.manage")
    _not_yourself(admin, user)
    role = Role(role)
    if role is Role.requester and user.organization_id is None:
        raise InvalidInput("A requester must belong to an organization.", code="user.organization_required")
    if role is not user.role:
        audit.record(session, admin, "user.role_changed", user, {"from": user.role.value, "to": role.value})
        user.role = role
        end_sessions(session, user, actor=admin, reason="role_changed")
    return user


def set_active(session: Session, admin: User, user: User, active: bool) -> User:
    """Suspend (ends every session, revokes every token) or reactivate an account."""
    policy.require(admin, "user.manage")
    _not_yourself(admin, user)
    if active and user.deleted_at is not None:
        raise Conflict(
            "This account was deleted at its owner's request; it cannot be reactivated.", code="user.deleted"
        )
    if user.is_active != active:
        user.is_active = active
        audit.record(session, admin, "user.reactivated" if active else "user.suspended", user, {})
        if not active:
            end_sessions(session, user, actor=admin, reason="suspended", tokens=True)
    return user


def _not_yourself(admin: User, user: User) -> None:
    # An admin who demotes or suspends themselves may leave the platform with no admin at all.
    if admin.id == user.id:
        raise Conflict("Ask another admin to change your own account.", code="user.is_self")


# --- browser sessions -----------------------------------------------------------------------------
def _secret_hash(secret: str) -> str:
    # Session secrets and tokens are 256-bit random: a fast hash is enough (no dictionary to
    # attack), and it lets the lookup be a single indexed equality.
    return hashlib.sha256(secret.encode()).hexdigest()


def start_session(
    session: Session, user: User, *, ttl: timedelta, user_agent: str | None = None, now: datetime | None = None
) -> tuple[LoginSession, str]:
    """A new session row and its secret (for the cookie; stored only hashed)."""
    now = now or utcnow()
    secret = secrets.token_urlsafe(32)
    row = LoginSession(
        user=user,
        secret_hash=_secret_hash(secret),
        user_agent=(user_agent or "")[:200] or None,
        created_at=now,
        last_seen_at=now,
        expires_at=now + ttl,
    )
    session.add(row)
    session.flush()
    audit.record(session, user, "session.started", row, {})
    return row, secret


def session_for_secret(session: Session, secret: str, *, now: datetime | None = None) -> LoginSession | None:
    """The live session this secret opens, or None (unknown, ended, expired, or user suspended)."""
    row = session.scalar(
        sa.select(LoginSession)
        .options(joinedload(LoginSession.user))
        .where(LoginSession.secret_hash == _secret_hash(secret))
    )
    if row is None or row.revoked_at is not None or row.expires_at <= (now or utcnow()) or not row.user.is_active:
        return None
    return row


def end_session_by_secret(session: Session, secret: str) -> None:
    """Log out: the session this cookie secret names ends (nothing happens if it already did)."""
    row = session.scalar(sa.select(LoginSession).where(LoginSession.secret_hash == _secret_hash(secret)))
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, row.user, "session.ended", row, {"reason": "logout"})


def list_sessions(session: Session, user: User, *, now: datetime | None = None) -> list[LoginSession]:
    """The user's live sessions, most recently used first."""
    return list(
        session.scalars(
            sa.select(LoginSession)
            .where(
                LoginSession.user_id == user.id,
                LoginSession.revoked_at.is_(None),
                LoginSession.expires_at > (now or utcnow()),
            )
            .order_by(LoginSession.last_seen_at.desc(), LoginSession.id.desc())
        )
    )


def revoke_session(session: Session, user: User, session_id: int) -> None:
    row = session.get(LoginSession, session_id)
    if row is None or row.user_id != user.id:
        raise NotFound("No such session.", code="session.not_found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, user, "session.ended", row, {"reason": "revoked"})


def end_sessions(
    session: Session, user: User, *, actor: User | None, reason: str, keep: int | None = None, tokens: bool = False
) -> None:
    """End all of ``user``'s sessions but ``keep``; with ``tokens``, revoke their API tokens too."""
    now = utcnow()
    q = (
        sa.update(LoginSession)
        .where(LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if keep is not None:
        q = q.where(LoginSession.id != keep)
    # an UPDATE's result has a rowcount
    ended = cast("sa.CursorResult[Any]", session.execute(q.execution_options(synchronize_session="fetch"))).rowcount
    revoked = 0
    if tokens:
        revoked = cast(
            "sa.CursorResult[Any]",
            session.execute(
                sa.update(ApiToken)
                .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                .values(revoked_at=now)
                .execution_options(synchronize_session="fetch")
            ),
        ).rowcount
    audit.record(session, actor, "user.sessions_ended", user, {"reason": reason, "sessions": ended, "tokens": revoked})


def touch_session(session: Session, session_id: int, *, now: datetime | None = None) -> None:
    _touch(session, LoginSession, LoginSession.last_seen_at, session_id, now or utcnow())


def needs_touch(last: datetime | None, *, now: datetime | None = None) -> bool:
    return last is None or last < (now or utcnow()) - TOUCH_EVERY


def _touch(session: Session, model, column, row_id: int, now: datetime) -> None:
    # Conditional: several processes racing to record the same minute write once.
    session.execute(
        sa.update(model)
        .where(model.id == row_id, sa.or_(column.is_(None), column < now - TOUCH_EVERY))
        .values({column.key: now})
        .execution_options(synchronize_session=False)
    )


# --- API tokens -----------------------------------------------------------------------------------
def issue_token(
    session: Session, user: User, name: str = "api", *, ttl: timedelta | None = None, now: datetime | None = None
) -> tuple[ApiToken, str]:
    """Returns the token row and the plaintext token (shown once, stored only hashed).
    ``ttl`` None: it never expires."""
    now = now or utcnow()
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user=user,
        name=name[:100] or "api",
        prefix=plaintext[:10],
        token_hash=_secret_hash(plaintext),
        created_at=now,
        expires_at=now + ttl if ttl is not None else None,
    )
    session.add(row)
    audit.record(
        session,
        user,
        "token.issued",
        row,
        {"name": row.name, "prefix": row.prefix, "expires_at": row.expires_at.isoformat() if row.expires_at else None},
    )
    return row, plaintext


# Built once: every API request asks it (#17: building a statement costs a claim more CPU than the
# database spends answering it).
_TOKEN_BY_HASH = (
    sa.select(ApiToken).options(joinedload(ApiToken.user)).where(ApiToken.token_hash == sa.bindparam("token_hash"))
)


def check_token(session: Session, token: str, *, now: datetime | None = None) -> ApiToken:
    """The live token row, or 401: ``auth.bad_token`` (unknown, revoked, user suspended) or
    ``auth.token_expired``."""
    row = session.scalar(_TOKEN_BY_HASH, {"token_hash": _secret_hash(token)})
    if row is None or row.revoked_at is not None or not row.user.is_active:
        raise Unauthenticated("This API token is not valid.", code="auth.bad_token")
    if row.expires_at is not None and row.expires_at <= (now or utcnow()):
        raise Unauthenticated("This API token has expired; log in again for a new one.", code="auth.token_expired")
    return row


def touch_token(session: Session, token_id: int, *, now: datetime | None = None) -> None:
    _touch(session, ApiToken, ApiToken.last_used_at, token_id, now or utcnow())


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(session.scalars(sa.select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)))


def active_user(session: Session, user_id: int) -> User | None:
    """The user with this id, unless the account is gone or suspended (``is_active`` False)."""
    user = session.get(User, user_id)
    return user if user is not None and user.is_active else None


def revoke_token(session: Session, user: User, token_id: int) -> None:
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise NotFound("No such token.", code="token.not_found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, user, "token.revoked", row, {"prefix": row.prefix})
