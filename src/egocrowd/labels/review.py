"""The review queue, acceptance and appeals (issue #10, parts 1 and 2; docs/review.md).

A clip that passed QC and came out of de-identification clean reaches the ``review`` stage, whose
:func:`route_clip` either opens an *acceptance* item for a person (with the campaign's
``review.sample_fraction`` probability, decided by a hash of the clip so that a retry decides the
same) or accepts the clip at once. Every acceptance, whoever makes it, goes through
:func:`accept_clip`; every item is closed by :func:`decide_item` (a conditional UPDATE, so two
reviewers deciding at once get one success and one ``review.already_decided``) or by
:func:`auto_accept_due` (housekeeping: nobody decided within ``auto_accept_days``).

A worker may dispute a QC failure or a rejection once (:func:`appeal`); the appeal goes to a
platform reviewer who is not the one who rejected the clip. Overturning a QC failure makes the clip
``qc_passed`` and de-identifies it; when the render comes out clean, :func:`route_clip` accepts it
without sampling it again (a reviewer already looked at it). Overturning a rejection accepts it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.accounts import policy
from egocrowd.campaigns import assignments
from egocrowd.campaigns.schema import ReviewSettings
from egocrowd.clips import get_clip
from egocrowd.clips.deid import request_deidentify
from egocrowd.clock import db_now, utcnow
from egocrowd.db.models import (
    AUDIENCE_PLATFORM,
    REVIEW_AUDIENCES,
    Campaign,
    Clip,
    ClipStatus,
    DeidStatus,
    ReviewItem,
    ReviewKind,
    ReviewState,
    User,
)
from egocrowd.errors import Conflict, InvalidInput, NotFound
from egocrowd.i18n import N_
from egocrowd.labels import tasks
from egocrowd.notifications import notify
from egocrowd.pay import budgets
from egocrowd.pay import reviews as review_pay
from egocrowd.pipeline.stages import stage

#: Why a reviewer rejects a clip: code → the words the worker reads (English msgids, translated
#: where they are shown). The clip's reason_code is ``review.<code>``. Codes are stable (stored,
#: shown in the API): add, never rename.
REJECT_REASONS: dict[str, str] = {
    "off_task": N_("It does not show the task the campaign asked for."),
    "hands_not_visible": N_("Your hands are not visible enough while you work."),
    "poor_quality": N_("The video is too dark, blurred or shaky to use."),
    "privacy_problem": N_("It shows something private that should not be recorded."),
    "duplicate": N_("It repeats a clip already sent."),
    "unsafe": N_("It shows something unsafe."),
    "other": N_("Another reason: see the reviewer's comment."),
}

#: the decisions each kind of item takes
DECISIONS: dict[ReviewKind, tuple[str, ...]] = {
    ReviewKind.acceptance: ("accept", "reject"),
    ReviewKind.appeal: ("uphold", "overturn"),
    ReviewKind.spans: ("fixed",),
}

#: a decision in people's words (DECISIONS, and the system's own "auto_accept" and "cancel"):
#: marked here, translated where shown (the review pages, a clip's lineage)
DECISION_WORDS = {
    "accept": N_("accepted"),
    "reject": N_("rejected"),
    "uphold": N_("the verdict stands"),
    "overturn": N_("appeal granted"),
    "fixed": N_("fixed"),
    "auto_accept": N_("accepted automatically"),
    "cancel": N_("cancelled"),
}

#: how a clip was accepted (the ``how`` of ``clip.accepted``)
HOWS = ("review", "auto", "auto_accept", "appeal")

COMMENT_MAX = 2000
APPEAL_MIN = 10  # an appeal says why, in a few words at least


def review_settings(campaign: Campaign) -> ReviewSettings:
    """The campaign's review settings with defaults filled in."""
    return ReviewSettings.model_validate(campaign.review or {})


