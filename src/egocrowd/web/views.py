"""How our objects look on the wire (JSON). One function per object, used by API and pages."""

from __future__ import annotations

from egocrowd.campaigns.service import hourly_rate_cents
from egocrowd.db.models import (ApiToken, Assignment, AuditEvent, Campaign, ConsentDocument, ConsentRecord,
                                LoginSession, User)


def user_out(u: User) -> dict:
    return {"id": u.id, "email": u.email, "display_name": u.display_name, "role": u.role.value,
            "organization": u.organization.name if u.organization else None, "country": u.country,
            "created_at": u.created_at.isoformat()}


def campaign_out(c: Campaign) -> dict:
    return {"id": c.id, "title": c.title, "status": c.status.value, "instructions": c.instructions,
            "organization": c.organization.name, "requirements": c.requirements, "taxonomy": c.taxonomy,
            "target_clips": c.target_clips, "slots_taken": c.slots_taken,
            "slots_left": c.target_clips - c.slots_taken,
            "pay": {"per_clip_cents": c.pay_cents, "currency": c.currency, "expected_minutes": c.expected_minutes,
                    "hourly_rate_cents": hourly_rate_cents(c)},
            "allowed_countries": c.allowed_countries, "data_use": c.data_use, "buyer_name": c.buyer_name,
            "consent_version": c.consent_version, "created_at": c.created_at.isoformat(),
            "updated_at": c.updated_at.isoformat()}


def assignment_out(a: Assignment) -> dict:
    return {"id": a.id, "campaign_id": a.campaign_id, "campaign_title": a.campaign.title,
            "worker_id": a.worker_id, "status": a.status.value, "claimed_at": a.claimed_at.isoformat(),
            "lease_expires_at": a.lease_expires_at.isoformat(),
            "submitted_at": a.submitted_at.isoformat() if a.submitted_at else None,
            "closed_at": a.closed_at.isoformat() if a.closed_at else None}


def document_out(d: ConsentDocument, *, with_body: bool = True) -> dict:
    out = {"version": d.version, "title": d.title, "sha256": d.sha256, "scopes": d.scopes,
           "created_at": d.created_at.isoformat()}
    if with_body:
        out["body"] = d.body
    return out


def consent_out(r: ConsentRecord) -> dict:
    return {"id": r.id, "user_id": r.user_id, "version": r.document.version, "document_sha256": r.document_sha256,
            "scopes": r.scopes, "signed_at": r.signed_at.isoformat(),
            "withdrawn_at": r.withdrawn_at.isoformat() if r.withdrawn_at else None,
            "active": r.withdrawn_at is None}


def _iso(dt) -> str | None:
    return dt.isoformat() if dt is not None else None


def token_out(t: ApiToken) -> dict:
    return {"id": t.id, "name": t.name, "prefix": t.prefix, "created_at": t.created_at.isoformat(),
            "revoked": t.revoked_at is not None, "expires_at": _iso(t.expires_at),
            "last_used_at": _iso(t.last_used_at)}


def session_out(s: LoginSession, current_id: int | None = None) -> dict:
    return {"id": s.id, "created_at": s.created_at.isoformat(), "last_seen_at": s.last_seen_at.isoformat(),
            "expires_at": s.expires_at.isoformat(), "user_agent": s.user_agent, "current": s.id == current_id}


def event_out(e: AuditEvent) -> dict:
    return {"id": e.id, "at": e.at.isoformat(), "actor_id": e.actor_id, "action": e.action,
            "entity_type": e.entity_type, "entity_id": e.entity_id, "payload": e.payload}


# --- the same shapes as schemas, so /api/docs documents every response -----------------------------
from typing import Any, Generic, TypeVar  # noqa: E402

from pydantic import BaseModel  # noqa: E402

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]


class UserOut(BaseModel):
    id: int
    email: str
    display_name: str
    role: str
    organization: str | None
    country: str | None
    created_at: str


class PayOut(BaseModel):
    per_clip_cents: int
    currency: str
    expected_minutes: float
    hourly_rate_cents: int


class CampaignOut(BaseModel):
    id: int
    title: str
    status: str
    instructions: str
    organization: str
    requirements: dict[str, Any]
    taxonomy: dict[str, Any]
    target_clips: int
    slots_taken: int
    slots_left: int
    pay: PayOut
    allowed_countries: list[str]
    data_use: dict[str, bool]
    buyer_name: str
    consent_version: str
    created_at: str
    updated_at: str


class AssignmentOut(BaseModel):
    id: int
    campaign_id: int
    campaign_title: str
    worker_id: int
    status: str
    claimed_at: str
    lease_expires_at: str
    submitted_at: str | None
    closed_at: str | None


class DocumentOut(BaseModel):
    version: str
    title: str
    sha256: str
    scopes: list[dict[str, Any]]
    created_at: str
    body: str | None = None


class ConsentOut(BaseModel):
    id: int
    user_id: int
    version: str
    document_sha256: str
    scopes: list[str]
    signed_at: str
    withdrawn_at: str | None
    active: bool


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: str
    revoked: bool
    expires_at: str | None  # None: never expires
    last_used_at: str | None  # to the minute


class SessionOut(BaseModel):
    id: int
    created_at: str
    last_seen_at: str  # to the minute
    expires_at: str
    user_agent: str | None
    current: bool  # the session making this request


class IssuedTokenOut(TokenOut):
    token: str
    user: UserOut


class EventOut(BaseModel):
    id: int
    at: str
    actor_id: int | None
    action: str
    entity_type: str
    entity_id: str
    payload: dict[str, Any]


class ProgressOut(BaseModel):
    campaign_id: int
    status: str
    target: int
    slots_taken: int
    slots_left: int
    active: int
    submitted: int
    accepted: int
    rejected: int
    expired: int
    released: int
