"""Paying for long field sessions (issue #19, docs/evaluations.md "Pay", docs/pay.md): a worker who
logs a session of minutes to hours with a robot at home did real work. An evaluation that pays for
it (``evaluation.session_hour_cents`` per hour, 0: unpaid) pays each **accepted** session once, from
the campaign's budget through the ledger (kind ``session_work``, key ``field_session:<id>:accepted``),
in the transaction that accepts the log.

What a session earns is fixed when it is accepted (``FieldSession.pay_cents``) from the evaluation's
rate and cap of that moment: its duration as the log states it, capped at ``session_max_hours`` (a
forged duration cannot drain the budget), times the hourly rate, **rounded up** to the minor unit
(the worker's favour). A refused log earns nothing. When the budget is short the pay is owed
(audited ``field_session.pay_owed``) and the next deposit pays it, oldest first, as for clips,
answers, verdicts and review decisions.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd.db.models import Campaign, Evaluation, FieldSession, LedgerTransaction, User
from egocrowd.pay import ledger
from egocrowd.pay.money import Money, fee_for

#: one payment per accepted session
payment_key = ledger.PaymentKey("field_session", "accepted")


def session_pay_cents(duration_s: float | None, hour_cents: int, max_hours: int) -> int:
    """What a session of ``duration_s`` seconds earns at ``hour_cents`` an hour, paid for at most
    ``max_hours`` hours, in minor units rounded up (Decimal: the duration's digits as the log gave
    them, never binary-rounded pay). 0 for no rate, no duration or a nonsense one."""
    if hour_cents <= 0 or max_hours <= 0 or duration_s is None:
        return 0
    seconds = Decimal(str(duration_s))
    if not seconds.is_finite() or seconds <= 0:
        return 0
    seconds = min(seconds, Decimal(max_hours * 3600))
    return int((seconds * hour_cents / 3600).to_integral_value(rounding=ROUND_CEILING))


def max_cost(evaluation: Evaluation, currency: str, fee_bps: int) -> Money:
    """The most one session can take from the budget: the capped hours' pay and the fee on it."""
    most = Money(max(evaluation.session_hour_cents, 0) * max(evaluation.session_max_hours, 0), currency)
    return most + fee_for(most, fee_bps) if most.minor else most


def pay_for_session(
    session: Session, row: FieldSession, actor: User | None, *, fee_bps: int = ledger.DEFAULT_FEE_BPS
) -> LedgerTransaction | None:
    """Pay the worker for one accepted session (idempotent by its key). None when it earns nothing,
    or when the budget cannot cover it (then owed: audited ``field_session.pay_owed``)."""
    if row.status != "accepted" or row.pay_cents <= 0:
        return None
    ev = session.get_one(Evaluation, row.evaluation_id)
    campaign = session.get_one(Campaign, ev.campaign_id)
    worker = session.get_one(User, row.worker_id)
    pay = Money(row.pay_cents, campaign.currency)
    return ledger.pay_or_owe(
        session,
        ledger.TransactionKind.session_work,
        campaign,
        worker,
        pay,
        fee_bps=fee_bps,
        idempotency_key=payment_key(row.id),
        reason=f"Field session {row.id} of campaign {campaign.id}: {pay}",
        actor=actor,
        refs={
            "field_session_id": row.id,
            "campaign_id": campaign.id,
            "pay_minor": pay.minor,
            "fee_bps": fee_bps,
        },
        owed=("field_session.pay_owed", row),
    )


def owed_sessions(session: Session, campaign_id: int) -> list[FieldSession]:
    """The campaign's accepted sessions that earn pay and have none posted yet, oldest first."""
    paid = sa.select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key == payment_key.sql(FieldSession.id))
    return list(
        session.scalars(
            sa.select(FieldSession)
            .join(Evaluation, Evaluation.id == FieldSession.evaluation_id)
            .where(
                Evaluation.campaign_id == campaign_id,
                FieldSession.status == "accepted",
                FieldSession.pay_cents > 0,
                ~paid.exists(),
            )
            .order_by(FieldSession.id)
        )
    )


def settle_owed(
    session: Session, campaign: Campaign, actor: User | None, *, fee_bps: int = ledger.DEFAULT_FEE_BPS
) -> int:
    """Pay owed sessions while the budget lasts (after a deposit). Returns how many."""
    return ledger.settle(
        owed_sessions(session, campaign.id), lambda row: pay_for_session(session, row, actor, fee_bps=fee_bps)
    )


__all__ = ["max_cost", "owed_sessions", "pay_for_session", "payment_key", "session_pay_cents", "settle_owed"]
