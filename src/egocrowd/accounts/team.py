"""A lab's team as its owner runs it from the lab console: find a member, bring in an existing
account by its email, or make a new requester account for a colleague. The rules themselves (who may
join, the last owner) live in :mod:`egocrowd.accounts.organizations`."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd.accounts import organizations, policy
from egocrowd.accounts.service import create_user
from egocrowd.accounts.validation import email_key
from egocrowd.db.models import Organization, OrgRole, Role, User
from egocrowd.errors import NotFound


def own_lab(session: Session, user: User) -> Organization:
    """The lab ``user`` belongs to (not-found for accounts without one, admins included)."""
    if user.organization_id is None:
        raise NotFound("You do not belong to a lab.", code="org.not_found")
    return organizations.get_organization(session, user, user.organization_id)


def get_member(session: Session, viewer: User, org: Organization, user_id: int) -> User:
    policy.require(viewer, "org.view", org)
    return organizations.require_member(org, session.get(User, user_id))


def add_by_email(session: Session, actor: User, org: Organization, email: str, org_role: OrgRole | str) -> User:
    """Bring an existing account into the lab. Only the lab's owners (or an admin) may look up
    accounts this way, and only to add them."""
    policy.require(actor, "org.manage", org)
    user = session.scalar(sa.select(User).where(User.email == email_key(email), User.deleted_at.is_(None)))
    if user is None:
        raise NotFound(
            "There is no account with this email: give a name and a first password to make one.",
            code="org.no_such_account",
            field="email",
        )
    return organizations.add_member(session, actor, org, user, org_role)


def create_member(
    session: Session,
    actor: User,
    org: Organization,
    *,
    email: str,
    display_name: str,
    password: str,
    org_role: OrgRole | str,
) -> User:
    """A new requester account in the lab, with a first password the owner passes on."""
    policy.require(actor, "org.manage", org)
    return create_user(
        session,
        email=email,
        password=password,
        display_name=display_name,
        role=Role.requester,
        organization=org,
        org_role=organizations.org_role_of(org_role),
        actor=actor,
    )
