"""The one authorization check. Every door (API, pages, CLI) asks :func:`require` or filters with
the ``visible_*`` helpers; no role test is written anywhere else.

Rules, in words:
- anonymous: nothing private (only sign-up, log-in, consent documents' public text).
- worker: open campaigns (and ones they hold assignments in); only their own consents and assignments.
- reviewer: every campaign that is not a draft; no workers' personal data.
- requester: their own organization's campaigns, nothing of other organizations; inside the lab
  the org role decides: a viewer reads (progress, QC, spend), an editor also creates and runs
  campaigns, an owner also manages the team and the lab's settings.
- admin: everything.

People in the loop (#10): reviewers decide clips whose campaign lets platform reviewers review, a
lab's owners and editors those of their own campaigns that let the lab review; nobody decides an
item that excludes them (an appeal never goes back to the person who rejected the clip). Annotators
(workers with the "annotate" qualification, checked by labels.tasks) see the de-identified video of
the clips they hold a task on, never their own clips' labels work.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute, object_session

from egocrowd.db.models import (
    PLATFORM_DECIDES,
    REQUESTER_DECIDES,
    AnnotationTask,
    Assignment,
    Campaign,
    CampaignStatus,
    Clip,
    ConsentRecord,
    Organization,
    OrgRole,
    ReviewItem,
    ReviewKind,
    Role,
    User,
)
from egocrowd.errors import Forbidden, Unauthenticated


def _same_org(user: User, campaign: Campaign) -> bool:
    return user.organization_id is not None and user.organization_id == campaign.organization_id


def _can_view_campaign(user: User, c: Campaign) -> bool:
    match user.role:
        case Role.admin:
            return True
        case Role.requester:
            return _same_org(user, c)
        case Role.reviewer:
            return c.status is not CampaignStatus.draft
        case Role.worker:
            return c.status is CampaignStatus.open or _works_on(user, c)
    return False


def _works_on(user: User, c: Campaign) -> bool:
    """Workers keep seeing a campaign they hold (or held) an assignment in, even once it pauses."""
    session = object_session(c)
    return (
        session is not None
        and session.scalar(
            sa.select(Assignment.id).where(Assignment.worker_id == user.id, Assignment.campaign_id == c.id).limit(1)
        )
        is not None
    )


def _lab_role(user: User, *roles: OrgRole) -> bool:
    """A requester whose role inside their lab is one of ``roles``."""
    return user.role is Role.requester and user.organization_id is not None and user.org_role in roles


_EDITS = (OrgRole.owner, OrgRole.editor)


def _manages(user: User, c: Campaign) -> bool:
    return user.role is Role.admin or (_lab_role(user, *_EDITS) and _same_org(user, c))


def _runs_org(user: User, org: Organization) -> bool:
    return user.role is Role.admin or (_lab_role(user, OrgRole.owner) and user.organization_id == org.id)


def _authors_consent(user: User, _: Any = None) -> bool:
    """Admins; a lab's owners and editors once an admin let the lab write its own consent."""
    return user.role is Role.admin or (
        _lab_role(user, *_EDITS) and user.organization is not None and user.organization.may_author_consent
    )


def _sees_clip(user: User, clip: Clip) -> bool:
    """:func:`visible_clips` for one clip (the rule of :func:`_worker_or_lab`)."""
    if user.role is Role.admin:
        return True
    if user.role is Role.requester:
        return _same_org(user, clip.campaign)
    return clip.worker_id == user.id


def _annotates(user: User, clip: Clip) -> bool:
    """An annotator holding (or having submitted) a task on this clip sees its de-identified video."""
    session = object_session(clip)
    return (
        user.role is Role.worker
        and session is not None
        and session.scalar(
            sa.select(AnnotationTask.id)
            .where(AnnotationTask.annotator_id == user.id, AnnotationTask.clip_id == clip.id)
            .limit(1)
        )
        is not None
    )


def _decides(user: User, item: ReviewItem) -> bool:
    """Who may decide a review item: see the module doc."""
    if item.excluded_user_id == user.id:
        return False
    if user.role is Role.admin:
        return True
    if user.role is Role.reviewer:
        return item.audience in PLATFORM_DECIDES
    return (
        item.kind is ReviewKind.acceptance
        and item.audience in REQUESTER_DECIDES
        and _lab_role(user, *_EDITS)
        and _same_org(user, item.campaign)
    )


def _staff(user: User, _: Any = None) -> bool:
    return user.role in (Role.admin, Role.reviewer)


