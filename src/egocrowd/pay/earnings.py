"""What a worker sees about their money (issue #11, docs/pay.md): every clip that is or may be paid,
who buys it and for what, the hourly rate its pay means, totals per week and the balance per currency.

Everything paid comes from the ledger: a line is *approved* when the clip's payment
(``clip:<id>:accepted``) was posted and not reversed, *reversed* when it was (with the reason the
worker reads), *owed* when the clip was accepted but its campaign's budget could not pay yet, and
*pending* while the clip is sent and not decided. Weekly totals and balances are sums of the
worker's ledger entries, so they agree with the books to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from egocrowd.db.models import (
    AnnotationTask,
    AnnotationTaskStatus,
    Assignment,
    Campaign,
    Clip,
    ClipStatus,
    Evaluation,
    FieldSession,
    LedgerAccount,
    LedgerAccountKind,
    LedgerEntry,
    LedgerTransaction,
    ReviewItem,
    ReviewState,
    Role,
    User,
)
from egocrowd.pay import answers, ledger, payouts, rates, redaction, reviews, sessions
from egocrowd.pay.money import Money

#: the clip states whose pay is still to be decided (sent, checks running or passed, nobody decided)
UNDECIDED = (ClipStatus.processing, ClipStatus.qc_passed)
#: at most this many clips on one page of earnings (newest first); totals and balances count all
MAX_LINES = 500


def hourly_rate(pay: Money, expected_minutes: float) -> Money:
    """What ``pay`` for ``expected_minutes`` of work comes to per hour, rounded half up to the minor
    unit (Decimal arithmetic: the minutes are a decimal the lab typed, never binary-rounded pay)."""
    per_hour = Decimal(pay.minor) * 60 / Decimal(str(expected_minutes))
    return Money(int(per_hour.quantize(Decimal(1), rounding=ROUND_HALF_UP)), pay.currency)


@dataclass(frozen=True)
class EarningLine:
    clip_id: int
    campaign_id: int
    campaign_title: str
    buyer_name: str
    data_use: dict[str, Any]  # the campaign's DataUse: what the buyer may do with the clip
    state: str  # pending | approved | owed | reversed
    amount: Money  # paid (approved), to be paid (pending, owed), or taken back (reversed)
    hourly: Money  # the campaign's pay per expected working time, per hour
    expected_minutes: float
    worked_seconds: int | None  # this clip's own working time (claim → submit, less idle); None: unknown
    effective: Money | None  # the pay (and any top-ups) per hour of this clip's own working time
    sent_at: datetime
    paid_at: datetime | None
    reversed_at: datetime | None
    reversal_reason: str | None


@dataclass(frozen=True)
class TopUpLine:
    """A top-up paid on one of the worker's clips (pay.rates); ``reversed`` when it was taken back
    (with the clip's pay, pay.reversals): the amount is then what was taken back, as for clips."""

    clip_id: int
    campaign_id: int
    campaign_title: str
    amount: Money
    paid_at: datetime
    state: str = "approved"  # approved | reversed
    reversed_at: datetime | None = None
    reversal_reason: str | None = None


@dataclass(frozen=True)
class AnswerLine:
    """An annotation answer of the worker's and its pay (pay.answers)."""

    task_id: int
    clip_id: int
    campaign_id: int
    campaign_title: str
    state: str  # approved | owed | withheld (flagged too fast) | reversed
    amount: Money
    worked_seconds: int | None
    effective: Money | None
    submitted_at: datetime


@dataclass(frozen=True)
class ReviewLine:
    """A review decision of the reviewer's and its pay (pay.reviews)."""

    item_id: int
    clip_id: int
    campaign_id: int
    campaign_title: str
    kind: str  # acceptance | appeal | spans
    state: str  # approved | owed | reversed
    amount: Money
    decided_at: datetime


@dataclass(frozen=True)
class SessionLine:
    """An accepted field session of the worker's and its pay (pay.sessions)."""

    field_session_id: int
    campaign_id: int
    campaign_title: str
    duration_s: float | None  # as the log states it (the pay counts at most the evaluation's cap)
    state: str  # approved | owed | reversed
    amount: Money
    sent_at: datetime


@dataclass(frozen=True)
class RedactionLine:
    """A clip whose redaction the reviewer reviewed, and its pay (pay.redaction)."""

    clip_id: int
    campaign_id: int
    campaign_title: str
    state: str  # approved | owed | reversed
    amount: Money
    reviewed_at: datetime


@dataclass(frozen=True)
class Week:
    start: date  # the Monday (UTC) the week begins
    earned: list[Money]  # net ledger postings to the worker that week, one per currency
    pending: list[Money] = field(default_factory=list)  # clips sent that week still undecided


@dataclass(frozen=True)
class Earnings:
    lines: list[EarningLine]
    weeks: list[Week]  # newest first
    balances: list[Money]  # the worker's ledger balance per currency (owed to them, not paid out yet)
    totals: dict[str, list[Money]]  # state → amount per currency, over the lines shown
    top_ups: list[TopUpLine] = field(default_factory=list)  # newest first
    answers: list[AnswerLine] = field(default_factory=list)  # paid-for annotation answers, newest first
    reviews: list[ReviewLine] = field(default_factory=list)  # paid-for review decisions, newest first
    sessions: list[SessionLine] = field(default_factory=list)  # paid-for field sessions, newest first
    redactions: list[RedactionLine] = field(default_factory=list)  # paid-for redaction reviews, newest first


def _monday(moment: datetime) -> date:
    day = moment.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def _sorted(amounts: dict[str, int]) -> list[Money]:
    return [Money(v, cur) for cur, v in sorted(amounts.items())]


def earnings(session: Session, worker: User, *, limit: int = MAX_LINES) -> Earnings:
    """The worker's earnings page: their clips newest first (at most ``limit``), weeks and balances."""
    limit = max(1, min(limit, MAX_LINES))
    paid = aliased(LedgerTransaction)
    undo, standing = ledger.standing_reversal(paid.id)
    rows = session.execute(
        sa.select(Clip, Campaign, paid, undo, Assignment)
        .join(Campaign, Campaign.id == Clip.campaign_id)
        .outerjoin(Assignment, Assignment.id == Clip.assignment_id)
        .outerjoin(paid, paid.idempotency_key == ledger.clip_payment_key.sql(Clip.id))
        .outerjoin(undo, standing)
        .where(
            Clip.worker_id == worker.id,
            sa.or_(Clip.status.in_(UNDECIDED), Clip.status == ClipStatus.accepted, paid.id.is_not(None)),
        )
        .order_by(Clip.id.desc())
        .limit(limit)
    ).all()
    accounts = list(
        session.scalars(
            sa.select(LedgerAccount).where(
                LedgerAccount.kind == LedgerAccountKind.worker_earnings, LedgerAccount.user_id == worker.id
            )
        )
    )
    account_ids = [a.id for a in accounts]
    # what each payment put into the worker's own account (the fee went elsewhere)
    paid_amounts = dict(
        session.execute(
            sa.select(LedgerEntry.transaction_id, LedgerEntry.amount).where(
                LedgerEntry.account_id.in_(account_ids),
                LedgerEntry.transaction_id.in_([p.id for _, _, p, _, _ in rows if p is not None]),
            )
        ).all()
    )
    lines = []
    totals: dict[str, dict[str, int]] = {}
    pending_weeks: dict[date, dict[str, int]] = {}
    topped: dict[int, int] = {}
    top_up_lines = []
    for txn, got, campaign, reversal in rates.worker_top_ups(session, worker):
        clip_id = int(txn.refs["clip_id"])
        if reversal is None:  # a top-up taken back no longer raises the clip's hourly rate
            topped[clip_id] = topped.get(clip_id, 0) + got.minor
        top_up_lines.append(
            TopUpLine(
                clip_id,
                campaign.id,
                campaign.title,
                got,
                txn.at,
                state="reversed" if reversal is not None else "approved",
                reversed_at=reversal.at if reversal is not None else None,
                reversal_reason=reversal.reason if reversal is not None else None,
            )
        )
    for clip, campaign, payment, reversal, assignment in rows:
        price = Money(campaign.pay_cents, campaign.currency)
        if payment is not None:
            amount = Money(int(paid_amounts.get(payment.id, 0)), campaign.currency)
            state = "reversed" if reversal is not None else "approved"
        else:
            amount = price
            state = "owed" if clip.status is ClipStatus.accepted else "pending"
        worked = (
            rates.working_seconds(assignment.claimed_at, assignment.submitted_at, assignment.idle_seconds)
            if assignment is not None and assignment.submitted_at is not None
            else None
        )
        if state == "pending":
            week = pending_weeks.setdefault(_monday(clip.created_at), {})
            week[amount.currency] = week.get(amount.currency, 0) + amount.minor
        by_cur = totals.setdefault(state, {})
        by_cur[amount.currency] = by_cur.get(amount.currency, 0) + amount.minor
        lines.append(
            EarningLine(
                clip_id=clip.id,
                campaign_id=campaign.id,
                campaign_title=campaign.title,
                buyer_name=campaign.buyer_name,
                data_use=dict(campaign.data_use or {}),
                state=state,
                amount=amount,
                hourly=hourly_rate(price, campaign.expected_minutes),
                expected_minutes=campaign.expected_minutes,
                worked_seconds=worked,
                effective=(
                    rates.hourly(Money(price.minor + topped.get(clip.id, 0), price.currency), worked)
                    if worked
                    else None
                ),
                sent_at=clip.created_at,
                paid_at=payment.at if payment is not None else None,
                reversed_at=reversal.at if reversal is not None else None,
                reversal_reason=reversal.reason if reversal is not None else None,
            )
        )
    # weeks from the ledger itself: every entry into the worker's accounts, by the week it was posted
    earned_weeks: dict[date, dict[str, int]] = {}
    currency_of = {a.id: a.currency for a in accounts}
    for account_id, amount_minor, at in session.execute(
        sa.select(LedgerEntry.account_id, LedgerEntry.amount, LedgerTransaction.at)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account_id.in_(account_ids), payouts.not_a_payout())  # money sent out is not earned less
    ):
        week = earned_weeks.setdefault(_monday(at), {})
        cur = currency_of[account_id]
        week[cur] = week.get(cur, 0) + int(amount_minor)
    weeks = [
        Week(start, _sorted(earned_weeks.get(start, {})), _sorted(pending_weeks.get(start, {})))
        for start in sorted(set(earned_weeks) | set(pending_weeks), reverse=True)
    ]
    sums = dict(
        session.execute(
            sa.select(LedgerEntry.account_id, sa.func.sum(LedgerEntry.amount))
            .where(LedgerEntry.account_id.in_(account_ids))
            .group_by(LedgerEntry.account_id)
        ).all()
    )
    balances = sorted((Money(int(sums.get(a.id) or 0), a.currency) for a in accounts), key=lambda m: m.currency)
    return Earnings(
        lines,
        weeks,
        balances,
        {state: _sorted(v) for state, v in totals.items()},
        top_ups=top_up_lines,
        answers=_answers(session, worker, limit),
        reviews=_reviews(session, worker, limit),
        sessions=_sessions(session, worker, limit),
        redactions=_redactions(session, worker, limit),
    )


