"""Campaign budgets (issue #11, docs/pay.md): paying for accepted clips, deposits, and what a
campaign has promised against what it holds.

A campaign's promise is its target: ``target_clips`` accepted clips at ``pay + fee`` each. It may
open, resume, or raise its target only while its budget covers every clip it has not paid for yet
(:func:`require_covered`). Paying never loses an acceptance: when the budget cannot cover a clip
(a deposit reversed, a fee raised, an old campaign funded before budgets existed) the clip stays
accepted and its pay is *owed* (audited ``clip.pay_owed``, shown on the campaign page); the next
deposit pays owed clips first, oldest first (:func:`record_deposit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from egocrowd import audit
from egocrowd.accounts import policy
from egocrowd.db.models import (
    Campaign,
    Clip,
    ClipStatus,
    Evaluation,
    LedgerAccount,
    LedgerAccountKind,
    LedgerEntry,
    LedgerTransaction,
    LedgerTransactionKind,
    User,
)
from egocrowd.errors import Conflict, NotFound
from egocrowd.pay import answers, evaluations, ledger, rates, redaction, reviews, sessions
from egocrowd.pay.money import Money, fee_for


def fee_bps() -> int:
    """The platform's fee on top of pay, in basis points: one place, until it becomes a setting."""
    return ledger.DEFAULT_FEE_BPS


def cost_per_clip(campaign: Campaign) -> Money:
    """What one accepted clip takes from the budget: the worker's pay plus the platform's fee, and,
    when the campaign pays for annotation, its ``per_clip`` answers' pay and fees (pay.answers), and
    when it pays platform reviewers, a review decision's pay and fee for the share of clips reviewed,
    and when it pays for redaction review, that pay and fee for every clip (any clip may need it: the
    estimate is the most it can cost, so a promise is never under-covered)."""
    pay = Money(campaign.pay_cents, campaign.currency)
    cost = pay + fee_for(pay, fee_bps())
    per_answer = answers.pay_cents(campaign)
    if per_answer > 0:
        answer = Money(per_answer, campaign.currency)
        k = int((campaign.annotation or {}).get("per_clip") or 1)
        cost = cost + Money((answer + fee_for(answer, fee_bps())).minor * k, campaign.currency)
    per_review = reviews.pay_cents(campaign)
    review = campaign.review or {}
    if per_review > 0 and review.get("reviewers", "platform") != "requester":
        # the share of clips a person reviews, each decision with its fee, rounded up to the minor unit
        one = Money(per_review, campaign.currency)
        share = Decimal(str(review.get("sample_fraction", 1.0))) * (one + fee_for(one, fee_bps())).minor
        cost = cost + Money(int(share.to_integral_value(rounding=ROUND_CEILING)), campaign.currency)
    per_redaction = redaction.pay_cents(campaign)
    if per_redaction > 0:
        one = Money(per_redaction, campaign.currency)
        cost = cost + one + fee_for(one, fee_bps())
    return cost


def owed_clips(session: Session, campaign_id: int) -> list[Clip]:
    """The campaign's accepted clips nobody has paid for yet (the budget was short), oldest first."""
    paid = sa.select(LedgerTransaction.id).where(
        LedgerTransaction.idempotency_key == ledger.clip_payment_key.sql(Clip.id)
    )
    return list(
        session.scalars(
            sa.select(Clip)
            .where(Clip.campaign_id == campaign_id, Clip.status == ClipStatus.accepted, ~paid.exists())
            .order_by(Clip.id)
        )
    )


def pay_accepted_clip(session: Session, clip: Clip, actor: User | None) -> LedgerTransaction | None:
    """Pay the worker for ``clip``, just accepted (labels.review.accept_clip calls this). Idempotent:
    the key ``clip:<id>:accepted`` pays once however often it is asked. When the budget cannot cover
    it, the acceptance stands and the pay is owed (audited ``clip.pay_owed``); returns None then."""
    try:
        return ledger.pay_for_clip(session, clip, actor, fee_bps=fee_bps())
    except ledger.InsufficientFunds as short:
        audit.record(
            session,
            actor,
            "clip.pay_owed",
            clip,
            {
                "campaign_id": clip.campaign_id,
                "worker_id": clip.worker_id,
                "needed": short.extra.get("needed"),
                "balance": short.extra.get("balance"),
            },
        )
        return None


