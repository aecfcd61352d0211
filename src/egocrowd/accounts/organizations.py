"""Organizations (labs) and their teams: who belongs to a lab and with which role inside it.

An admin runs every organization; a lab's owners run their own team. Removing someone from a lab
takes the lab's data away from them at once (the role is read from the row on every request), and
ends their sessions, since pages they have open show the lab's campaigns.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.accounts import policy
from egocrowd.accounts.service import end_sessions
from egocrowd.db.models import Organization, OrgRole, Role, User
from egocrowd.errors import Conflict, InvalidInput, NotFound


def create_organization(session: Session, admin: User, name: str) -> Organization:
    policy.require(admin, "user.manage")
    name = " ".join(name.split())
    if not 2 <= len(name) <= 200:
        raise InvalidInput("An organization's name has 2 to 200 characters.", code="org.bad_name", field="name")
    if session.scalar(sa.select(Organization.id).where(Organization.name == name)) is not None:
        raise Conflict(f"An organization named {name!r} exists.", code="org.name_taken", field="name")
    org = Organization(name=name)
    session.add(org)
    audit.record(session, admin, "organization.created", org, {"name": name})
    return org


def get_organization(session: Session, viewer: User | None, org_id: int) -> Organization:
    """The organization if ``viewer`` may see it; otherwise not-found (never reveal that it exists)."""
    org = session.get(Organization, org_id)
    if org is None or not policy.can(viewer, "org.view", org):
        raise NotFound(f"No organization {org_id}.", code="org.not_found")
    return org


def list_organizations(session: Session, viewer: User) -> list[Organization]:
    policy.require(viewer, "user.manage")
    return list(session.scalars(sa.select(Organization).order_by(Organization.name)))


def members(session: Session, org: Organization) -> list[User]:
    """The lab's team, owners first, then by name."""
    order = sa.case({OrgRole.owner.value: 0, OrgRole.editor.value: 1}, value=User.org_role, else_=2)
    return list(
        session.scalars(
            sa.select(User)
            .where(User.organization_id == org.id, User.role == Role.requester)
            .order_by(order, User.display_name)
        )
    )


def org_role_of(value: OrgRole | str) -> OrgRole:
    """A role inside a lab, or plain invalid input (never a crash on a made-up value)."""
    try:
        return OrgRole(value)
    except ValueError:
        raise InvalidInput("Choose owner, editor or viewer.", code="validation.failed", field="org_role") from None


def add_member(session: Session, actor: User, org: Organization, user: User, org_role: OrgRole | str) -> User:
    """Make ``user`` (a worker or requester without a lab) a requester of ``org`` with ``org_role``."""
    policy.require(actor, "org.manage", org)
    org_role = org_role_of(org_role)
    if user.role is Role.admin:
        raise Conflict("Admins see every lab already; they cannot join one.", code="org.member_is_admin")
    if user.organization_id not in (None, org.id):
        raise Conflict("This person belongs to another lab; they must leave it first.", code="org.member_elsewhere")
    before = {"role": user.role.value, "organization_id": user.organization_id}
    user.role, user.organization_id, user.org_role = Role.requester, org.id, org_role
    audit.record(
        session,
        actor,
        "organization.member_added",
        user,
        {**before, "organization_id_to": org.id, "org_role": org_role.value},
    )
    return user


def set_org_role(session: Session, actor: User, org: Organization, user: User, org_role: OrgRole | str) -> User:
    policy.require(actor, "org.manage", org)
    org_role = org_role_of(org_role)
    require_member(org, user)
    if user.org_role is OrgRole.owner and org_role is not OrgRole.owner:
        _keep_an_owner(session, org, user)
    if user.org_role is not org_role:
        audit.record(
            session,
            actor,
            "organization.member_role_changed",
            user,
            {"organization_id": org.id, "from": user.org_role.value if user.org_role else None, "to": org_role.value},
        )
        user.org_role = org_role
    return user


def remove_member(session: Session, actor: User, org: Organization, user: User) -> User:
    """The person keeps their account (and anything they did stays attributed to them) as a worker
    without a lab; their sessions end."""
    policy.require(actor, "org.manage", org)
    require_member(org, user)
    if user.org_role is OrgRole.owner:
        _keep_an_owner(session, org, user)
    user.role, user.organization_id, user.org_role = Role.worker, None, None
    audit.record(session, actor, "organization.member_removed", user, {"organization_id": org.id})
    end_sessions(session, user, actor=actor, reason="removed_from_organization")
    return user


def set_consent_authoring(session: Session, admin: User, org: Organization, allowed: bool) -> Organization:
    """Whether the lab may write consent documents for its own campaigns (an admin's decision)."""
    policy.require(admin, "user.manage")
    if org.may_author_consent is not allowed:
        org.may_author_consent = allowed
        audit.record(session, admin, "organization.consent_authoring_set", org, {"allowed": allowed})
    return org


def require_member(org: Organization, user: User | None) -> User:
    """``user`` if it is one of the lab's requesters, else 404 ``org.not_member``."""
    if user is None or user.organization_id != org.id or user.role is not Role.requester:
        raise NotFound("This person is not a member of this organization.", code="org.not_member")
    return user


def _keep_an_owner(session: Session, org: Organization, leaving: User) -> None:
    if not has_another_owner(session, org.id, leaving):
        raise Conflict("A lab needs at least one owner: make someone else owner first.", code="org.last_owner")


def has_another_owner(session: Session, organization_id: int, leaving: User) -> bool:
    """Whether the lab keeps an owner who can act (an active member) once ``leaving`` is gone: the
    one rule behind a role change, a removal and deleting one's own account."""
    others = session.scalar(
        sa.select(sa.func.count())
        .select_from(User)
        .where(
            User.organization_id == organization_id,
            User.role == Role.requester,
            User.org_role == OrgRole.owner,
            User.id != leaving.id,
            User.is_active.is_(True),
        )
    )
    return bool(others)
