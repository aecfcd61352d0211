"""JSON API, version 1. Every error is an RFC 9457 problem document (see egocrowd.web.problems)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query, Request
from pydantic import Field, StringConstraints

from egocrowd import audit
from egocrowd.accounts import policy, recovery
from egocrowd.accounts import service as accounts
from egocrowd.campaigns import assignments
from egocrowd.campaigns import service as campaigns
from egocrowd.campaigns.schema import CampaignIn, CampaignPatch
from egocrowd.db.models import MAX_ID, AssignmentStatus, CampaignStatus, OrgRole, Role
from egocrowd.inputs import InputModel
from egocrowd.web.auth import unit
from egocrowd.web.letters import SENT, base_url, send_letters
from egocrowd.web.schemas import (
    AssignmentOut,
    CampaignOut,
    EventOut,
    Page,
    ProgressOut,
    UserOut,
    page_of,
)

router = APIRouter(prefix="/api/v1")
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
# Row ids are 32-bit integers in the database (see db.models.MAX_ID): a bigger number is nobody's id.
# Unbounded, it reached the driver and failed there (a 500 on PostgreSQL); bounded, it is a 422.
Id = Annotated[int, Path(ge=0, le=MAX_ID)]
QueryId = Annotated[int | None, Query(ge=0, le=MAX_ID)]


class _In(InputModel):
    pass


class SignupIn(_In):
    email: str = Field(max_length=254)
    password: Annotated[str, StringConstraints(strip_whitespace=False)] = Field(min_length=10, max_length=200)
    display_name: str = Field("", max_length=100)
    country: str | None = Field(None, pattern=r"^[A-Za-z]{2}$")


class UserIn(SignupIn):
    role: Role
    organization: str | None = Field(None, min_length=2, max_length=200)
    org_role: OrgRole | None = None  # a requester's role in the lab (default: owner of a new lab)


class StatusIn(_In):
    status: Literal["open", "paused", "closed"]


@router.get("/health", tags=["meta"])
def health(request: Request):
    with unit(request) as ctx:
        ctx.session.execute(sa.text("SELECT 1"))
    return {"status": "ok"}


# --- accounts -------------------------------------------------------------------------------------
@router.post("/auth/signup", status_code=202, tags=["accounts"])
def signup(request: Request, body: SignupIn):
    """Workers sign themselves up; other roles are created by an admin. The answer is the same for
    a new address and one that has an account (each gets an email: a confirmation link, or a note
    that someone tried); log in once the link is followed (docs/account.md)."""
    with unit(request) as ctx:
        letter = recovery.sign_up(
            ctx.session,
            email=body.email,
            password=body.password,
            display_name=body.display_name,
            country=body.country,
            base_url=base_url(request),
        )
    send_letters(request, letter)
    return SENT


@router.get("/me", tags=["accounts"], response_model=UserOut)
def me(request: Request):
    with unit(request) as ctx:
        return UserOut.model_validate(ctx.require_user())


@router.post("/users", status_code=201, tags=["accounts"], response_model=UserOut)
def create_user(request: Request, body: UserIn):
    """Admins create accounts of any role (requesters with their organization)."""
    with unit(request) as ctx:
        admin = policy.require(ctx.user, "user.manage")
        org = accounts.get_or_create_organization(ctx.session, body.organization, admin) if body.organization else None
        user = accounts.create_user(
            ctx.session,
            email=body.email,
            password=body.password,
            display_name=body.display_name,
            role=body.role,
            organization=org,
            country=body.country,
            actor=admin,
            org_role=body.org_role,
        )
        return UserOut.model_validate(user)


# --- campaigns ------------------------------------------------------------------------------------
@router.get("/campaigns", tags=["campaigns"], response_model=Page[CampaignOut])
def list_campaigns(request: Request, status: CampaignStatus | None = None, limit: Limit = 100, offset: Offset = 0):
    with unit(request) as ctx:
        rows = campaigns.list_campaigns(ctx.session, ctx.require_user(), status=status, limit=limit, offset=offset)
        return page_of(CampaignOut, rows)


@router.post("/campaigns", status_code=201, tags=["campaigns"], response_model=CampaignOut)
def create_campaign(request: Request, body: CampaignIn):
    with unit(request) as ctx:
        return CampaignOut.model_validate(campaigns.create_campaign(ctx.session, ctx.require_user(), body))


@router.get("/campaigns/{campaign_id}", tags=["campaigns"], response_model=CampaignOut)
def get_campaign(request: Request, campaign_id: Id):
    with unit(request) as ctx:
        return CampaignOut.model_validate(campaigns.get_campaign(ctx.session, ctx.require_user(), campaign_id))


@router.patch("/campaigns/{campaign_id}", tags=["campaigns"], response_model=CampaignOut)
def edit_campaign(request: Request, campaign_id: Id, body: CampaignPatch):
    with unit(request) as ctx:
        return CampaignOut.model_validate(campaigns.update_campaign(ctx.session, ctx.require_user(), campaign_id, body))


@router.post("/campaigns/{campaign_id}/status", tags=["campaigns"], response_model=CampaignOut)
def set_status(request: Request, campaign_id: Id, body: StatusIn):
    """Move through the lifecycle: draft → open ⇄ paused → closed (draft → closed cancels)."""
    with unit(request) as ctx:
        return CampaignOut.model_validate(
            campaigns.transition(ctx.session, ctx.require_user(), campaign_id, body.status)
        )


@router.post("/campaigns/{campaign_id}/clone", status_code=201, tags=["campaigns"], response_model=CampaignOut)
def clone_campaign(request: Request, campaign_id: Id):
    """A new draft with every setting of this campaign, titled "Copy of …"."""
    with unit(request) as ctx:
        return CampaignOut.model_validate(campaigns.clone_campaign(ctx.session, ctx.require_user(), campaign_id))


@router.get("/campaigns/{campaign_id}/progress", tags=["campaigns"], response_model=ProgressOut)
def campaign_progress(request: Request, campaign_id: Id):
    with unit(request) as ctx:
        c = campaigns.get_managed_campaign(ctx.session, ctx.require_user(), campaign_id)
        return ProgressOut(campaign_id=c.id, status=c.status, **assignments.progress(ctx.session, c))


@router.post("/campaigns/{campaign_id}/claim", status_code=201, tags=["assignments"], response_model=AssignmentOut)
def claim(request: Request, campaign_id: Id):
    settings = request.app.state.settings
    with unit(request) as ctx:
        a = assignments.claim(
            ctx.session,
            ctx.require_user(),
            campaign_id,
            lease=timedelta(hours=settings.lease_hours),
            max_open=settings.max_open_assignments,
        )
    # The answer is built after COMMIT: from the slot's UPDATE to the commit every claim of this
    # campaign waits on its row, so nothing that can wait runs in between (#17).
    return AssignmentOut.model_validate(a)


# --- assignments ----------------------------------------------------------------------------------
@router.get("/assignments", tags=["assignments"], response_model=Page[AssignmentOut])
def list_assignments(
    request: Request,
    campaign_id: QueryId = None,
    status: AssignmentStatus | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
):
    with unit(request) as ctx:
        rows = assignments.list_assignments(
            ctx.session, ctx.require_user(), campaign_id=campaign_id, status=status, limit=limit, offset=offset
        )
        return page_of(AssignmentOut, rows)


@router.get("/assignments/{assignment_id}", tags=["assignments"], response_model=AssignmentOut)
def get_assignment(request: Request, assignment_id: Id):
    with unit(request) as ctx:
        return AssignmentOut.model_validate(assignments.get_assignment(ctx.session, ctx.require_user(), assignment_id))


@router.post("/assignments/{assignment_id}/release", tags=["assignments"], response_model=AssignmentOut)
def release_assignment(request: Request, assignment_id: Id):
    with unit(request) as ctx:
        user = ctx.require_user()
        a = assignments.get_assignment(ctx.session, user, assignment_id)
        return AssignmentOut.model_validate(assignments.release(ctx.session, user, a))


# --- audit ----------------------------------------------------------------------------------------
@router.get("/audit", tags=["audit"], response_model=Page[EventOut])
def audit_events(
    request: Request,
    entity_type: str | None = Query(None, max_length=40),
    entity_id: str | None = Query(None, max_length=64),
    action: str | None = Query(None, max_length=60, description='A prefix: "campaign." finds every campaign event'),
    actor: str | None = Query(None, max_length=254, description="The email of who acted"),
    actor_id: QueryId = None,
    since: datetime | None = Query(None, description="From this time (ISO 8601), inclusive"),
    until: datetime | None = Query(None, description="Up to this time, exclusive"),
    after_id: int = Query(0, ge=0, le=MAX_ID),
    before_id: QueryId = None,
    order: Literal["asc", "desc"] = Query("asc", description="desc: newest first (page with before_id)"),
    limit: Limit = 100,
):
    with unit(request) as ctx:
        policy.require(ctx.user, "audit.view")
        return page_of(
            EventOut,
            audit.list_events(
                ctx.session,
                after_id=after_id,
                before_id=before_id,
                entity_type=entity_type,
                entity_id=entity_id,
                action=action,
                actor_id=actor_id,
                actor_email=actor,
                since=_utc(since),
                until=_utc(until),
                newest_first=order == "desc",
                limit=limit,
            ),
        )


def _utc(t: datetime | None) -> datetime | None:
    """A time without a zone is read as UTC (every time the platform shows is UTC)."""
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t