def settle_owed(session: Session, campaign: Campaign, actor: User | None) -> int:
    """Pay the campaign's owed clips, oldest first, while the budget lasts. Returns how many."""
    return ledger.settle(owed_clips(session, campaign.id), lambda clip: pay_accepted_clip(session, clip, actor))


def record_deposit(
    session: Session,
    campaign: Campaign,
    money: Money,
    actor: User,
    *,
    reason: str,
    idempotency_key: str,
) -> LedgerTransaction:
    """An admin records money the lab sent for ``campaign`` (``ledger.deposit``: admins only, audited
    ``ledger.posted``), then pays any clips, annotation answers, evaluation verdicts, field sessions,
    review decisions, redaction reviews and top-ups whose pay was owed. A retried form (same key) posts once."""
    txn = ledger.deposit(session, campaign, money, actor, idempotency_key=idempotency_key, reason=reason)
    settle_owed(session, campaign, actor)
    answers.settle_owed(session, campaign, actor)
    evaluations.settle_owed(session, campaign, actor)
    sessions.settle_owed(session, campaign, actor, fee_bps=fee_bps())
    reviews.settle_owed(session, campaign, actor)
    redaction.settle_owed(session, campaign, actor)
    rates.settle_top_ups(session, campaign, actor)
    return txn


@dataclass(frozen=True)
class Budget:
    """Where a campaign's money stands. ``committed``: what its target still needs (clips not yet
    accepted × cost per clip, plus owed pay) plus what it has spent; ``left`` = deposited − spent;
    ``short`` = how much more must be deposited to cover the target (zero when covered). ``owed``
    counts accepted field sessions not paid yet (their pay and fee, exact) with the owed clips;
    ``cost_per_session`` is the most one field session can cost (its capped hours' pay and fee)."""

    currency: str
    cost_per_clip: Money
    deposited: Money
    spent: Money
    left: Money
    accepted_clips: int
    paid_clips: int  # clips whose pay stands (posted, not reversed)
    owed: Money
    owed_clips: int
    to_come: Money  # target clips not yet accepted × cost per clip
    committed: Money
    short: Money
    owed_sessions: int = 0
    cost_per_session: Money | None = None  # None: the campaign pays no field session

    @property
    def covered(self) -> bool:
        return self.short.minor == 0


