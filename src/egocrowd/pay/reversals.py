"""Taking back a clip's pay (issue #11, part 6; docs/pay.md): fraud found after approval.

Only an admin reverses, always with a reason the worker reads (on their earnings page and in a
notice). The reversal is the ledger's (:func:`egocrowd.pay.ledger.reverse`: the opposite entries,
linked, at most once), so reversing twice changes nothing; the money goes back to the campaign's
budget. A reversal that would take the worker's balance below zero (they were paid out already)
needs the admin to say so (``allow_negative``), recorded on the transaction and in the audit log.
The clip's top-ups (pay.rates) are reversed with it. The clip itself stays ``accepted``: what
happens to its data is the review room's decision.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.accounts import policy
from egocrowd.db.models import Clip, LedgerTransaction, User
from egocrowd.errors import Conflict, InvalidInput, NotFound
from egocrowd.i18n import N_
from egocrowd.notifications import notify
from egocrowd.pay import ledger, rates

REASON_MIN = 10


def reverse_clip_pay(
    session: Session, actor: User, clip_id: int, reason: str, *, allow_negative: bool = False
) -> LedgerTransaction:
    """Reverse the pay of clip ``clip_id`` (admins). Audited ``clip.pay_reversed``; the worker is told
    why. Asking again returns the first reversal and tells nobody twice."""
    policy.require(actor, "pay.reverse")
    reason = (reason or "").strip()
    if len(reason) < REASON_MIN or len(reason) > 500:
        raise InvalidInput(
            f"Say why, in {REASON_MIN} to 500 characters: the worker reads it.", code="pay.reason_required"
        )
    # the clip's row lock serializes two admins reversing at once (so only one tells the worker); a
    # clip before its ledger accounts is the order accepting (and paying for) it takes too
    clip = session.get(Clip, clip_id, with_for_update=True)
    if clip is None:
        raise NotFound(f"No clip {clip_id}.", code="clip.not_found")
    payment = session.scalar(
        sa.select(LedgerTransaction).where(LedgerTransaction.idempotency_key == ledger.clip_payment_key(clip.id))
    )
    if payment is None:
        raise Conflict(f"Clip {clip.id} was not paid: there is nothing to take back.", code="pay.not_paid")
    already = session.scalar(sa.select(LedgerTransaction).where(LedgerTransaction.reverses_id == payment.id))
    if already is not None:
        return already
    reversal = ledger.reverse(session, payment.id, reason, actor, allow_negative=allow_negative)
    # the clip's top-ups were paid because its pay stood: they go with it
    top_ups = [
        ledger.reverse(session, t.id, reason, actor, allow_negative=allow_negative).id
        for t in rates.top_up_payments(session, clip.id)
    ]
    audit.record(
        session,
        actor,
        "clip.pay_reversed",
        clip,
        {
            "payment": payment.id,
            "reversal": reversal.id,
            "top_up_reversals": top_ups,
            "reason": reason,
            "allow_negative": allow_negative,
        },
    )
    notify(
        session,
        clip.worker_id,
        "pay.reversed",
        N_("The pay for clip {clip} was taken back"),
        [N_("An admin took back the pay for your clip for “{title}”."), N_("The reason: {reason}")],
        link="/earnings",
        params={"clip": clip.id, "title": clip.campaign.title, "reason": reason},
    )
    return reversal


__all__ = ["REASON_MIN", "reverse_clip_pay"]