def currencies(e: Earnings) -> set[str]:
    """Every currency the earnings mention."""
    found = {m.currency for m in e.balances}
    found |= {x.amount.currency for x in e.lines} | {x.amount.currency for x in e.answers}
    found |= {x.amount.currency for x in e.reviews} | {x.amount.currency for x in e.top_ups}
    found |= {x.amount.currency for x in e.sessions} | {x.amount.currency for x in e.redactions}
    found |= {m.currency for w in e.weeks for m in (*w.earned, *w.pending)}
    return found


def _answers(session: Session, worker: User, limit: int) -> list[AnswerLine]:
    """The worker's submitted answers on campaigns that pay for annotation, newest first."""
    paid = aliased(LedgerTransaction)
    undo, standing = ledger.standing_reversal(paid.id)
    rows = session.execute(
        sa.select(AnnotationTask, Campaign, paid, undo)
        .join(Campaign, Campaign.id == AnnotationTask.campaign_id)
        .outerjoin(paid, paid.idempotency_key == answers.payment_key.sql(AnnotationTask.id))
        .outerjoin(undo, standing)
        .where(AnnotationTask.annotator_id == worker.id, AnnotationTask.status == AnnotationTaskStatus.submitted)
        .order_by(AnnotationTask.id.desc())
        .limit(limit)
    ).all()
    out = []
    for task, campaign, payment, reversal in rows:
        cents = answers.pay_cents(campaign)
        if cents <= 0 and payment is None:
            continue
        amount = Money(cents, campaign.currency)
        if payment is not None:
            state = "reversed" if reversal is not None else "approved"
        else:
            state = "owed" if answers.payable(task) else "withheld"
        worked = (
            rates.working_seconds(task.claimed_at, task.submitted_at, task.idle_seconds)
            if task.submitted_at is not None
            else None
        )
        out.append(
            AnswerLine(
                task_id=task.id,
                clip_id=task.clip_id,
                campaign_id=campaign.id,
                campaign_title=campaign.title,
                state=state,
                amount=amount,
                worked_seconds=worked,
                effective=rates.hourly(amount, worked) if worked and amount.minor else None,
                submitted_at=task.submitted_at or task.claimed_at,
            )
        )
    return out


