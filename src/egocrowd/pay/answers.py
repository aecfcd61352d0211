"""Paying annotators (issue #11, docs/pay.md "Paying for annotation"): each submitted answer of a
campaign that pays for annotation (``campaign.annotation.pay_cents``) is paid once, from the campaign's
budget, through the ledger (kind ``annotation_accepted``, key ``annotation:<task id>:accepted``).

Which answers are paid: every submitted one (gold clips too: the annotator cannot tell them apart and
did the same work), except those flagged ``too_fast`` (sent in less time than the clip takes to play:
nobody watched it). Paying on submit rather than after consensus keeps annotators from waiting for
other people's answers. When the budget is short the pay is owed (audited ``annotation.pay_owed``)
and the next deposit pays it, oldest first, as for clips.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd.db.models import AnnotationTask, AnnotationTaskStatus, Campaign, LedgerTransaction, User
from egocrowd.pay import ledger
from egocrowd.pay.money import Money

#: the flag that withholds an answer's pay (labels.tasks sets it)
UNPAID_FLAG = "too_fast"


#: one payment per answer
payment_key = ledger.PaymentKey("annotation", "accepted")


def pay_cents(campaign: Campaign) -> int:
    """What the campaign pays per annotation answer, in minor units (0: it does not pay for them)."""
    return int((campaign.annotation or {}).get("pay_cents") or 0)


def payable(task: AnnotationTask) -> bool:
    return task.status is AnnotationTaskStatus.submitted and UNPAID_FLAG not in (task.flags or [])


def payable_tasks(session: Session, campaign_id: int) -> list[AnnotationTask]:
    """The campaign's submitted answers that earn pay, oldest first."""
    rows = session.scalars(
        sa.select(AnnotationTask)
        .where(AnnotationTask.campaign_id == campaign_id, AnnotationTask.status == AnnotationTaskStatus.submitted)
        .order_by(AnnotationTask.id)
    )
    return [t for t in rows if payable(t)]


def pay_for_answer(
    session: Session, task: AnnotationTask, actor: User | None, *, fee_bps: int = ledger.DEFAULT_FEE_BPS
) -> LedgerTransaction | None:
    """Pay the annotator for one submitted answer (idempotent by its key). None when the answer does
    not earn pay, or when the budget cannot cover it (then owed: audited ``annotation.pay_owed``)."""
    campaign = session.get(Campaign, task.campaign_id)
    assert campaign is not None
    if pay_cents(campaign) <= 0 or not payable(task):
        return None
    worker = session.get(User, task.annotator_id)
    assert worker is not None
    pay = Money(pay_cents(campaign), campaign.currency)
    return ledger.pay_or_owe(
        session,
        ledger.TransactionKind.annotation_accepted,
        campaign,
        worker,
        pay,
        fee_bps=fee_bps,
        idempotency_key=payment_key(task.id),
        reason=f"Annotation answer {task.id} on clip {task.clip_id} of campaign {campaign.id}: {pay}",
        actor=actor,
        refs={"task_id": task.id, "clip_id": task.clip_id, "campaign_id": campaign.id, "fee_bps": fee_bps},
        owed=("annotation.pay_owed", task),
    )


def owed_answers(session: Session, campaign_id: int) -> list[AnnotationTask]:
    """Answers that earn pay and have none posted yet (the budget was short), oldest first."""
    paid = sa.select(LedgerTransaction.id).where(
        LedgerTransaction.idempotency_key == payment_key.sql(AnnotationTask.id)
    )
    rows = session.scalars(
        sa.select(AnnotationTask)
        .where(
            AnnotationTask.campaign_id == campaign_id,
            AnnotationTask.status == AnnotationTaskStatus.submitted,
            ~paid.exists(),
        )
        .order_by(AnnotationTask.id)
    )
    return [t for t in rows if payable(t)]


def settle_owed(session: Session, campaign: Campaign, actor: User | None) -> int:
    """Pay owed answers while the budget lasts (after a deposit). Returns how many."""
    if pay_cents(campaign) <= 0:
        return 0
    return ledger.settle(owed_answers(session, campaign.id), lambda task: pay_for_answer(session, task, actor))


__all__ = [
    "UNPAID_FLAG",
    "owed_answers",
    "pay_cents",
    "pay_for_answer",
    "payable",
    "payable_tasks",
    "payment_key",
    "settle_owed",
]
