"""Paying for redaction review (docs/pay.md "Paying for review", docs/deid.md): a platform reviewer
who checks and corrects a clip's redaction (boxes the detectors missed, tracks that are not private,
then "Mark reviewed") did work like a review decision. A campaign whose review settings have
``redaction_pay_cents`` pays it once per clip, on the first "Mark reviewed", from the campaign's
budget through the ledger (kind ``redaction_review``, key ``redaction:<clip id>:reviewed``).

Why a sibling of ``review.pay_cents`` rather than the same rate: the work differs in size (drawing
boxes over frame ranges against deciding an accept/reject), a different share of clips comes to it
(only those the detectors were unsure of, whoever reviews acceptance), and campaigns that already
pay per decision promised their budget for decisions: reusing that rate would start spending it on
work nobody priced. 0 (the default) leaves redaction review unpaid, as before.

Who is paid follows pay.reviews: only people with the reviewer role. An admin's review is an
intervention (admins review redaction as part of running the platform), not paid work. A clip
reviewed again after a new render is paid once (the key is the clip's): a reviewer cannot earn twice
by sending the same clip back to review. When the budget is short the pay is owed (audited
``clip.redaction_pay_owed``) and the next deposit pays it, oldest first.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd.db.models import Campaign, Clip, LedgerTransaction, Role, User
from egocrowd.pay import ledger
from egocrowd.pay.money import Money

#: one payment per clip's redaction review
payment_key = ledger.PaymentKey("redaction", "reviewed")


def pay_cents(campaign: Campaign) -> int:
    """What the campaign pays per clip's redaction review, in minor units (0: unpaid)."""
    return int((campaign.review or {}).get("redaction_pay_cents") or 0)


def _reviewer(session: Session, clip: Clip) -> User | None:
    """Who earns the clip's redaction review pay: who first marked it reviewed, if a platform reviewer."""
    if clip.redaction_reviewed_by is None:
        return None
    user = session.get(User, clip.redaction_reviewed_by)
    return user if user is not None and user.role is Role.reviewer else None


def pay_for_redaction_review(
    session: Session, clip: Clip, actor: User | None, *, fee_bps: int = ledger.DEFAULT_FEE_BPS
) -> LedgerTransaction | None:
    """Pay the reviewer for one clip's redaction review (idempotent by its key). None when it earns
    no pay, or when the budget cannot cover it (then owed: audited ``clip.redaction_pay_owed``)."""
    campaign = session.get_one(Campaign, clip.campaign_id)
    reviewer = _reviewer(session, clip)
    if pay_cents(campaign) <= 0 or reviewer is None:
        return None
    pay = Money(pay_cents(campaign), campaign.currency)
    return ledger.pay_or_owe(
        session,
        ledger.TransactionKind.redaction_review,
        campaign,
        reviewer,
        pay,
        fee_bps=fee_bps,
        idempotency_key=payment_key(clip.id),
        reason=f"Redaction review of clip {clip.id} of campaign {campaign.id}: {pay}",
        actor=actor,
        refs={"clip_id": clip.id, "campaign_id": campaign.id, "pay_minor": pay.minor, "fee_bps": fee_bps},
        owed=("clip.redaction_pay_owed", clip),
    )


def owed_reviews(session: Session, campaign_id: int) -> list[Clip]:
    """Clips whose redaction a platform reviewer reviewed with no pay posted yet, oldest first."""
    paid = sa.select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key == payment_key.sql(Clip.id))
    return list(
        session.scalars(
            sa.select(Clip)
            .join(User, User.id == Clip.redaction_reviewed_by)
            .where(Clip.campaign_id == campaign_id, User.role == Role.reviewer, ~paid.exists())
            .order_by(Clip.id)
        )
    )


def settle_owed(session: Session, campaign: Campaign, actor: User | None) -> int:
    """Pay owed redaction reviews while the budget lasts (after a deposit). Returns how many."""
    if pay_cents(campaign) <= 0:
        return 0
    return ledger.settle(
        owed_reviews(session, campaign.id), lambda clip: pay_for_redaction_review(session, clip, actor)
    )


__all__ = ["owed_reviews", "pay_cents", "pay_for_redaction_review", "payment_key", "settle_owed"]