def _reviews(session: Session, reviewer: User, limit: int) -> list[ReviewLine]:
    """The reviewer's decisions on campaigns that pay for review, newest first."""
    if reviewer.role is not Role.reviewer:
        return []  # only platform reviewers are paid for deciding (pay.reviews)
    paid = aliased(LedgerTransaction)
    undo, standing = ledger.standing_reversal(paid.id)
    rows = session.execute(
        sa.select(ReviewItem, Campaign, paid, undo)
        .join(Campaign, Campaign.id == ReviewItem.campaign_id)
        .outerjoin(paid, paid.idempotency_key == reviews.payment_key.sql(ReviewItem.id))
        .outerjoin(undo, standing)
        .where(ReviewItem.decided_by == reviewer.id, ReviewItem.state == ReviewState.done)
        .order_by(ReviewItem.id.desc())
        .limit(limit)
    ).all()
    out = []
    for item, campaign, payment, reversal in rows:
        cents = reviews.pay_cents(campaign)
        if cents <= 0 and payment is None:
            continue
        minor, state = _posted(payment, reversal, cents)
        out.append(
            ReviewLine(
                item_id=item.id,
                clip_id=item.clip_id,
                campaign_id=campaign.id,
                campaign_title=campaign.title,
                kind=item.kind.value,
                state=state,
                amount=Money(minor, campaign.currency),
                decided_at=item.decided_at or item.created_at,
            )
        )
    return out


