"""Creating, editing and moving campaigns through their lifecycle."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session, defer

from egocrowd import audit, consent, i18n, notifications
from egocrowd.accounts import policy
from egocrowd.campaigns.schema import (
    AnnotationSettings,
    CampaignIn,
    CampaignPatch,
    DataUse,
    PaySettings,
    PrivacySettings,
    ReviewSettings,
    check_sound,
)
from egocrowd.clock import db_now, utcnow
from egocrowd.db.models import Assignment, AssignmentStatus, Campaign, CampaignStatus, TrainingQualification, User
from egocrowd.errors import Conflict, InvalidInput, NotFound
from egocrowd.i18n import N_, tr
from egocrowd.pay import budgets, rates

S = CampaignStatus
#: The lifecycle. Anything not listed is refused with ``campaign.bad_transition``.
TRANSITIONS: dict[CampaignStatus, set[CampaignStatus]] = {
    S.draft: {S.open, S.closed},
    S.open: {S.paused, S.closed},
    S.paused: {S.open, S.closed},
    S.closed: set(),
}
#: Fields a live (open or paused) campaign may still change: wording and size, never the deal.
#: The deadline and the per-worker limit may change only in the workers' favour (see _fair_to_workers).
#: Review and annotation settings are the lab's own quality control, not terms a worker recorded
#: under (who reviews, how many are sampled, how many annotators): they may change while live and
#: apply to clips routed afterwards; the two that touch people's pay and waiting move only in their
#: favour (auto-accept days down, annotators' pay up). Automatic top-ups (pay_policy) may be switched
#: on while live, never off.
EDITABLE_WHEN_LIVE = {
    "title",
    "instructions",
    "translations",
    "target_clips",
    "deadline_at",
    "max_clips_per_worker",
    "review",
    "annotation",
    "pay_policy",
}
#: Every setting a lab chooses (what a clone copies); the rest is state (status, slots, dates).
SETTINGS = (
    "title",
    "instructions",
    "translations",
    "requirements",
    "taxonomy",
    "target_clips",
    "pay_cents",
    "currency",
    "expected_minutes",
    "allowed_countries",
    "data_use",
    "privacy",
    "review",
    "annotation",
    "pay_policy",
    "buyer_name",
    "consent_version",
    "deadline_at",
    "max_clips_per_worker",
    "required_qualification",
    "min_level",
)


class PayTerms(Protocol):
    """What the hourly rate is computed from: a campaign row or its API model."""

    @property
    def pay_cents(self) -> int: ...
    @property
    def expected_minutes(self) -> float: ...


def hourly_rate_cents(c: PayTerms) -> int:
    return round(c.pay_cents * 60 / c.expected_minutes)


# Built once (every claim reads its campaign; #17: building costs more CPU than the database's answer).
_CAMPAIGN = sa.select(Campaign).where(Campaign.id == sa.bindparam("campaign_id"))
_CAMPAIGN_FOR_UPDATE = _CAMPAIGN.with_for_update()
# The campaign's description (text, taxonomy, translations, policies): JSON documents that a check of
# its state never reads, decoded on every claim otherwise. Deferred: loaded on first access.
_DESCRIPTION = (
    Campaign.instructions,
    Campaign.translations,
    Campaign.requirements,
    Campaign.taxonomy,
    Campaign.privacy,
    Campaign.review,
    Campaign.annotation,
    Campaign.pay_policy,
)
_CAMPAIGN_STATE = _CAMPAIGN.options(*(defer(c) for c in _DESCRIPTION))


def get_campaign(
    session: Session, user: User | None, campaign_id: int, *, for_update: bool = False, state_only: bool = False
) -> Campaign:
    """The campaign if ``user`` may see it; otherwise not-found (never reveal that it exists).
    ``state_only``: its description (instructions, taxonomy, translations, policies) is left
    unloaded until something reads it, for hot paths that check only its state (a claim)."""
    stmt = _CAMPAIGN_FOR_UPDATE if for_update else _CAMPAIGN_STATE if state_only else _CAMPAIGN
    c = session.scalar(stmt, {"campaign_id": campaign_id})
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
    _check_training(session, data.required_qualification)
    c = _new_draft(session, actor, actor.organization_id, _columns(data.model_dump()))
    audit.record(session, actor, "campaign.created", c, {"title": c.title, "target_clips": c.target_clips})
    return c


def _new_draft(session: Session, actor: User, organization_id: int, values: dict[str, Any]) -> Campaign:
    now = utcnow()
    c = Campaign(
        organization_id=organization_id,
        created_by=actor.id,
        status=S.draft,
        created_at=now,
        updated_at=now,
        **values,
    )
    session.add(c)
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
        _fair_to_workers(c, changes)
    if changes.get("required_qualification"):
        _check_training(session, changes["required_qualification"])
    if "consent_version" in changes or "data_use" in changes:
        new = _columns(changes)
        consent.check_campaign_document(
            session, new.get("consent_version", c.consent_version), c.organization_id, new.get("data_use", c.data_use)
        )
    if "privacy" in changes or "data_use" in changes:
        try:
            check_sound(
                changes.get("privacy") or PrivacySettings.model_validate(c.privacy or {}),
                changes.get("data_use") or DataUse.model_validate(c.data_use or {}),
            )
        except ValueError as exc:
            raise InvalidInput(str(exc), code="campaign.sound_not_covered", field="privacy") from None
    if changes.get("target_clips") is not None and changes["target_clips"] < c.slots_taken:
        raise Conflict(
            f"{c.slots_taken} slots are already taken; the target cannot go below that.",
            code="campaign.target_below_taken",
        )
    if c.status is not S.draft and changes.get("target_clips") is not None and changes["target_clips"] > c.target_clips:
        # a live campaign promises its target to workers: raise it only at a fair rate (the floors
        # may have risen since it opened) and as far as the budget reaches
        rates.require_above_floor(session, c, doing="raise the target")
        budgets.require_covered(session, c, target_clips=changes["target_clips"], doing="raise the target")
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
    return _move(session, actor, c, target)


def _move(session: Session, actor: User | None, c: Campaign, target: CampaignStatus) -> Campaign:
    """One lifecycle step of a locked campaign. Pausing stops new claims (running leases may still
    upload); closing also ends every open slot. Workers holding a slot are told either way."""
    if target not in TRANSITIONS[c.status]:
        raise Conflict(
            f"A {c.status.value} campaign cannot become {target.value}.",
            code="campaign.bad_transition",
            allowed=sorted(s.value for s in TRANSITIONS[c.status]),
        )
    if target is S.open:
        consent.check_campaign_document(session, c.consent_version, c.organization_id, c.data_use)
        # its promised hourly rate reaches the pay floor of every country it allows (pay.rates)
        rates.require_above_floor(session, c, doing="open it" if c.status is S.draft else "resume it")
        # every clip a campaign takes is paid for: it opens (or resumes) only with its target funded
        budgets.require_covered(session, c, doing="open it" if c.status is S.draft else "resume it")
    before = c.status
    c.status = target
    c.updated_at = utcnow()
    verb = {S.open: "opened" if before is S.draft else "resumed", S.paused: "paused", S.closed: "closed"}[target]
    audit.record(session, actor, f"campaign.{verb}", c, {"from": before.value, "to": target.value})
    if target is S.closed:  # no actor: housekeeping closes it at its deadline
        _end_open_slots(
            session,
            c,
            N_("{title} was closed by the lab; your slot ended")
            if actor
            else N_("{title} reached its deadline; your slot ended"),
        )
    elif target is S.paused:
        for worker_id in active_workers(session, c.id):
            notifications.notify(
                session,
                worker_id,
                "campaign.paused",
                N_("{title} was paused by the lab"),
                N_(
                    "Nobody can take new slots for now. Your slot stays yours: you may still record and "
                    "upload until its lease runs out."
                ),
                f"/campaigns/{c.id}",
                params={"title": c.title},
            )
    return c


def active_workers(session: Session, campaign_id: int) -> list[int]:
    """The workers holding an open slot (an active assignment) in the campaign."""
    return list(
        session.scalars(
            sa.select(Assignment.worker_id)
            .distinct()
            .where(Assignment.campaign_id == campaign_id, Assignment.status == AssignmentStatus.active)
            .order_by(Assignment.worker_id)
        )
    )


def _end_open_slots(session: Session, c: Campaign, why: str) -> None:
    """Closing: every active assignment ends now (its slot is freed), audited, and its worker told
    (``why``: the notice's subject, a msgid with the campaign's ``{title}``).
    The campaign row is already locked (the lock order of egocrowd.campaigns.assignments)."""
    now = db_now(session)
    rows = session.execute(
        sa.update(Assignment)
        .where(Assignment.campaign_id == c.id, Assignment.status == AssignmentStatus.active)
        .values(status=AssignmentStatus.released, closed_at=now)
        .returning(Assignment.id, Assignment.worker_id)
        .execution_options(synchronize_session=False)
    ).all()
    if rows:
        session.execute(
            sa.update(Campaign)
            .where(Campaign.id == c.id)
            .values(slots_taken=Campaign.slots_taken - len(rows))
            .execution_options(synchronize_session=False)
        )
        session.flush()
        session.refresh(c, ["slots_taken"])
    for aid, wid in sorted(rows):
        audit.record(
            session,
            None,
            "assignment.released",
            aid,
            {"campaign_id": c.id, "worker_id": wid, "reason": "campaign_closed"},
            entity_type="assignment",
        )
    for wid in sorted({wid for _, wid in rows}):
        notifications.notify(
            session,
            wid,
            "campaign.closed",
            why,
            N_("Clips you already sent are still checked and paid."),
            f"/campaigns/{c.id}",
            params={"title": c.title},
        )


def close_expired_campaigns(session: Session, now: datetime | None = None) -> int:
    """Housekeeping: an open or paused campaign past its deadline closes itself. Returns how many."""
    now = now or db_now(session)
    due = session.scalars(
        sa.select(Campaign)
        .where(Campaign.status.in_([S.open, S.paused]), Campaign.deadline_at <= now)
        .order_by(Campaign.id)
        .with_for_update()
    ).all()
    for c in due:
        _move(session, None, c, S.closed)
    return len(due)


def clone_campaign(session: Session, actor: User, campaign_id: int) -> Campaign:
    """A new draft with every setting of the campaign copied, titled "Copy of …" (a deadline
    already past is dropped: a draft cannot carry one)."""
    src = get_managed_campaign(session, actor, campaign_id)
    policy.require(actor, "campaign.create")
    values: dict[str, Any] = {k: getattr(src, k) for k in SETTINGS}
    values["title"] = f"Copy of {src.title}"[:200]
    if src.deadline_at is not None and src.deadline_at <= utcnow():
        values["deadline_at"] = None
    c = _new_draft(session, actor, src.organization_id, values)
    audit.record(session, actor, "campaign.cloned", c, {"from": src.id, "title": c.title})
    return c


def _fair_to_workers(c: Campaign, changes: dict) -> None:
    """A live campaign's deadline may move later and its per-worker limit up (or either go away),
    never the other way: workers planned around them."""
    for field, now_value in (("deadline_at", c.deadline_at), ("max_clips_per_worker", c.max_clips_per_worker)):
        if field not in changes:
            continue
        new = changes[field]
        if new is not None and (now_value is None or new < now_value):
            what = "brought forward" if field == "deadline_at" else "lowered"
            raise Conflict(
                f"Once a campaign is live its {_LABEL[field]} can be extended or removed, never {what}.",
                code="campaign.unfair_change",
                field=field,
            )
    for group, key, up in (
        ("review", "auto_accept_days", False),
        ("review", "pay_cents", True),
        ("review", "redaction_pay_cents", True),
        ("annotation", "pay_cents", True),
        ("pay_policy", "auto_top_up", True),
    ):
        if changes.get(group) is None:
            continue
        new_value = _columns({group: changes[group]})[group].get(key)
        models: dict[str, Any] = {"review": ReviewSettings, "annotation": AnnotationSettings, "pay_policy": PaySettings}
        model = models[group]
        old_value = getattr(model.model_validate(getattr(c, group) or {}), key)
        if new_value is not None and (new_value < old_value if up else new_value > old_value):
            raise Conflict(
                f"Once a campaign is live its {_LABEL[f'{group}.{key}']} can only go {'up' if up else 'down'}.",
                code="campaign.unfair_change",
                field=f"{group}.{key}",
            )


_LABEL = {
    "deadline_at": "deadline",
    "max_clips_per_worker": "limit per worker",
    "review.auto_accept_days": "auto-accept delay",
    "review.pay_cents": "reviewers' pay",
    "review.redaction_pay_cents": "redaction reviewers' pay",
    "annotation.pay_cents": "annotators' pay",
    "pay_policy.auto_top_up": "automatic top-ups",
}


def _check_training(session: Session, slug: str | None) -> None:
    """A required qualification must exist (training's table; campaigns may not import training)."""
    if slug and session.scalar(sa.select(TrainingQualification.id).where(TrainingQualification.slug == slug)) is None:
        raise InvalidInput(
            tr("There is no qualification {slug}: make it under Training first.", slug=slug),
            code="campaign.unknown_qualification",
            field="required_qualification",
        )


def _columns(data: dict) -> dict:
    """Pydantic dumps → column values (nested models are stored as JSON dicts)."""
    return {k: _json(v) for k, v in data.items()}


def _json(v):
    if hasattr(v, "model_dump"):
        return v.model_dump()
    if isinstance(v, dict):  # translations: language → CampaignText
        return {k: _json(x) for k, x in v.items()}
    return v


def localized(c: Campaign, language: str | None = None) -> tuple[str, str, str | None]:
    """The title and instructions a reader of ``language`` (default: the language of the moment)
    sees, and the language of the translation shown (None: the main text, as the lab wrote it)."""
    language = language or i18n.current()
    base = language.split("-")[0]
    for code in (language, base):
        t = (c.translations or {}).get(code)
        if t:
            return t["title"], t["instructions"], code
    return c.title, c.instructions, None


def _plain(v):
    return v.value if hasattr(v, "value") else v
