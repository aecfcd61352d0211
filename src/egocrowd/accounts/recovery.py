"""What email proves: signing up, confirming an address (and changing it), resetting a password.

Every link carries a one-time secret (:class:`AccountToken`; only its sha256 is stored). A link works
once, before it expires; issuing a new one of the same kind kills the older ones, and so does a
password change. These functions change the database and give back the :class:`Letter` to send:
the caller sends it *after* the transaction committed.

Sign-up answers alike whether or not the address already has an account (same response, same Argon2
cost): a new address gets a confirmation link, an existing one a note that someone tried to use it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit, i18n
from egocrowd.accounts import service as accounts
from egocrowd.accounts.validation import clean_country, clean_display_name, clean_email, clean_password, email_key
from egocrowd.clock import utcnow
from egocrowd.db.models import AccountToken, Role, User
from egocrowd.errors import Conflict, Gone
from egocrowd.i18n import tr
from egocrowd.mail import Letter

VERIFY = "verify_email"
RESET = "reset_password"
RESET_TTL = timedelta(hours=1)
VERIFY_TTL = timedelta(days=3)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()  # 256-bit random secrets: a fast hash is enough


def _issue(session: Session, user: User, purpose: str, email: str, ttl: timedelta, now: datetime) -> str:
    accounts.expire_account_tokens(session, user, purpose, now=now)
    secret = secrets.token_urlsafe(32)
    session.add(
        AccountToken(
            user=user, purpose=purpose, email=email, token_hash=_hash(secret), created_at=now, expires_at=now + ttl
        )
    )
    return secret


def _redeem(session: Session, secret: str, purpose: str, now: datetime) -> AccountToken:
    """The live token for this secret, now used; or 410 ``user.link_invalid``."""
    row = session.scalar(
        sa.select(AccountToken)
        .where(AccountToken.token_hash == _hash(secret or ""), AccountToken.purpose == purpose)
        .with_for_update()  # two tabs following one link at once: the second waits, then sees it used
    )
    if (
        row is None
        or row.used_at is not None
        or row.expires_at <= now
        or not row.user.is_active
        or row.user.deleted_at is not None
    ):
        raise Gone(
            "This link was already used or is too old. Ask for a new one.", code="user.link_invalid", purpose=purpose
        )
    row.used_at = now
    return row


# --- sign-up and addresses ------------------------------------------------------------------------
def sign_up(
    session: Session,
    *,
    email: str,
    password: str,
    display_name: str = "",
    country: str | None = None,
    language: str | None = None,
    base_url: str,
    now: datetime | None = None,
) -> Letter:
    """A worker account for a new address (unconfirmed, with a confirmation link), or, for an
    address that has one, a note to its owner. The caller answers the same in both cases.
    ``language``: the one the person was browsing in, kept as the account's (their mail speaks it)."""
    email = clean_email(email)
    clean_password(password, email=email)
    clean_country(country)
    clean_display_name(display_name)
    existing = session.scalar(sa.select(User).where(User.email == email))
    if existing is None:
        user = accounts.create_user(
            session, email=email, password=password, display_name=display_name, role=Role.worker, country=country
        )
        user.language = i18n.supported(language)
        return start_email_verification(session, user, base_url=base_url, now=now)
    accounts.hash_password(password)  # the same Argon2 cost as a real sign-up: the time reveals nothing
    audit.record(session, None, "user.signup_attempted", existing, {})
    return _someone_tried(existing, existing.email, base_url)


def _someone_tried(owner: User, email: str, base_url: str, *, change: bool = False) -> Letter:
    """The note to the owner of an address someone tried to use, in the owner's language."""
    with i18n.using(owner.language, owner.time_zone):
        if change:
            subject = tr("Someone tried to use your address for another account")
            first = tr(
                "Someone (perhaps you) tried to move another egocrowd account to this address, "
                "which already has an account."
            )
        else:
            subject = tr("Someone tried to sign up with your address")
            first = tr(
                "Someone (perhaps you) tried to create an egocrowd account with this address, "
                "which already has an account."
            )
        login, forgot = f"{base_url}/login", f"{base_url}/forgot-password"
        rest = tr(
            "If it was you: log in at {login}, or, if you forgot your password, choose a new one at {forgot}.",
            login=login,
            forgot=forgot,
        )
        last = tr("If it was not you, you can ignore this email: nothing changed.")
    return Letter(email, subject, f"{first}\n\n{rest}\n\n{last}\n")