def sampled(clip_id: int, campaign_id: int, fraction: float) -> bool:
    """Whether a person reviews this clip: deterministic per (campaign, clip), so a stage that runs
    again decides the same, and uniform enough that ``fraction`` of clips are picked."""
    if fraction >= 1.0:
        return True
    if fraction <= 0.0:
        return False
    digest = hashlib.sha256(f"review-sample:{campaign_id}:{clip_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def _rowcount(result: Any) -> int:
    return int(cast("sa.CursorResult[Any]", result).rowcount)


# --- items ----------------------------------------------------------------------------------------
def open_item(
    session: Session,
    clip: Clip,
    kind: ReviewKind,
    *,
    audience: str,
    due_at: datetime | None = None,
    excluded_user_id: int | None = None,
    requested_by: int | None = None,
    request_comment: str = "",
    disputes: str | None = None,
) -> ReviewItem:
    """Open a review item of ``kind`` on ``clip``, or return the one already open (at most one open
    item per clip and kind: the partial unique index ``uq_review_items_open``)."""
    if audience not in REVIEW_AUDIENCES:
        raise ValueError(f"audience must be one of {REVIEW_AUDIENCES}, not {audience!r}")
    existing = _open_item(session, clip.id, kind)
    if existing is not None:
        return existing
    item = ReviewItem(
        kind=kind,
        clip_id=clip.id,
        campaign_id=clip.campaign_id,
        audience=audience,
        state=ReviewState.open,
        created_at=utcnow(),
        due_at=due_at,
        excluded_user_id=excluded_user_id,
        requested_by=requested_by,
        request_comment=request_comment,
        disputes=disputes,
    )
    try:
        with session.begin_nested():  # a concurrent open of the same (clip, kind) loses to the index
            session.add(item)
            session.flush()
    except IntegrityError:
        if kind is ReviewKind.appeal:
            raise
        existing = _open_item(session, clip.id, kind)
        if existing is None:  # pragma: no cover - the index names no other reason
            raise
        return existing
    audit.record(
        session,
        None,
        "review.opened",
        item,
        {"clip_id": clip.id, "kind": kind.value, "audience": audience, "due_at": due_at},
    )
    return item


def _open_item(session: Session, clip_id: int, kind: ReviewKind) -> ReviewItem | None:
    return session.scalar(
        sa.select(ReviewItem).where(
            ReviewItem.clip_id == clip_id, ReviewItem.kind == kind, ReviewItem.state == ReviewState.open
        )
    )


def _close(
    session: Session,
    item_id: int,
    decision: str,
    *,
    decided_by: int | None,
    reason: str | None = None,
    comment: str = "",
    state: ReviewState = ReviewState.done,
) -> bool:
    """The one conditional UPDATE that closes an item: True for the one caller that closed it."""
    result = session.execute(
        sa.update(ReviewItem)
        .where(ReviewItem.id == item_id, ReviewItem.state == ReviewState.open)
        .values(
            state=state,
            decision=decision,
            reason=reason,
            comment=comment,
            decided_by=decided_by,
            decided_at=db_now(session),
        )
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def _clean_comment(comment: str | None, *, code: str) -> str:
    text = (comment or "").strip()
    if len(text) > COMMENT_MAX:
        raise InvalidInput(f"Keep the comment under {COMMENT_MAX} characters.", code=code)
    return text


def get_item(session: Session, user: User, item_id: int) -> ReviewItem:
    """One item ``user`` may decide (or decided); NotFound otherwise, so ids reveal nothing."""
    item = session.get(ReviewItem, item_id)
    if item is None or not (policy.can(user, "review.decide", item) or item.decided_by == user.id):
        raise NotFound(f"No review item {item_id}.", code="review.not_found")
    return item


def queue(
    session: Session,
    user: User,
    *,
    kind: ReviewKind | None = None,
    campaign_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[ReviewItem]:
    """Open items ``user`` may decide, oldest first (with their clip and campaign)."""
    policy.require(user, "review.view_queue")
    q = (
        sa.select(ReviewItem)
        .where(ReviewItem.state == ReviewState.open, policy.visible_review_items(user))
        .order_by(ReviewItem.created_at, ReviewItem.id)
    )
    if kind is not None:
        q = q.where(ReviewItem.kind == kind)
    if campaign_id is not None:
        q = q.where(ReviewItem.campaign_id == campaign_id)
    return list(session.scalars(q.limit(limit).offset(offset)))


def queue_campaigns(session: Session, user: User) -> list[tuple[int, str, int]]:
    """(campaign id, title, open items) of the campaigns with items ``user`` may decide: the filter."""
    policy.require(user, "review.view_queue")
    rows = session.execute(
        sa.select(Campaign.id, Campaign.title, sa.func.count(ReviewItem.id))
        .join(ReviewItem, ReviewItem.campaign_id == Campaign.id)
        .where(ReviewItem.state == ReviewState.open, policy.visible_review_items(user))
        .group_by(Campaign.id, Campaign.title)
        .order_by(Campaign.id)
    ).all()
    return [(int(cid), str(title), int(n)) for cid, title, n in rows]


# --- acceptance -----------------------------------------------------------------------------------
def _latest_clip_of_assignment(session: Session, assignment_id: int) -> int | None:
    return session.scalar(sa.select(sa.func.max(Clip.id)).where(Clip.assignment_id == assignment_id))


def _decide_clip(
    session: Session,
    clip: Clip,
    actor: User | None,
    *,
    accepted: bool,
    was: tuple[ClipStatus, ...],
    values: dict[str, Any],
) -> None:
    """The one conditional UPDATE that decides ``clip`` (``accepted`` or ``declined``, from one of
    the states in ``was``; Conflict ``clip.not_acceptable`` from any other), then its assignment's
    outcome when this clip is the assignment's latest. The caller audits and tells the worker."""
    status = ClipStatus.accepted if accepted else ClipStatus.declined
    done = session.execute(
        sa.update(Clip)
        .where(Clip.id == clip.id, Clip.status.in_(was))
        .values(status=status, **values)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(done) != 1:
        session.refresh(clip)
        verb = "accepted" if accepted else "rejected"
        raise Conflict(
            f"Clip {clip.id} is {clip.status.value}: only a clip that passed its checks can be {verb}.",
            code="clip.not_acceptable",
        )
    session.refresh(clip)
    if clip.assignment_id is not None and _latest_clip_of_assignment(session, clip.assignment_id) == clip.id:
        assignments.settle(session, clip.assignment_id, accepted=accepted, clip_id=clip.id, actor=actor)


def accept_clip(session: Session, clip: Clip, actor: User | None, *, how: str) -> Clip:
    """Accept ``clip``: the ONE way a clip becomes ``accepted`` (a reviewer or the lab: ``review``;
    not sampled: ``auto``; nobody decided in time: ``auto_accept``; an appeal overturned: ``appeal``).

    The clip must be ``qc_passed`` (or ``declined``, for an overturned rejection); Conflict
    ``clip.not_acceptable`` otherwise. Its assignment becomes ``accepted`` when this clip is the
    assignment's latest. Audited ``clip.accepted``; the worker is told."""
    if how not in HOWS:
        raise ValueError(f"how must be one of {HOWS}, not {how!r}")
    before = clip.status
    now = db_now(session)
    _decide_clip(
        session,
        clip,
        actor,
        accepted=True,
        was=(ClipStatus.qc_passed, ClipStatus.declined),
        values={"reason_code": None, "decided_at": now, "updated_at": now},
    )
    audit.record(
        session,
        actor,
        "clip.accepted",
        clip,
        {"how": how, "before": before.value, "actor_id": actor.id if actor else None},
    )
    notify(
        session,
        clip.worker_id,
        "review.accepted",
        N_("Clip {clip} was accepted"),
        N_("Your clip for “{title}” was accepted."),
        link=f"/clips/{clip.id}",
        params={"clip": clip.id, "title": clip.campaign.title},
    )
    # --- later steps hook here (one place for every acceptance) -----------------------------------
    tasks.open_annotation(session, clip)  # annotation (#10): the campaign may ask for labels
    # pay (#11): the worker's earning for an accepted clip, once (keyed by the clip); a budget that
    # cannot cover it leaves the pay owed, never the acceptance undone (egocrowd.pay.budgets)
    budgets.pay_accepted_clip(session, clip, actor)
    # -----------------------------------------------------------------------------------------------
    return clip


def decline_clip(session: Session, clip: Clip, actor: User, *, reason: str, comment: str) -> Clip:
    """A reviewer rejects ``clip`` (a ``qc_passed`` clip): ``declined`` with ``review.<reason>``,
    its assignment ``rejected`` (the slot goes back to the campaign), the worker told why."""
    _decide_clip(
        session,
        clip,
        actor,
        accepted=False,
        was=(ClipStatus.qc_passed,),
        values={"reason_code": f"review.{reason}", "decided_at": db_now(session), "updated_at": utcnow()},
    )
    audit.record(session, actor, "clip.declined", clip, {"reason": reason, "comment": comment})
    body = [
        REJECT_REASONS[reason],
        N_("The reviewer wrote: {comment}") if comment else "",
        N_("If you think this is wrong, you may appeal once from the clip's page."),
    ]
    notify(
        session,
        clip.worker_id,
        "review.rejected",
        N_("Clip {clip} was not accepted"),
        body,
        link=f"/clips/{clip.id}",
        params={"clip": clip.id, "comment": comment},
    )
    return clip


def _overturned_appeal(session: Session, clip_id: int) -> bool:
    return (
        session.scalar(
            sa.select(ReviewItem.id).where(
                ReviewItem.clip_id == clip_id,
                ReviewItem.kind == ReviewKind.appeal,
                ReviewItem.state == ReviewState.done,
                ReviewItem.decision == "overturn",
            )
        )
        is not None
    )


def route_clip(session: Session, clip: Clip) -> ReviewItem | None:
    """The ``review`` stage's apply: a clip that passed QC and de-identification clean, not decided
    yet, goes to a person (sampled) or is accepted at once. Runs any number of times with the same
    result: an open item is returned again, a decided clip is left alone."""
    if clip.status is not ClipStatus.qc_passed or clip.deid_status is not DeidStatus.clean or clip.decided_at:
        return None
    existing = _open_item(session, clip.id, ReviewKind.acceptance)
    if existing is not None:
        return existing
    if _overturned_appeal(session, clip.id):  # a reviewer already looked at it: no second sampling
        accept_clip(session, clip, None, how="appeal")
        return None
    settings = review_settings(clip.campaign)
    if not sampled(clip.id, clip.campaign_id, settings.sample_fraction):
        accept_clip(session, clip, None, how="auto")
        return None
    return open_item(
        session,
        clip,
        ReviewKind.acceptance,
        audience=settings.reviewers,
        due_at=db_now(session) + timedelta(days=settings.auto_accept_days),
    )


def auto_accept_due(session: Session, now: datetime | None = None) -> int:
    """Housekeeping: accept the clips of open acceptance items past ``due_at``, each exactly once
    (the item is closed by the conditional UPDATE first). Returns how many were accepted."""
    now = now or db_now(session)
    due = session.scalars(
        sa.select(ReviewItem)
        .where(
            ReviewItem.state == ReviewState.open,
            ReviewItem.kind == ReviewKind.acceptance,
            ReviewItem.due_at.is_not(None),
            ReviewItem.due_at <= now,
        )
        .order_by(ReviewItem.id)
    ).all()
    accepted = 0
    for item in due:
        clip = item.clip
        if clip.status is not ClipStatus.qc_passed:  # made moot (the clip changed under it)
            if _close(session, item.id, "cancel", decided_by=None, state=ReviewState.cancelled):
                audit.record(session, None, "review.cancelled", item, {"clip_status": clip.status.value})
            continue
        if not _close(session, item.id, "auto_accept", decided_by=None):
            continue  # someone decided it meanwhile
        session.refresh(item)
        accept_clip(session, clip, None, how="auto_accept")
        audit.record(session, None, "review.decided", item, {"decision": "auto_accept", "clip_id": clip.id})
        accepted += 1
    return accepted


# --- deciding -------------------------------------------------------------------------------------
def decide_item(
    session: Session,
    user: User,
    item_id: int,
    decision: str,
    *,
    reason: str | None = None,
    comment: str = "",
) -> ReviewItem:
    """Close review item ``item_id`` with ``decision`` (the ONE way a person closes an item):
    acceptance ``accept`` | ``reject`` (``reason`` from :data:`REJECT_REASONS`), appeal ``uphold``
    (a comment: the worker reads why) | ``overturn``, spans ``fixed`` (its effect is the caller's).
    Two deciders at once: one wins, the other gets Conflict ``review.already_decided``."""
    item = session.get(ReviewItem, item_id)
    if item is None:
        raise NotFound(f"No review item {item_id}.", code="review.not_found")
    policy.require(user, "review.decide", item)
    if decision not in DECISIONS[item.kind]:
        allowed = " or ".join(DECISIONS[item.kind])
        raise InvalidInput(f"A {item.kind.value} item is decided with {allowed}.", code="review.bad_decision")
    comment = _clean_comment(comment, code="review.comment_too_long")
    if decision == "reject":
        if reason not in REJECT_REASONS:
            raise InvalidInput("Choose a reason from the list to reject a clip.", code="review.bad_reason")
        if reason == "other" and not comment:
            raise InvalidInput("Say why in the comment when the reason is “other”.", code="review.comment_required")
    else:
        reason = None
    if decision == "uphold" and not comment:
        raise InvalidInput("Tell the worker why the verdict stands.", code="review.comment_required")
    if not _close(session, item.id, decision, decided_by=user.id, reason=reason, comment=comment):
        raise Conflict("Someone else decided this item already.", code="review.already_decided")
    session.refresh(item)
    clip = item.clip
    if item.kind is ReviewKind.acceptance:
        if decision == "accept":
            accept_clip(session, clip, user, how="review")
        else:
            decline_clip(session, clip, user, reason=cast(str, reason), comment=comment)
    elif item.kind is ReviewKind.appeal:
        _settle_appeal(session, item, clip, user)
    audit.record(
        session,
        user,
        "review.decided",
        item,
        {"decision": decision, "reason": reason, "comment": comment, "clip_id": clip.id, "kind": item.kind.value},
    )
    review_pay.pay_for_decision(session, item, user)
    return item


# --- appeals --------------------------------------------------------------------------------------
def _rejected_by(session: Session, clip_id: int) -> int | None:
    """Who rejected the clip (the latest rejecting acceptance item), None for a QC verdict."""
    return session.scalar(
        sa.select(ReviewItem.decided_by)
        .where(
            ReviewItem.clip_id == clip_id,
            ReviewItem.kind == ReviewKind.acceptance,
            ReviewItem.decision == "reject",
        )
        .order_by(ReviewItem.id.desc())
        .limit(1)
    )


def appeal(session: Session, worker: User, clip_id: int, comment: str) -> ReviewItem:
    """The clip's worker disputes its QC failure or its rejection, once per clip ever, with a
    comment. The appeal goes to platform reviewers, never to the one who rejected the clip."""
    clip = get_clip(session, worker, clip_id)
    policy.require(worker, "clip.appeal", clip)
    if clip.status not in (ClipStatus.qc_failed, ClipStatus.declined):
        raise Conflict(
            f"Clip {clip.id} is {clip.status.value}: only a failed check or a rejection can be appealed.",
            code="appeal.not_appealable",
        )
    text = _clean_comment(comment, code="appeal.comment_too_long")
    if len(text) < APPEAL_MIN:
        raise InvalidInput(
            f"Say in a few words (at least {APPEAL_MIN} characters) why the verdict is wrong.",
            code="appeal.comment_required",
        )
    if session.scalar(
        sa.select(ReviewItem.id).where(ReviewItem.clip_id == clip.id, ReviewItem.kind == ReviewKind.appeal)
    ):
        raise Conflict("You have appealed this clip already; a clip is appealed once.", code="appeal.already_made")
    disputes = "qc" if clip.status is ClipStatus.qc_failed else "rejection"
    try:
        item = open_item(
            session,
            clip,
            ReviewKind.appeal,
            audience=AUDIENCE_PLATFORM,
            excluded_user_id=_rejected_by(session, clip.id) if disputes == "rejection" else None,
            requested_by=worker.id,
            request_comment=text,
            disputes=disputes,
        )
    except IntegrityError:  # the same worker's second click raced the first
        raise Conflict(
            "You have appealed this clip already; a clip is appealed once.", code="appeal.already_made"
        ) from None
    audit.record(session, worker, "clip.appealed", clip, {"item_id": item.id, "disputes": disputes, "comment": text})
    return item


def _settle_appeal(session: Session, item: ReviewItem, clip: Clip, reviewer: User) -> None:
    params = {"clip": clip.id, "comment": item.comment or ""}
    note = N_("The reviewer wrote: {comment}") if item.comment else ""
    if item.decision == "uphold":
        stands = (
            N_("A reviewer looked at your appeal and the failed check stands.")
            if item.disputes == "qc"
            else N_("A reviewer looked at your appeal and the rejection stands.")
        )
        notify(
            session,
            clip.worker_id,
            "appeal.upheld",
            N_("Appeal on clip {clip}: not granted"),
            [stands, note],
            link=f"/clips/{clip.id}",
            params=params,
        )
        return
    body: list[str]
    if item.disputes == "qc":
        if clip.status is not ClipStatus.qc_failed:
            raise Conflict(f"Clip {clip.id} is {clip.status.value} now: nothing to overturn.", code="appeal.moot")
        # The check was wrong (a fist or a glove the hand detector missed): the clip passes, is
        # de-identified like any passed clip, then accepted by the review stage (route_clip).
        clip.status, clip.reason_code, clip.updated_at = ClipStatus.qc_passed, None, utcnow()
        audit.record(session, reviewer, "clip.qc_overturned", clip, {"item_id": item.id})
        request_deidentify(session, reviewer, clip, f"appeal {item.id} overturned the QC verdict")
        body = [
            N_(
                "A reviewer agreed with your appeal: the clip passes. It is accepted once its copy without faces "
                "is ready."
            ),
            note,
        ]
    else:
        accept_clip(session, clip, reviewer, how="appeal")
        body = [N_("A reviewer agreed with your appeal: the rejection is withdrawn and the clip is accepted."), note]
    notify(
        session,
        clip.worker_id,
        "appeal.granted",
        N_("Appeal on clip {clip}: granted"),
        body,
        link=f"/clips/{clip.id}",
        params=params,
    )


def appeal_for(session: Session, clip_id: int) -> ReviewItem | None:
    """The clip's appeal, if its worker made one (for the clip page)."""
    return session.scalar(
        sa.select(ReviewItem).where(ReviewItem.clip_id == clip_id, ReviewItem.kind == ReviewKind.appeal)
    )


def earlier_decision(session: Session, clip_id: int) -> ReviewItem | None:
    """The clip's latest decided acceptance item (who rejected it and why, for an appeal and the
    clip page), None when no person decided on it."""
    return session.scalar(
        sa.select(ReviewItem)
        .where(
            ReviewItem.clip_id == clip_id,
            ReviewItem.kind == ReviewKind.acceptance,
            ReviewItem.state == ReviewState.done,
        )
        .order_by(ReviewItem.id.desc())
        .limit(1)
    )


def can_appeal(session: Session, user: User, clip: Clip) -> bool:
    """Whether the clip page offers ``user`` the appeal form."""
    return (
        policy.can(user, "clip.appeal", clip)
        and clip.status in (ClipStatus.qc_failed, ClipStatus.declined)
        and appeal_for(session, clip.id) is None
    )


# --- the ``review`` pipeline stage ----------------------------------------------------------------
def _prepare_review(session: Session, clip: Clip, ctx: Any) -> dict[str, Any]:
    return {}


def _apply_review(session: Session, clip: Clip, result: dict[str, Any]) -> str | None:
    route_clip(session, clip)
    return None


def _put_back_review(session: Session, clip: Clip) -> None:
    # Routing changes no status until someone decides: a requeued clip keeps its QC verdict.
    return None


def _give_up_review(session: Session, clip: Clip, code: str) -> None:
    # The clip keeps its QC verdict; the job in error shows operators what to retry.
    return None


@stage(
    "review",
    "1",
    prepare=_prepare_review,
    apply=_apply_review,
    put_back=_put_back_review,
    give_up=_give_up_review,
    description="Send a de-identified clip to a person for acceptance (sampled), or accept it",
)
def compute_review(inputs: dict[str, Any]) -> dict[str, Any]:
    """Nothing to compute: routing reads the campaign's settings in apply."""
    return {}


__all__ = [
    "DECISIONS",
    "REJECT_REASONS",
    "accept_clip",
    "appeal",
    "appeal_for",
    "auto_accept_due",
    "can_appeal",
    "decide_item",
    "decline_clip",
    "earlier_decision",
    "get_item",
    "open_item",
    "queue",
    "queue_campaigns",
    "review_settings",
    "route_clip",
    "sampled",
]
