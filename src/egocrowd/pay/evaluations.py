"""Paying evaluators (issue #19, docs/evaluations.md): each verdict in a blind A/B battle of an
evaluation that pays (``evaluation.pay_cents``) is paid once, on the verdict, from the campaign's
budget through the ledger (kind ``evaluation_work``, key ``battle:<id>:judged``). Gold battles are
paid too: the evaluator cannot tell them apart and did the same work. When the budget is short the
pay is owed (audited ``battle.pay_owed``) and :func:`settle_owed` pays it after the next deposit,
oldest first, as for clips and annotation answers.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd.db.models import Battle, BattleStatus, Campaign, Evaluation, LedgerTransaction, User
from egocrowd.pay import ledger
from egocrowd.pay.money import Money

#: one payment per verdict
payment_key = ledger.PaymentKey("battle", "judged")


def pay_for_verdict(
    session: Session,
    battle: Battle,
    evaluation: Evaluation,
    actor: User | None,
    *,
    fee_bps: int = ledger.DEFAULT_FEE_BPS,
) -> LedgerTransaction | None:
    """Pay the evaluator for one verdict (idempotent by its key). None when the evaluation does not
    pay, or when the budget cannot cover it (then owed: audited ``battle.pay_owed``)."""
    if evaluation.pay_cents <= 0 or battle.status is not BattleStatus.judged:
        return None
    campaign = session.get_one(Campaign, evaluation.campaign_id)
    worker = session.get_one(User, battle.evaluator_id)
    pay = Money(evaluation.pay_cents, campaign.currency)
    return ledger.pay_or_owe(
        session,
        ledger.TransactionKind.evaluation_work,
        campaign,
        worker,
        pay,
        fee_bps=fee_bps,
        idempotency_key=payment_key(battle.id),
        reason=f"Verdict in battle {battle.id} of campaign {campaign.id}: {pay}",
        actor=actor,
        refs={"battle_id": battle.id, "campaign_id": campaign.id, "fee_bps": fee_bps},
        owed=("battle.pay_owed", battle),
    )


def owed_verdicts(session: Session, campaign_id: int) -> list[Battle]:
    """Judged battles of the campaign's evaluation with no pay posted yet, oldest first."""
    paid = sa.select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key == payment_key.sql(Battle.id))
    return list(
        session.scalars(
            sa.select(Battle)
            .join(Evaluation, Evaluation.id == Battle.evaluation_id)
            .where(
                Evaluation.campaign_id == campaign_id,
                Evaluation.pay_cents > 0,
                Battle.status == BattleStatus.judged,
                ~paid.exists(),
            )
            .order_by(Battle.id)
        )
    )


def settle_owed(session: Session, campaign: Campaign, actor: User | None) -> int:
    """Pay owed verdicts while the budget lasts (after a deposit). Returns how many."""
    return ledger.settle(
        owed_verdicts(session, campaign.id),
        lambda battle: pay_for_verdict(session, battle, session.get_one(Evaluation, battle.evaluation_id), actor),
    )