def budget(session: Session, campaign: Campaign, *, target_clips: int | None = None) -> Budget:
    """The campaign's budget from the ledger (``target_clips``: as if the target were this). Reads
    only (a page's read-only transaction may call it): a campaign never funded has no account yet."""
    cur = campaign.currency
    E, T = LedgerEntry, LedgerTransaction
    acct_id = session.scalar(
        sa.select(LedgerAccount.id).where(
            LedgerAccount.kind == LedgerAccountKind.campaign_budget,
            LedgerAccount.currency == cur,
            LedgerAccount.owner_key == f"campaign:{campaign.id}",
        )
    )
    deposited_minor = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(E.amount), 0))
        .join(T, T.id == E.transaction_id)
        .where(E.account_id == acct_id, T.kind == LedgerTransactionKind.deposit)
    )
    left_minor = session.scalar(sa.select(sa.func.coalesce(sa.func.sum(E.amount), 0)).where(E.account_id == acct_id))
    left = Money(int(left_minor or 0), cur)
    deposited = Money(int(deposited_minor or 0), cur)
    spent = deposited - left
    accepted = int(
        session.scalar(
            sa.select(sa.func.count(Clip.id)).where(Clip.campaign_id == campaign.id, Clip.status == ClipStatus.accepted)
        )
        or 0
    )
    owing = owed_clips(session, campaign.id)
    payment, reversal = aliased(LedgerTransaction), aliased(LedgerTransaction)
    paid_clips = int(
        session.scalar(
            sa.select(sa.func.count(Clip.id))
            .join(payment, payment.idempotency_key == ledger.clip_payment_key.sql(Clip.id))
            .outerjoin(reversal, reversal.reverses_id == payment.id)
            .where(Clip.campaign_id == campaign.id, reversal.id.is_(None))
        )
        or 0
    )
    unit = cost_per_clip(campaign)
    owed = Money(unit.minor * len(owing), cur)
    owed_sessions = sessions.owed_sessions(session, campaign.id)
    for row in owed_sessions:
        one = Money(row.pay_cents, cur)
        owed = owed + one + fee_for(one, fee_bps())
    ev = session.scalar(sa.select(Evaluation).where(Evaluation.campaign_id == campaign.id))
    per_session = sessions.max_cost(ev, cur, fee_bps()) if ev is not None else None
    target = campaign.target_clips if target_clips is None else target_clips
    to_come = Money(unit.minor * max(target - accepted, 0), cur)
    committed = spent + owed + to_come
    short = Money(max(committed.minor - deposited.minor, 0), cur)
    return Budget(
        currency=cur,
        cost_per_clip=unit,
        deposited=deposited,
        spent=spent,
        left=left,
        accepted_clips=accepted,
        paid_clips=paid_clips,
        owed=owed,
        owed_clips=len(owing),
        to_come=to_come,
        committed=committed,
        short=short,
        owed_sessions=len(owed_sessions),
        cost_per_session=per_session if per_session is not None and per_session.minor else None,
    )


def visible_budget(session: Session, user: User | None, campaign_id: int) -> tuple[Campaign, Budget]:
    """The campaign and its budget, for its lab's team and admins (``campaign.not_found`` for anyone
    else: a worker never learns what a lab holds)."""
    c = session.get(Campaign, campaign_id)
    if c is None or not policy.can(user, "org.view", c.organization):
        raise NotFound(f"No campaign {campaign_id}.", code="campaign.not_found")
    return c, budget(session, c)


def deposit_to(
    session: Session, actor: User, campaign_id: int, money: Money, *, reason: str, idempotency_key: str
) -> tuple[LedgerTransaction, Budget]:
    """The doors' deposit: an admin funds campaign ``campaign_id`` (:func:`record_deposit`)."""
    c = session.get(Campaign, campaign_id)
    if c is None:
        raise NotFound(f"No campaign {campaign_id}.", code="campaign.not_found")
    # the caller's key names one deposit to this campaign: the same key elsewhere is another deposit
    key = f"deposit:{c.id}:{idempotency_key}"
    txn = record_deposit(session, c, money, actor, reason=reason, idempotency_key=key)
    return txn, budget(session, c)


def require_covered(session: Session, campaign: Campaign, *, target_clips: int | None = None, doing: str) -> Budget:
    """Refuse (``campaign.budget_short``, with ``missing``) when the budget does not cover the
    campaign's target; ``doing`` says what was refused, in words ("open it")."""
    b = budget(session, campaign, target_clips=target_clips)
    if not b.covered:
        target = campaign.target_clips if target_clips is None else target_clips
        raise Conflict(
            f"The campaign's budget does not cover its target: {target} clips at {b.cost_per_clip} each need "
            f"{b.committed} in all, it has {b.deposited}. Deposit {b.short} more to {doing}.",
            code="campaign.budget_short",
            missing=b.short.format(),
            currency=b.currency,
            needed=b.committed.format(),
            deposited=b.deposited.format(),
        )
    return b


__all__ = [
    "Budget",
    "budget",
    "deposit_to",
    "visible_budget",
    "cost_per_clip",
    "fee_bps",
    "owed_clips",
    "pay_accepted_clip",
    "record_deposit",
    "require_covered",
    "settle_owed",
]
