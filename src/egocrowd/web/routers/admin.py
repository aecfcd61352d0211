"""The admin console's JSON API (/api/v1/admin): accounts, organizations and their teams, the
platform's numbers and health, putting stuck pipeline jobs back. Admins only; the pages under
/admin call the same service functions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from pydantic import Field

from egocrowd.accounts import directory, organizations, policy
from egocrowd.accounts import service as accounts
from egocrowd.clips import media, operations
from egocrowd.clock import utcnow
from egocrowd.db.models import MAX_ID, OrgRole, Role
from egocrowd.inputs import InputModel
from egocrowd.web.auth import unit
from egocrowd.web.routers.api import Id, Limit
from egocrowd.web.routers.clips import media_response
from egocrowd.web.schemas import (
    AdminUserDetailOut,
    AdminUserOut,
    HealthOut,
    JobOut,
    MemberOut,
    OrganizationDetailOut,
    OrganizationOut,
    OverviewOut,
    Page,
    PutBackOut,
    QueueDepthOut,
    UserFactsOut,
    page_of,
)

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


class RoleIn(InputModel):
    role: Role


class ActiveIn(InputModel):
    active: bool


class OrganizationIn(InputModel):
    name: str = Field(max_length=200)


class MemberIn(InputModel):
    email: str = Field(max_length=254)
    org_role: OrgRole = OrgRole.editor


class OrgRoleIn(InputModel):
    org_role: OrgRole


class AuthoringIn(InputModel):
    allowed: bool


class RequeueIn(InputModel):
    stage: str = Field(min_length=1, max_length=40)
    stale_only: bool = False


def _with(model, row, **extra):
    """``model`` read from ``row``'s attributes plus ``extra`` (what the row does not hold)."""
    return model.model_validate({**{f: getattr(row, f) for f in model.model_fields if f not in extra}, **extra})


# --- accounts -------------------------------------------------------------------------------------
@router.get("/users", response_model=Page[AdminUserOut])
def find_users(
    request: Request,
    q: str | None = Query(None, max_length=254, description="A piece of the email or the name"),
    role: Role | None = None,
    active: bool | None = Query(None, description="false: the suspended accounts"),
    organization_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    before_id: Annotated[int | None, Query(ge=0, le=MAX_ID, description="Older than this id (paging)")] = None,
    limit: Limit = 50,
):
    """Newest accounts first."""
    with unit(request) as ctx:
        query = directory.UserQuery(text=q, role=role, active=active, organization_id=organization_id)
        rows = directory.find_users(ctx.session, ctx.require_user(), query, before_id=before_id, limit=limit)
        return page_of(AdminUserOut, rows)


def _detail(ctx, user) -> AdminUserDetailOut:
    facts = directory.user_facts(ctx.session, ctx.user, user, now=utcnow())
    return _with(AdminUserDetailOut, user, facts=UserFactsOut.model_validate(facts))


@router.get("/users/{user_id}", response_model=AdminUserDetailOut)
def get_user(request: Request, user_id: Id):
    with unit(request) as ctx:
        return _detail(ctx, directory.get_user(ctx.session, ctx.require_user(), user_id))


@router.post("/users/{user_id}/role", response_model=AdminUserDetailOut)
def change_role(request: Request, user_id: Id, body: RoleIn):
    """Ends the person's browser sessions (their pages change with the role)."""
    with unit(request) as ctx:
        admin = ctx.require_user()
        user = accounts.change_role(ctx.session, admin, directory.get_user(ctx.session, admin, user_id), body.role)
        return _detail(ctx, user)


@router.post("/users/{user_id}/active", response_model=AdminUserDetailOut)
def set_active(request: Request, user_id: Id, body: ActiveIn):
    """``false`` suspends: every session ends and every API token is revoked; ``true`` reactivates."""
    with unit(request) as ctx:
        admin = ctx.require_user()
        user = accounts.set_active(ctx.session, admin, directory.get_user(ctx.session, admin, user_id), body.active)
        return _detail(ctx, user)


# --- organizations --------------------------------------------------------------------------------
def _org(ctx, org) -> OrganizationDetailOut:
    members = [MemberOut.model_validate(u) for u in organizations.members(ctx.session, org)]
    return _with(OrganizationDetailOut, org, members=members)


@router.get("/organizations", response_model=Page[OrganizationOut])
def list_organizations(request: Request):
    with unit(request) as ctx:
        return page_of(OrganizationOut, organizations.list_organizations(ctx.session, ctx.require_user()))


@router.post("/organizations", status_code=201, response_model=OrganizationDetailOut)
def create_organization(request: Request, body: OrganizationIn):
    with unit(request) as ctx:
        return _org(ctx, organizations.create_organization(ctx.session, ctx.require_user(), body.name))


def _admin_org(ctx, org_id: int):
    """The organization, for admins only (labs manage their own team on their own pages)."""
    admin = policy.require(ctx.user, "user.manage")
    return admin, organizations.get_organization(ctx.session, admin, org_id)


@router.get("/organizations/{org_id}", response_model=OrganizationDetailOut)
def get_organization(request: Request, org_id: Id):
    with unit(request) as ctx:
        return _org(ctx, _admin_org(ctx, org_id)[1])