_RULES: dict[str, Any] = {
    "campaign.create": lambda u, _: u.role is Role.admin or _lab_role(u, *_EDITS),
    "campaign.view": _can_view_campaign,
    "campaign.manage": _manages,  # edit, transitions, progress, statistics
    "work.take": lambda u, _: u.role is Role.worker,  # claims slots and records: sees what is claimable
    "consent.sign": lambda u, _: u.role is Role.worker,
    "consent.view": lambda u, r: u.role is Role.admin or r.user_id == u.id,
    "consent.author": _authors_consent,  # write consent documents (a lab: for its own campaigns)
    "consent.author_platform": lambda u, _: u.role is Role.admin,  # the platform's own documents
    "consent.manage": lambda u, d: (
        u.role is Role.admin or (_authors_consent(u, d) and u.organization_id == d.organization_id)
    ),
    "assignment.claim": lambda u, c: u.role is Role.worker and c.status is CampaignStatus.open,
    "assignment.view": lambda u, a: a.worker_id == u.id or _manages(u, a.campaign),
    "assignment.release": lambda u, a: a.worker_id == u.id,
    "user.manage": lambda u, _: u.role is Role.admin,
    "org.view": lambda u, o: u.role is Role.admin or (u.role is Role.requester and u.organization_id == o.id),
    "org.manage": _runs_org,  # the team, its roles, the lab's API tokens and settings
    "audit.view": lambda u, _: u.role is Role.admin,
    "pay.deposit": lambda u, _: u.role is Role.admin,  # record money a lab sent (egocrowd.pay.budgets)
    "pay.reverse": lambda u, _: u.role is Role.admin,  # take back a clip's pay, with a reason (pay.reversals)
    "system.view": lambda u, _: u.role is Role.admin,  # queues, stuck jobs, disk use
    "system.manage": lambda u, _: u.role is Role.admin,  # put pipeline jobs back
    # De-identification (#9): raw footage is admin-only (each access audited with a reason); the
    # derived video goes to the clip's worker, its campaign's lab, reviewers and admins.
    "clip.view_raw": lambda u, _: u.role is Role.admin,
    "clip.view_derived": lambda u, c: u.role is Role.reviewer or _sees_clip(u, c) or _annotates(u, c),
    "clip.review_redaction": lambda u, _: u.role in (Role.admin, Role.reviewer),
    # the raw file's own details (device, recording time, the phone's file name): its worker, admins
    "clip.view_source_details": lambda u, c: u.role is Role.admin or c.worker_id == u.id,
    # People in the loop (#10): review queue, appeals, annotation, gold, label audits
    "review.view_queue": lambda u, _: _staff(u) or _lab_role(u, *_EDITS),
    "review.decide": _decides,
    "clip.appeal": lambda u, c: c.worker_id == u.id,  # once per clip (labels.review)
    "evaluation.take": lambda u, _: u.role is Role.worker,  # judge blind A/B battles (egocrowd.evaluations)
    "annotation.take": lambda u, _: u.role is Role.worker,  # and the "annotate" qualification (labels.tasks)
    "qualification.grant": _staff,
    "labels.gold": _staff,  # make reference spans, mark gold clips
    # a campaign's spans, agreement, audits, exports: its lab (every org role), reviewers, admins
    "labels.view": lambda u, c: _staff(u) or (u.role is Role.requester and _same_org(u, c)),
    "labels.import": lambda u, c: _staff(u) or _manages(u, c),
    # run a label audit (it sends spans back for re-annotation), resolve its flags
    "labels.audit": lambda u, c: _staff(u) or _manages(u, c),
    # Pay (#11): floors and exchange rates (admins), a campaign's top-ups (its lab's owners and editors
    # decide), payout methods (each worker their own), payout batches (admins)
    "pay.floors": lambda u, _: u.role is Role.admin,
    "pay.rates": lambda u, _: u.role is Role.admin,
    "pay.top_up": _manages,  # resource: the campaign
    "pay.methods": lambda u, _: u.role in (Role.worker, Role.reviewer),  # both earn (pay.reviews)
    "pay.payouts": lambda u, _: u.role is Role.admin,
    # Releases (#12): a lab cuts releases of its own campaigns' accepted clips; every requester (any
    # lab, small ones too) browses the catalog of published releases and asks for access for their
    # lab; the release's owning lab (owners) decides; downloads need granted access (or owning it)
    "release.create": lambda u, org: u.role is Role.admin or (_lab_role(u, *_EDITS) and u.organization_id == org.id),
    "release.view": lambda u, r: (
        u.role is Role.admin or (u.role is Role.requester and u.organization_id == r.organization_id)
    ),
    "release.manage": lambda u, r: (
        u.role is Role.admin or (_lab_role(u, OrgRole.owner) and u.organization_id == r.organization_id)
    ),
    "catalog.browse": lambda u, _: u.role in (Role.admin, Role.requester),
    "release.request_access": lambda u, _: _lab_role(u, *_EDITS),
    # withdrawal notices: a buyer lab's members read them, its owners and editors acknowledge them
    "withdrawal.view": lambda u, org: (
        u.role is Role.admin or (u.role is Role.requester and u.organization_id == org.id)
    ),
    "withdrawal.acknowledge": lambda u, org: _lab_role(u, *_EDITS) and u.organization_id == org.id,
    "withdrawal.admin": lambda u, _: u.role is Role.admin,  # remove a clip for cause; the withdrawals page
}


