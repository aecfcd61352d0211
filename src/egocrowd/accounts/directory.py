"""The admin's view of the accounts: finding people, and the facts shown about one person.

Only admins (``user.manage``) may look; everything here reads, the changes are in
:mod:`egocrowd.accounts.service` (``change_role``, ``set_active``) and
:mod:`egocrowd.accounts.organizations`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from egocrowd.accounts import policy
from egocrowd.accounts.validation import email_key
from egocrowd.db.models import Assignment, Clip, ConsentRecord, LoginSession, Role, User
from egocrowd.errors import NotFound


@dataclass(frozen=True)
class UserQuery:
    """Which accounts an admin is looking for; every field narrows, none means everyone."""

    text: str | None = None  # a piece of the email or the name, any case
    role: Role | None = None
    active: bool | None = None  # False: the suspended ones
    organization_id: int | None = None


def find_users(
    session: Session, admin: User, query: UserQuery, *, before_id: int | None = None, limit: int = 50
) -> list[User]:
    """Newest accounts first, paged by id (``before_id``: the last id of the previous page)."""
    policy.require(admin, "user.manage")
    q = sa.select(User).options(joinedload(User.organization)).order_by(User.id.desc()).limit(limit)
    if query.text and query.text.strip():
        text = query.text.strip().lower()  # "%" and "_" in it are matched as they are (autoescape)
        q = q.where(
            sa.or_(
                sa.func.lower(User.email).contains(text, autoescape=True),
                sa.func.lower(User.display_name).contains(text, autoescape=True),
            )
        )
    if query.role is not None:
        q = q.where(User.role == query.role)
    if query.active is not None:
        q = q.where(User.is_active.is_(query.active))
    if query.organization_id is not None:
        q = q.where(User.organization_id == query.organization_id)
    if before_id is not None:
        q = q.where(User.id < before_id)
    return list(session.scalars(q))


def get_user(session: Session, admin: User, user_id: int) -> User:
    policy.require(admin, "user.manage")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user {user_id}.", code="user.not_found")
    return user


def find_by_email(session: Session, admin: User, email: str) -> User:
    policy.require(admin, "user.manage")
    user = session.scalar(sa.select(User).where(User.email == email_key(email)))  # as log-in looks it up
    if user is None:
        raise NotFound("Nobody has an account with this email.", code="user.not_found", field="email")
    return user


@dataclass(frozen=True)
class UserFacts:
    """What an admin sees at a glance about one account."""

    consents_signed: int
    consents_active: int
    assignments: int
    clips: int
    sessions_live: int
    last_login: datetime | None


def user_facts(session: Session, admin: User, user: User, *, now: datetime) -> UserFacts:
    policy.require(admin, "user.manage")

    def count(model, *where) -> int:
        return session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0

    return UserFacts(
        consents_signed=count(ConsentRecord, ConsentRecord.user_id == user.id),
        consents_active=count(ConsentRecord, ConsentRecord.user_id == user.id, ConsentRecord.withdrawn_at.is_(None)),
        assignments=count(Assignment, Assignment.worker_id == user.id),
        clips=count(Clip, Clip.worker_id == user.id),
        sessions_live=count(
            LoginSession,
            LoginSession.user_id == user.id,
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > now,
        ),
        last_login=session.scalar(
            sa.select(sa.func.max(LoginSession.created_at)).where(LoginSession.user_id == user.id)
        ),
    )


def users_by_role(session: Session, admin: User) -> dict[str, dict[str, int]]:
    """role → {"active": n, "suspended": n}, every role present (zeros too)."""
    policy.require(admin, "user.manage")
    out = {r.value: {"active": 0, "suspended": 0} for r in Role}
    rows = session.execute(sa.select(User.role, User.is_active, sa.func.count()).group_by(User.role, User.is_active))
    for role, active, n in rows:
        out[role.value]["active" if active else "suspended"] += n
    return out


def users_by_id(session: Session, admin: User, ids: set[int]) -> dict[int, User]:
    """The accounts behind a page of audit events' actors, in one query."""
    policy.require(admin, "user.manage")
    if not ids:
        return {}
    return {u.id: u for u in session.scalars(sa.select(User).where(User.id.in_(ids)))}
