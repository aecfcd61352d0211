"""Appeals of reversed pay (issue #11, part 6; docs/pay.md "Reversals and appeals").

When an admin takes back a clip's pay (:func:`egocrowd.pay.reversals.reverse_clip_pay`), the worker
reads the reason and may appeal **once per reversal**, with a comment. Another look by an admin
decides it:

- **uphold**: nothing moves; the worker reads the admin's words (required);
- **overturn**: the ledger reverses the reversal (:func:`egocrowd.pay.ledger.reverse` of it, key
  ``reversal:<reversal id>``): the same accounts get back exactly what the reversal took, the pay
  from the campaign's budget to the worker (and the fee). Posting it twice posts once.

Why not the review queue's appeal (``labels.review.appeal``)? That one disputes a verdict about a
*clip* (a failed check, a rejection), is decided by reviewers or the lab, and an overturn accepts the
clip. A reversal is a decision about *money*, made by an admin, on a clip that stays accepted: its
appeal must be decided by an admin, and an overturn pays, it does not accept. Mixing the two would
let reviewers move money and would spend the clip's one review appeal. So reversal appeals live in
their own table (``pay_appeals``), decided once by a conditional UPDATE on ``state`` (two admins at
once: one wins, the other gets ``pay_appeal.already_decided``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from egocrowd import audit
from egocrowd.accounts import policy
from egocrowd.clock import db_now
from egocrowd.db.models import (
    Clip,
    LedgerAccount,
    LedgerAccountKind,
    LedgerEntry,
    LedgerTransaction,
    PayAppeal,
    User,
)
from egocrowd.errors import Conflict, InvalidInput, NotFound
from egocrowd.i18n import N_
from egocrowd.notifications import notify
from egocrowd.pay import ledger, rates
from egocrowd.pay.money import Money

COMMENT_MIN = 10
COMMENT_MAX = 2000
DECISIONS = ("uphold", "overturn")


def _payment_and_reversal(session: Session, clip_id: int) -> tuple[LedgerTransaction, LedgerTransaction] | None:
    payment = session.scalar(
        sa.select(LedgerTransaction).where(LedgerTransaction.idempotency_key == ledger.clip_payment_key(clip_id))
    )
    if payment is None:
        return None
    reversal = session.scalar(sa.select(LedgerTransaction).where(LedgerTransaction.reverses_id == payment.id))
    return None if reversal is None else (payment, reversal)


def appeal(session: Session, worker: User, clip_id: int, comment: str) -> PayAppeal:
    """The clip's worker disputes the reversal of its pay, once, saying why (10 to 2,000 characters).
    Audited ``pay.appealed``."""
    clip = session.get(Clip, clip_id)
    if clip is None or clip.worker_id != worker.id:
        raise NotFound(f"No clip {clip_id}.", code="clip.not_found")
    found = _payment_and_reversal(session, clip.id)
    if found is None:
        raise Conflict(
            f"The pay for clip {clip.id} was not taken back: there is nothing to appeal.", code="pay.not_reversed"
        )
    _, reversal = found
    text = (comment or "").strip()
    if len(text) < COMMENT_MIN:
        raise InvalidInput(
            f"Say in a few words (at least {COMMENT_MIN} characters) why the pay should stand.",
            code="pay_appeal.comment_required",
        )
    if len(text) > COMMENT_MAX:
        raise InvalidInput(f"Keep it under {COMMENT_MAX} characters.", code="pay_appeal.comment_too_long")
    already = Conflict("You have appealed this already; a reversal is appealed once.", code="pay_appeal.already_made")
    if session.scalar(sa.select(PayAppeal.id).where(PayAppeal.reversal_id == reversal.id)) is not None:
        raise already
    row = PayAppeal(reversal_id=reversal.id, clip_id=clip.id, user_id=worker.id, comment=text, state="open")
    try:
        with session.begin_nested():  # the same worker's second click racing the first
            session.add(row)
    except IntegrityError:
        raise already from None
    audit.record(session, worker, "pay.appealed", row, {"clip_id": clip.id, "reversal": reversal.id, "comment": text})
    return row


def decide(session: Session, admin: User, appeal_id: int, decision: str, comment: str = "") -> PayAppeal:
    """An admin closes an open appeal: ``uphold`` (a comment the worker reads is required) or
    ``overturn`` (the pay comes back: the reversal is reversed, key ``reversal:<id>``). A campaign
    budget that no longer holds the pay refuses with ``ledger.insufficient_funds`` and nothing is
    decided. Audited ``pay_appeal.decided``; the worker is told."""
    policy.require(admin, "pay.reverse")
    row = session.get(PayAppeal, appeal_id)
    if row is None:
        raise NotFound(f"No pay appeal {appeal_id}.", code="pay_appeal.not_found")
    if decision not in DECISIONS:
        raise InvalidInput("Decide with uphold or overturn.", code="pay_appeal.bad_decision")
    words = (comment or "").strip()
    if len(words) > COMMENT_MAX:
        raise InvalidInput(f"Keep it under {COMMENT_MAX} characters.", code="pay_appeal.comment_too_long")
    if decision == "uphold" and not words:
        raise InvalidInput("Tell the worker why the reversal stands.", code="pay_appeal.comment_required")
    new_state = "upheld" if decision == "uphold" else "overturned"
    done = session.execute(
        sa.update(PayAppeal)
        .where(PayAppeal.id == row.id, PayAppeal.state == "open")
        .values(state=new_state, decided_by=admin.id, decided_at=db_now(session), decision_comment=words),
        execution_options={"synchronize_session": False},
    )
    if getattr(done, "rowcount", 0) != 1:
        raise Conflict("Someone else decided this appeal already.", code="pay_appeal.already_decided")
    session.refresh(row)
    repay = None
    if decision == "overturn":
        repay = ledger.reverse(
            session, row.reversal_id, f"Appeal {row.id} on clip {row.clip_id} granted: the pay stands", admin
        )
        row.repay_transaction_id = repay.id
        # the top-ups taken back with the pay come back with it
        for t in rates.top_up_payments(session, row.clip_id):
            taken = session.scalar(sa.select(LedgerTransaction).where(LedgerTransaction.reverses_id == t.id))
            if taken is not None:
                ledger.reverse(
                    session, taken.id, f"Appeal {row.id} on clip {row.clip_id} granted: the top-up stands", admin
                )
    audit.record(
        session,
        admin,
        "pay_appeal.decided",
        row,
        {"decision": decision, "comment": words, "clip_id": row.clip_id, "repay": repay.id if repay else None},
    )
    note = N_("The admin wrote: {words}") if words else ""
    if decision == "uphold":
        subject = N_("Appeal on the pay for clip {clip}: not granted")
        body = [N_("An admin looked at your appeal and the reversal stands."), note]
    else:
        subject = N_("Appeal on the pay for clip {clip}: granted")
        body = [N_("An admin agreed with your appeal: the pay for the clip is back in your balance."), note]
    notify(
        session,
        row.user_id,
        f"pay_appeal.{new_state}",
        subject,
        body,
        link="/earnings/payouts",
        params={"clip": row.clip_id, "words": words or ""},
    )
    return row


@dataclass(frozen=True)
class ReversalRow:
    """One reversed clip payment, with its appeal if any (the admin's page; a worker's own list)."""

    reversal_id: int
    clip_id: int
    worker_id: int
    worker_name: str
    amount: Money  # what was taken from the worker
    reason: str
    reversed_at: datetime
    reversed_by: int | None
    allow_negative: bool
    appeal: PayAppeal | None


def _reversals(session: Session, *, worker_id: int | None, state: str | None, limit: int) -> list[ReversalRow]:
    payment = aliased(LedgerTransaction)
    rev = aliased(LedgerTransaction)
    q = (
        sa.select(rev, payment, Clip, User, PayAppeal)
        .join(payment, payment.id == rev.reverses_id)
        .join(Clip, payment.idempotency_key == ledger.clip_payment_key.sql(Clip.id))
        .join(User, User.id == Clip.worker_id)
        .outerjoin(PayAppeal, PayAppeal.reversal_id == rev.id)
        .order_by(rev.id.desc())
        .limit(max(1, min(limit, 1000)))
    )
    if worker_id is not None:
        q = q.where(Clip.worker_id == worker_id)
    if state == "open":
        q = q.where(PayAppeal.state == "open")
    elif state == "appealed":
        q = q.where(PayAppeal.id.is_not(None))
    rows = session.execute(q).all()
    # what each reversal took from the worker's own account (the fee's leg went elsewhere)
    taken = {
        t: (int(amt), cur)
        for t, amt, cur in session.execute(
            sa.select(LedgerEntry.transaction_id, LedgerEntry.amount, LedgerAccount.currency)
            .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
            .where(
                LedgerEntry.transaction_id.in_([r[0].id for r in rows]),
                LedgerAccount.kind == LedgerAccountKind.worker_earnings,
            )
        )
    }
    out = []
    for rv, _pay, clip, user, app in rows:
        amount, cur = taken.get(rv.id, (0, clip.campaign.currency))
        out.append(
            ReversalRow(
                rv.id,
                clip.id,
                user.id,
                user.display_name or f"worker {user.id}",
                Money(-amount, cur),
                rv.reason,
                rv.at,
                rv.actor_id,
                rv.allow_negative,
                app,
            )
        )
    return out


def list_reversals(session: Session, admin: User, *, state: str | None = None, limit: int = 200) -> list[ReversalRow]:
    """Reversed clip payments, newest first, with their appeals (``state``: "open" only open appeals,
    "appealed" any appeal, None everything). Admins."""
    policy.require(admin, "pay.reverse")
    return _reversals(session, worker_id=None, state=state, limit=limit)


def my_reversals(session: Session, worker: User, *, limit: int = 200) -> list[ReversalRow]:
    """The worker's own reversed clip payments, with their appeals: what they may appeal."""
    return _reversals(session, worker_id=worker.id, state=None, limit=limit)


def get_appeal(session: Session, user: User, appeal_id: int) -> PayAppeal:
    """An appeal its worker or an admin may read; NotFound for anyone else."""
    row = session.get(PayAppeal, appeal_id)
    if row is None or not (row.user_id == user.id or policy.can(user, "pay.reverse")):
        raise NotFound(f"No pay appeal {appeal_id}.", code="pay_appeal.not_found")
    return row


__all__ = [
    "COMMENT_MIN",
    "DECISIONS",
    "ReversalRow",
    "appeal",
    "decide",
    "get_appeal",
    "list_reversals",
    "my_reversals",
]