def start_email_verification(
    session: Session, user: User, *, email: str | None = None, base_url: str, now: datetime | None = None
) -> Letter:
    """A link that confirms ``email`` (default: the account's address). A different address is a
    change: it replaces the old one only once its link is followed. An address another account
    uses gets a note instead (the answer does not tell the caller which)."""
    now = now or utcnow()
    email = clean_email(email) if email is not None else user.email
    if email != user.email:
        owner = session.scalar(sa.select(User).where(User.email == email))
        if owner is not None:
            audit.record(session, user, "user.email_change_refused", user, {})
            return _someone_tried(owner, email, base_url, change=True)
        audit.record(session, user, "user.email_change_started", user, {})
    secret = _issue(session, user, VERIFY, email, VERIFY_TTL, now)
    link = f"{base_url}/verify-email?token={secret}"
    with i18n.using(user.language, user.time_zone):
        subject = tr("Confirm your email address")
        hello = tr("Hello {name},", name=user.display_name)
        open_it = tr("Open this link to confirm that this is your address for egocrowd:")
        works = i18n.ngettext(
            "The link works once, for {days} day. Until you confirm, you can look around but not take tasks.",
            "The link works once, for {days} days. Until you confirm, you can look around but not take tasks.",
            VERIFY_TTL.days,
        ).format(days=VERIFY_TTL.days)
        ignore = tr("If you did not ask for this, ignore this email.")
    return Letter(email, subject, f"{hello}\n\n{open_it}\n\n{link}\n\n{works}\n\n{ignore}\n")


def verify_email(session: Session, secret: str, *, now: datetime | None = None) -> User:
    """Follow a confirmation link: the address is confirmed (and, for a change, replaces the old one)."""
    now = now or utcnow()
    row = _redeem(session, secret, VERIFY, now)
    user = row.user
    if row.email != user.email:
        if session.scalar(sa.select(User.id).where(User.email == row.email, User.id != user.id)) is not None:
            raise Conflict("Another account uses this address now.", code="user.email_taken")
        user.email = row.email
        audit.record(session, user, "user.email_changed", user, {})
        accounts.expire_account_tokens(session, user, RESET, now=now)  # links sent to the old address
    user.email_verified_at = now
    audit.record(session, user, "user.email_verified", user, {})
    return user


# --- password reset -------------------------------------------------------------------------------
def start_password_reset(
    session: Session, user: User, *, actor: User | None, base_url: str, now: datetime | None = None
) -> Letter:
    """A one-time link (valid an hour) to choose a new password, mailed to the account's address.
    ``actor``: the admin who started it for someone locked out, or None (the person, by email)."""
    if user.deleted_at is not None:  # its address is a placeholder: nobody would get the link
        raise Conflict("This account was deleted at its owner's request.", code="user.deleted")
    now = now or utcnow()
    secret = _issue(session, user, RESET, user.email, RESET_TTL, now)
    audit.record(session, actor, "user.password_reset_started", user, {"by_admin": actor is not None})
    minutes = int(RESET_TTL.total_seconds() // 60)
    with i18n.using(user.language, user.time_zone):
        subject = tr("Choose a new egocrowd password")
        hello = tr("Hello {name},", name=user.display_name)
        if actor is not None:
            asked = tr(
                "An administrator asked to reset the password of your egocrowd account. "
                "Open this link within {minutes} minutes to choose a new one:",
                minutes=minutes,
            )
        else:
            asked = tr(
                "Someone (hopefully you) asked to reset the password of your egocrowd account. "
                "Open this link within {minutes} minutes to choose a new one:",
                minutes=minutes,
            )
        last = tr("The link works once. If you did not ask for it, ignore this email: your password stays as it is.")
    link = f"{base_url}/reset-password?token={secret}"
    return Letter(user.email, subject, f"{hello}\n\n{asked}\n\n{link}\n\n{last}\n")


def request_password_reset(
    session: Session, email: str, *, base_url: str, now: datetime | None = None
) -> Letter | None:
    """The public "forgot your password?": a letter for a live account, None for any other address
    (the caller answers the same either way)."""
    user = session.scalar(sa.select(User).where(User.email == email_key(email)))
    if user is None or not user.is_active or user.deleted_at is not None:
        return None
    return start_password_reset(session, user, actor=None, base_url=base_url, now=now)


def check_reset_link(session: Session, secret: str, *, now: datetime | None = None) -> None:
    """410 ``user.link_invalid`` unless the link can still be used (the form is shown only then)."""
    row = session.scalar(
        sa.select(AccountToken).where(AccountToken.token_hash == _hash(secret or ""), AccountToken.purpose == RESET)
    )
    if row is None or row.used_at is not None or row.expires_at <= (now or utcnow()):
        raise Gone("This link was already used or is too old. Ask for a new one.", code="user.link_invalid")


def reset_password(session: Session, secret: str, new_password: str, *, now: datetime | None = None) -> User:
    """Set a new password with a reset link: every session ends, every API token and link is
    revoked. Following the link also proves the address, so it counts as confirmed."""
    now = now or utcnow()
    row = _redeem(session, secret, RESET, now)
    user = row.user
    user.password_hash = accounts.hash_password(clean_password(new_password, email=user.email))
    if user.email_verified_at is None and row.email == user.email:
        user.email_verified_at = now
    audit.record(session, None, "user.password_reset", user, {})
    accounts.expire_account_tokens(session, user, None, now=now)
    accounts.end_sessions(session, user, actor=None, reason="password_reset", tokens=True)
    return user
