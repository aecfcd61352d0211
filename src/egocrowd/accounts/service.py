"""Creating users and organizations, checking passwords, issuing and checking API tokens."""

from __future__ import annotations

import hashlib
import secrets

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.accounts.validation import clean_country, clean_display_name, clean_email, clean_password
from egocrowd.clock import utcnow
from egocrowd.db.models import ApiToken, Organization, Role, User
from egocrowd.errors import Conflict, InvalidInput, NotFound, Unauthenticated

_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters
TOKEN_PREFIX = "egc_"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def get_or_create_organization(session: Session, name: str, actor: User | None = None) -> Organization:
    org = session.scalar(sa.select(Organization).where(Organization.name == name))
    if org is None:
        org = Organization(name=name)
        session.add(org)
        audit.record(session, actor, "organization.created", org, {"name": name})
    return org


def create_user(session: Session, *, email: str, password: str, display_name: str, role: Role | str,
                organization: Organization | None = None, country: str | None = None,
                actor: User | None = None) -> User:
    email = clean_email(email)
    clean_password(password)
    country = clean_country(country)
    display_name = clean_display_name(display_name)
    role = Role(role)
    if role is Role.requester and organization is None:
        raise InvalidInput("A requester must belong to an organization.", code="user.organization_required")
    if session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise Conflict("An account with this email already exists.", code="user.email_taken")
    user = User(email=email, display_name=display_name or email.split("@")[0],
                password_hash=hash_password(password), role=role, organization=organization,
                country=country)
    session.add(user)
    audit.record(session, actor or None, "user.created", user,
                 {"role": role.value, "organization_id": organization.id if organization else None})
    return user


def authenticate(session: Session, email: str, password: str) -> User:
    user = session.scalar(sa.select(User).where(User.email == email.strip().lower()))
    # Hash even for unknown emails so response time does not reveal which accounts exist.
    stored = user.password_hash if user else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        raise Unauthenticated("Wrong email or password.", code="auth.bad_credentials") from None
    if user is None or not user.is_active:
        raise Unauthenticated("Wrong email or password.", code="auth.bad_credentials")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


_DUMMY_HASH = _hasher.hash("not-a-real-password")


def _token_hash(token: str) -> str:
    # Tokens are 256-bit random: a fast hash is enough (no dictionary to attack), and it lets the
    # lookup be a single indexed equality.
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, user: User, name: str = "api") -> tuple[ApiToken, str]:
    """Returns the token row and the plaintext token (shown once, stored only hashed)."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user=user, name=name[:100] or "api", prefix=plaintext[:10], token_hash=_token_hash(plaintext))
    session.add(row)
    audit.record(session, user, "token.issued", row, {"name": row.name, "prefix": row.prefix})
    return row, plaintext


def user_for_token(session: Session, token: str) -> User:
    row = session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == _token_hash(token)))
    if row is None or row.revoked_at is not None or not row.user.is_active:
        raise Unauthenticated("This API token is not valid.", code="auth.bad_token")
    return row.user


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    """``user``'s API tokens (revoked ones too), oldest first."""
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