def _posted(payment: LedgerTransaction | None, reversal: LedgerTransaction | None, cents: int) -> tuple[int, str]:
    """A piece of work's amount and state: what was posted (whatever the rate is now), approved or
    reversed; else owed at ``cents``."""
    if payment is None:
        return cents, "owed"
    return int(payment.refs.get("pay_minor", cents)), "reversed" if reversal is not None else "approved"


def _sessions(session: Session, worker: User, limit: int) -> list[SessionLine]:
    """The worker's accepted field sessions that earn pay, newest first."""
    paid = aliased(LedgerTransaction)
    undo, standing = ledger.standing_reversal(paid.id)
    rows = session.execute(
        sa.select(FieldSession, Campaign, paid, undo)
        .join(Evaluation, Evaluation.id == FieldSession.evaluation_id)
        .join(Campaign, Campaign.id == Evaluation.campaign_id)
        .outerjoin(paid, paid.idempotency_key == sessions.payment_key.sql(FieldSession.id))
        .outerjoin(undo, standing)
        .where(
            FieldSession.worker_id == worker.id,
            FieldSession.status == "accepted",
            sa.or_(FieldSession.pay_cents > 0, paid.id.is_not(None)),
        )
        .order_by(FieldSession.id.desc())
        .limit(limit)
    ).all()
    out = []
    for row, campaign, payment, reversal in rows:
        minor, state = _posted(payment, reversal, row.pay_cents)
        out.append(
            SessionLine(
                field_session_id=row.id,
                campaign_id=campaign.id,
                campaign_title=campaign.title,
                duration_s=row.duration_s,
                state=state,
                amount=Money(minor, campaign.currency),
                sent_at=row.created_at,
            )
        )
    return out


def _redactions(session: Session, reviewer: User, limit: int) -> list[RedactionLine]:
    """The clips whose redaction the reviewer reviewed on campaigns that pay for it, newest first."""
    if reviewer.role is not Role.reviewer:
        return []  # only platform reviewers are paid for it (pay.redaction)
    paid = aliased(LedgerTransaction)
    undo, standing = ledger.standing_reversal(paid.id)
    rows = session.execute(
        sa.select(Clip, Campaign, paid, undo)
        .join(Campaign, Campaign.id == Clip.campaign_id)
        .outerjoin(paid, paid.idempotency_key == redaction.payment_key.sql(Clip.id))
        .outerjoin(undo, standing)
        .where(Clip.redaction_reviewed_by == reviewer.id)
        .order_by(Clip.redaction_reviewed_at.desc(), Clip.id.desc())
        .limit(limit)
    ).all()
    out = []
    for clip, campaign, payment, reversal in rows:
        cents = redaction.pay_cents(campaign)
        if cents <= 0 and payment is None:
            continue
        minor, state = _posted(payment, reversal, cents)
        out.append(
            RedactionLine(
                clip_id=clip.id,
                campaign_id=campaign.id,
                campaign_title=campaign.title,
                state=state,
                amount=Money(minor, campaign.currency),
                reviewed_at=clip.redaction_reviewed_at or clip.updated_at,
            )
        )
    return out


__all__ = [
    "MAX_LINES",
    "UNDECIDED",
    "AnswerLine",
    "EarningLine",
    "Earnings",
    "RedactionLine",
    "ReviewLine",
    "SessionLine",
    "TopUpLine",
    "Week",
    "currencies",
    "earnings",
    "hourly_rate",
]