@router.post("/organizations/{org_id}/members", response_model=OrganizationDetailOut)
def add_member(request: Request, org_id: Id, body: MemberIn):
    """An existing account (a worker, or a requester without a lab) joins the lab."""
    with unit(request) as ctx:
        admin, org = _admin_org(ctx, org_id)
        user = directory.find_by_email(ctx.session, admin, body.email)
        organizations.add_member(ctx.session, admin, org, user, body.org_role)
        return _org(ctx, org)


@router.post("/organizations/{org_id}/members/{user_id}/role", response_model=OrganizationDetailOut)
def set_org_role(request: Request, org_id: Id, user_id: Id, body: OrgRoleIn):
    with unit(request) as ctx:
        admin, org = _admin_org(ctx, org_id)
        organizations.set_org_role(
            ctx.session, admin, org, directory.get_user(ctx.session, admin, user_id), body.org_role
        )
        return _org(ctx, org)


@router.delete("/organizations/{org_id}/members/{user_id}", response_model=OrganizationDetailOut)
def remove_member(request: Request, org_id: Id, user_id: Id):
    """The person keeps their account, as a worker without a lab; their sessions end."""
    with unit(request) as ctx:
        admin, org = _admin_org(ctx, org_id)
        organizations.remove_member(ctx.session, admin, org, directory.get_user(ctx.session, admin, user_id))
        return _org(ctx, org)


@router.post("/organizations/{org_id}/consent-authoring", response_model=OrganizationDetailOut)
def set_consent_authoring(request: Request, org_id: Id, body: AuthoringIn):
    """Whether the lab may write consent documents for its own campaigns."""
    with unit(request) as ctx:
        admin, org = _admin_org(ctx, org_id)
        return _org(ctx, organizations.set_consent_authoring(ctx.session, admin, org, body.allowed))


# --- the platform ---------------------------------------------------------------------------------
@router.get("/overview", response_model=OverviewOut)
def overview(request: Request):
    with unit(request) as ctx:
        admin = ctx.require_user()
        o = operations.overview(ctx.session, admin)
        return OverviewOut(
            users=directory.users_by_role(ctx.session, admin), campaigns=o.campaigns, clips=o.clips, jobs=o.jobs
        )


@router.get("/health", response_model=HealthOut)
def health(request: Request):
    """Queue depths, stuck jobs, unfinished uploads, the blob store's disk, the database's size."""
    state = request.app.state
    with unit(request) as ctx:
        h = operations.health(ctx.session, ctx.require_user(), state.blobs, state.upload_store)
        return HealthOut(
            queue=[QueueDepthOut(stage=st, status=s, jobs=n) for (st, s), n in sorted(h.depths.items())],
            stuck=[JobOut.model_validate(j) for j in h.stuck],
            uploads_open=h.uploads_open,
            uploads_bytes=h.uploads_bytes,
            blobs=h.blobs.count,
            blobs_bytes=h.blobs.bytes,
            disk_total_bytes=h.blobs.disk_total,
            disk_free_bytes=h.blobs.disk_free,
            database_bytes=h.database_bytes,
        )


@router.post("/jobs/{job_id}/retry", response_model=PutBackOut)
def retry_job(request: Request, job_id: Id):
    """A failed job runs again with fresh attempts (nothing happens to a job that has not failed)."""
    with unit(request) as ctx:
        return PutBackOut(job_ids=operations.retry_job(ctx.session, ctx.require_user(), job_id))


@router.post("/jobs/requeue", response_model=PutBackOut)
def requeue(request: Request, body: RequeueIn):
    """A stage runs again for the clips it finished or failed (``stale_only``: by an older version)."""
    with unit(request) as ctx:
        ids = operations.requeue_stage(ctx.session, ctx.require_user(), body.stage, stale_only=body.stale_only)
        return PutBackOut(job_ids=ids)


# --- raw media (issue #9): admins only, with a reason, every access audited ---------------------------
class RawIn(InputModel):
    reason: str = Field(max_length=500, description="Why the original footage is needed (written to the audit log)")


def raw_link(request: Request, clip_id: int, reason: str | None, form_csrf: str | None = None) -> str:
    """The short-lived link to a clip's original file (see clips.media.grant_raw)."""
    secret = request.app.state.settings.resolved_secret_key()
    with unit(request, form_csrf=form_csrf) as ctx:
        token = media.grant_raw(ctx.session, ctx.require_user(), clip_id, reason, secret=secret)
    return f"/api/v1/admin/clips/{clip_id}/raw?token={token}"


@router.post("/clips/{clip_id}/raw")
def grant_raw(request: Request, clip_id: Id, body: RawIn) -> dict:
    """A link to the clip's original footage, valid 5 minutes for this admin and this clip."""
    return {"url": raw_link(request, clip_id, body.reason), "expires_in": media.RAW_TOKEN_SECONDS}


@router.get("/clips/{clip_id}/raw", response_class=FileResponse)
def raw_file(request: Request, clip_id: Id, token: Annotated[str, Query(max_length=2000)] = ""):
    """The original file (Range requests answered 206); the token's first use is audited."""
    with unit(request) as ctx:  # who asks (a read-only unit: GET)
        admin_id = ctx.require_user().id
    secret = request.app.state.settings.resolved_secret_key()
    with request.app.state.db.transaction() as s:  # the audit event, committed before any byte leaves
        f = media.raw_file(s, admin_id, clip_id, token, request.app.state.blobs, secret=secret)
    return media_response(request, f, cache="no-store")
