"""Paying platform reviewers (docs/pay.md "Paying for review"): each review item a platform reviewer
decides (accepting or rejecting a clip, ruling on an appeal, fixing disagreeing spans) in a campaign
that pays for review (``campaign.review.pay_cents``) is paid once, on the decision, from the
campaign's budget through the ledger (kind ``review_work``, key ``review:<item id>:decided``).

Only people with the reviewer role are paid this way: the lab's own team reviews as part of its
job, an admin's decision is an intervention, and automatic acceptance is nobody's work. When the
budget is short the pay is owed (audited ``review.pay_owed``) and the next deposit pays it, oldest
first, as for clips, answers and verdicts.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd.db.models import Campaign, LedgerTransaction, ReviewItem, ReviewState, Role, User
from egocrowd.pay import ledger
from egocrowd.pay.money import Money

#: one payment per decision
payment_key = ledger.PaymentKey("review", "decided")


def pay_cents(campaign: Campaign) -> int:
    """What the campaign pays per review decision, in minor units (0: it does not pay for them)."""
    return int((campaign.review or {}).get("pay_cents") or 0)


def _reviewer(session: Session, item: ReviewItem) -> User | None:
    """Who earns the item's pay: its decider, when a platform reviewer decided it."""
    if item.state is not ReviewState.done or item.decided_by is None:
        return None
    user = session.get(User, item.decided_by)
    return user if user is not None and user.role is Role.reviewer else None


def pay_for_decision(
    session: Session, item: ReviewItem, actor: User | None, *, fee_bps: int = ledger.DEFAULT_FEE_BPS
) -> LedgerTransaction | None:
    """Pay the reviewer for one decided item (idempotent by its key). None when it earns no pay, or
    when the budget cannot cover it (then owed: audited ``review.pay_owed``)."""
    campaign = session.get_one(Campaign, item.campaign_id)
    reviewer = _reviewer(session, item)
    if pay_cents(campaign) <= 0 or reviewer is None:
        return None
    pay = Money(pay_cents(campaign), campaign.currency)
    return ledger.pay_or_owe(
        session,
        ledger.TransactionKind.review_work,
        campaign,
        reviewer,
        pay,
        fee_bps=fee_bps,
        idempotency_key=payment_key(item.id),
        reason=f"Review decision {item.id} ({item.kind.value}) on clip {item.clip_id} of campaign {campaign.id}: {pay}",
        actor=actor,
        refs={
            "review_item_id": item.id,
            "clip_id": item.clip_id,
            "campaign_id": campaign.id,
            "pay_minor": pay.minor,
            "fee_bps": fee_bps,
        },
        owed=("review.pay_owed", item),
    )


def owed_decisions(session: Session, campaign_id: int) -> list[ReviewItem]:
    """Decided items whose reviewer earns pay and has none posted yet, oldest first."""
    paid = sa.select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key == payment_key.sql(ReviewItem.id))
    rows = session.scalars(
        sa.select(ReviewItem)
        .join(User, User.id == ReviewItem.decided_by)
        .where(
            ReviewItem.campaign_id == campaign_id,
            ReviewItem.state == ReviewState.done,
            User.role == Role.reviewer,
            ~paid.exists(),
        )
        .order_by(ReviewItem.id)
    )
    return list(rows)


def settle_owed(session: Session, campaign: Campaign, actor: User | None) -> int:
    """Pay owed decisions while the budget lasts (after a deposit). Returns how many."""
    if pay_cents(campaign) <= 0:
        return 0
    return ledger.settle(owed_decisions(session, campaign.id), lambda item: pay_for_decision(session, item, actor))


__all__ = ["owed_decisions", "pay_cents", "pay_for_decision", "payment_key", "settle_owed"]