def can(user: User | None, action: str, resource: Any = None) -> bool:
    if user is None or not user.is_active:
        return False
    return bool(_RULES[action](user, resource))


#: Actions that need a confirmed email address: before following the emailed link a worker may look
#: around, read and sign consents, but not take slots (docs/account.md).
NEEDS_CONFIRMED_EMAIL = {"assignment.claim"}


def require(user: User | None, action: str, resource: Any = None) -> User:
    if user is None:
        raise Unauthenticated("Log in first.", code="auth.required")
    if not can(user, action, resource):
        raise Forbidden("You are not allowed to do this.", code="auth.forbidden", action=action)
    if action in NEEDS_CONFIRMED_EMAIL and user.email_verified_at is None:
        raise Forbidden(
            "Confirm your email address first: open the link we emailed you, or ask for a new one on "
            "your account page.",
            code="user.email_unverified",
            resend="/api/v1/me/verify-email",
        )
    return user


def visible_campaigns(user: User | None) -> sa.ColumnElement[bool]:
    """A WHERE clause selecting exactly the campaigns ``user`` may see (same rules as above)."""
    if user is None:
        return sa.false()
    match user.role:
        case Role.admin:
            return sa.true()
        case Role.requester:
            return Campaign.organization_id == (user.organization_id or -1)
        case Role.reviewer:
            return Campaign.status != CampaignStatus.draft
        case Role.worker:
            return sa.or_(
                Campaign.status == CampaignStatus.open,
                Campaign.id.in_(sa.select(Assignment.campaign_id).where(Assignment.worker_id == user.id)),
            )
    return sa.false()


def _worker_or_lab(
    user: User, campaign_id: InstrumentedAttribute[int], worker_id: InstrumentedAttribute[int]
) -> sa.ColumnElement[bool]:
    """The rule of things a worker made for a lab's campaign (assignments, clips): admins see all,
    a lab its campaigns', a worker their own (for one clip in Python: :func:`_sees_clip`)."""
    if user.role is Role.admin:
        return sa.true()
    if user.role is Role.requester:
        return campaign_id.in_(sa.select(Campaign.id).where(Campaign.organization_id == (user.organization_id or -1)))
    return worker_id == user.id


def visible_assignments(user: User) -> sa.ColumnElement[bool]:
    return _worker_or_lab(user, Assignment.campaign_id, Assignment.worker_id)


def visible_clips(user: User) -> sa.ColumnElement[bool]:
    return _worker_or_lab(user, Clip.campaign_id, Clip.worker_id)


def visible_review_items(user: User) -> sa.ColumnElement[bool]:
    """The review items ``user`` may decide (the rule of :func:`_decides`, as a WHERE clause)."""
    not_excluded = sa.or_(ReviewItem.excluded_user_id.is_(None), ReviewItem.excluded_user_id != user.id)
    if user.role is Role.admin:
        return not_excluded
    if user.role is Role.reviewer:
        return sa.and_(not_excluded, ReviewItem.audience.in_(PLATFORM_DECIDES))
    if _lab_role(user, *_EDITS):
        return sa.and_(
            not_excluded,
            ReviewItem.kind == ReviewKind.acceptance,
            ReviewItem.audience.in_(REQUESTER_DECIDES),
            ReviewItem.campaign_id.in_(sa.select(Campaign.id).where(Campaign.organization_id == user.organization_id)),
        )
    return sa.false()


def visible_consents(user: User) -> sa.ColumnElement[bool]:
    return sa.true() if user.role is Role.admin else ConsentRecord.user_id == user.id
