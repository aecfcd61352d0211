"""Creating, editing and moving campaigns through their lifecycle."""

from __future__ import annotations

from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit, consent
from egocrowd.accounts import policy
from egocrowd.campaigns.schema import CampaignIn, CampaignPatch
from egocrowd.clock import utcnow
from egocrowd.db.models import Campaign, CampaignStatus, User
from egocrowd.errors import Conflict, InvalidInput, NotFound

S = CampaignStatus
#: The lifecycle. Anything not listed is refused with ``campaign.bad_transition``.
TRANSITIONS: dict[CampaignStatus, set[CampaignStatus]] = {
    S.draft: {S.open, S.closed},
    S.open: {S.paused, S.closed},
    S.paused: {S.open, S.closed},
    S.closed: set(),
}
#: Fields a live (open or paused) campaign may still change: wording and size, never the deal.
EDITABLE_WHEN_LIVE = {"title", "instructions", "target_clips"}


class PayTerms(Protocol):
    """What the hourly rate is computed from: a campaign row or its API model."""

    @property
    def pay_cents(self) -> int: ...
    @property
    def expected_minutes(self) -> float: ...


def hourly_rate_cents(c: PayTerms) -> int:
    return round(c.pay_cents * 60 / c.expected_minutes)


def get_campaign(session: Session, user: User | None, campaign_id: int, *, for_update: bool = False) -> Campaign:
    """The campaign if ``user`` may see it; otherwise not-found (never reveal that it exists)."""
    q = sa.select(Campaign).where(Campaign.id == campaign_id)
    if for_update:
        q = q.with_for_update()
    c = session.scalar(q)
    if c is None or not policy.can(user, "campaign.view", c):
        raise NotFound(f"No campaign {campaign_id}.", code="campaign.not_found")
    return c


def get_managed_campaign(session: Session, user: User | None, campaign_id: int) -> Campaign:
    """The campaign if ``user`` may manage it (edit, transitions, progress, statistics); not-found
    if they may not even see it, forbidden if they see it but do not manage it."""
    c = get_campaign(session, user, campaign_id)
    policy.require(user, "campaign.manage", c)
    return c


def list_campaigns(
    session: Session, user: User, *, status: CampaignStatus | None = None, limit: int = 100, offset: int = 0
) -> list[Campaign]:
    q = sa.select(Campaign).where(policy.visible_campaigns(user)).order_by(Campaign.id.desc())
    if status is not None:
        q = q.where(Campaign.status == status)
    if not policy.can(user, "work.take"):
        return list(session.scalars(q.limit(limit).offset(offset)))
    # Country rules are JSON lists: filter in Python, portably, and page over what is left (paging
    # the query first would return short or empty pages when other countries' campaigns come first).
    rows: list[Campaign] = []
    skip, start = offset, 0
    while len(rows) < limit:
        batch = list(session.scalars(q.limit(500).offset(start)))
        if not batch:
            break
        start += len(batch)
        for c in batch:
            if c.allowed_countries and user.country not in c.allowed_countries:
                continue
            if skip:
                skip -= 1
            else:
                rows.append(c)
    return rows[:limit]


def create_campaign(session: Session, actor: User, data: CampaignIn) -> Campaign:
    policy.require(actor, "campaign.create")
    if actor.organization_id is None:
        raise InvalidInput("Only members of an organization can post campaigns.", code="campaign.organization_required")
    consent.check_campaign_document(session, data.consent_version, actor.organization_id, data.data_use.model_dump())
    now = utcnow()
    c = Campaign(
        organization_id=actor.organization_id,
        created_by=actor.id,
        status=S.draft,
        created_at=now,
        updated_at=now,
        **_columns(data.model_dump()),
    )
    session.add(c)
    audit.record(session, actor, "campaign.created", c, {"title": c.title, "target_clips": c.target_clips})
    return c


def update_campaign(session: Session, actor: User, campaign_id: int, patch: CampaignPatch) -> Campaign:
    c = get_campaign(session, actor, campaign_id, for_update=True)
    policy.require(actor, "campaign.manage", c)
    # The fields the caller sent, each one whole: a nested model (requirements, taxonomy, data_use)
    # is stored with its defaults filled in, never as just the keys that were sent.
    changes = {k: getattr(patch, k) for k in patch.model_fields_set}
    if not changes:
        return c
    if c.status is S.closed:
        raise Conflict("A closed campaign cannot be edited.", code="campaign.closed")
    if c.status is not S.draft:
        frozen = sorted(set(changes) - EDITABLE_WHEN_LIVE)
        if frozen:
            raise Conflict(
                f"Pause-safe edits only once a campaign is live; cannot change: {', '.join(frozen)}.",
                code="campaign.frozen_field",
            )
    if "consent_version" in changes or "data_use" in changes:
        new = _columns(changes)
        consent.check_campaign_document(
            session, new.get("consent_version", c.consent_version), c.organization_id, new.get("data_use", c.data_use)
        )
    if changes.get("target_clips") is not None and changes["target_clips"] < c.slots_taken:
        raise Conflict(
            f"{c.slots_taken} slots are already taken; the target cannot go below that.",
            code="campaign.target_below_taken",
        )
    before = {k: _plain(getattr(c, k)) for k in changes}
    for k, v in _columns(changes).items():
        setattr(c, k, v)
    c.updated_at = utcnow()
    audit.record(session, actor, "campaign.edited", c, {"before": before, "after": _columns(changes)})
    return c


def transition(session: Session, actor: User, campaign_id: int, target: CampaignStatus | str) -> Campaign:
    c = get_campaign(session, actor, campaign_id, for_update=True)
    policy.require(actor, "campaign.manage", c)
    try:
        target = CampaignStatus(target)
    except ValueError:
        raise InvalidInput(f"Unknown campaign status {target!r}.", code="validation.failed", field="status") from None
    if target not in TRANSITIONS[c.status]:
        raise Conflict(
            f"A {c.status.value} campaign cannot become {target.value}.",
            code="campaign.bad_transition",
            allowed=sorted(s.value for s in TRANSITIONS[c.status]),
        )
    if target is S.open:
        consent.check_campaign_document(session, c.consent_version, c.organization_id, c.data_use)
    before = c.status
    c.status = target
    c.updated_at = utcnow()
    verb = {S.open: "opened" if before is S.draft else "resumed", S.paused: "paused", S.closed: "closed"}[target]
    audit.record(session, actor, f"campaign.{verb}", c, {"from": before.value, "to": target.value})
    return c


def _columns(data: dict) -> dict:
    """Pydantic dumps → column values (nested models are stored as JSON dicts)."""
    return {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in data.items()}


def _plain(v):
    return v.value if hasattr(v, "value") else v
