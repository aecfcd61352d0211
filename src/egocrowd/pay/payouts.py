"""Getting paid (issue #11, part 5; docs/pay.md "Getting paid" and "Payout batches").

**Payout methods.** A worker says where their money goes: a provider (:mod:`egocrowd.pay.providers`),
an account reference there (checked by the provider), a currency, and which method is their default
for that currency. Removing a method keeps its row (payouts point at it). Each change is audited with
the reference masked (the audit log is append-only and outlives an account; the table holds the full
reference).

**Batches.** An admin (or the ``egocrowd pay batch`` command) makes a batch for one provider and
one currency: every worker whose default method for that currency is with that provider, whose
earnings balance is at least the minimum and who is in no other unfinished batch of that currency,
gets one payout of their whole balance (rounded down to what the provider can send). Each payout moves
the money out of their earnings into *payouts in transit* (a ledger posting, key
``payout:<id>:transit``) in the transaction that makes the batch. Then the batch is

- **exported**: the provider's file is written and stored as a blob (``export_sha256``), so the
  same bytes can be downloaded again;
- **sent**: the admin records the provider's reference; each payout moves from in transit to
  *paid out* (``payout:<id>:sent``) and the worker is told;
- or **cancelled** before it is sent: each payout goes back to the worker's earnings
  (``payout:<id>:cancelled``).

Every status change is one conditional UPDATE (``WHERE status IN (...)``), so two admins exporting,
sending or cancelling one batch at once get one success and one ``payout.batch_conflict``. Each
posting's key makes a retry post nothing more, and postings and status change share one database
transaction, so a crash between them loses nothing. A worker's money is therefore always in exactly
one of three of their accounts: earnings, in transit, paid out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.accounts import policy
from egocrowd.blobs import Blobs
from egocrowd.clock import db_now
from egocrowd.db.models import (
    LedgerAccount,
    LedgerAccountKind,
    LedgerEntry,
    LedgerTransaction,
    LedgerTransactionKind,
    Payout,
    PayoutBatch,
    PayoutBatchStatus,
    PayoutMethod,
    User,
)
from egocrowd.errors import Conflict, InvalidInput, NotFound
from egocrowd.i18n import N_
from egocrowd.notifications import notify
from egocrowd.pay import ledger
from egocrowd.pay.money import Money, minor_digits
from egocrowd.pay.providers import (
    PAYOUT_PROVIDERS,
    BatchInfo,
    ExportFile,
    PayoutLine,
    can_send,
    get_provider,
)

#: batches whose money is on its way: a worker in one of these is put in no other of that currency
UNFINISHED = (PayoutBatchStatus.open, PayoutBatchStatus.exported)
MAX_METHODS = 10  # active methods per worker
REFERENCE_MAX = 200


# ---------------------------------------------------------------- keys and accounts


def transit_key(payout_id: int) -> str:
    return f"payout:{payout_id}:transit"


def sent_key(payout_id: int) -> str:
    return f"payout:{payout_id}:sent"


def cancelled_key(payout_id: int) -> str:
    return f"payout:{payout_id}:cancelled"


def transit_account(session: Session, user: User, currency: str) -> LedgerAccount:
    return ledger.account(session, LedgerAccountKind.payouts_in_transit, currency, user=user)


def paid_out_account(session: Session, user: User, currency: str) -> LedgerAccount:
    return ledger.account(session, LedgerAccountKind.paid_out, currency, user=user)


def mask(ref: str) -> str:
    """An account reference with most of it hidden, for the audit log and lists: ``a***@example.com``,
    ``+2547*****678``, ``12****89``."""
    if "@" in ref:
        local, _, domain = ref.partition("@")
        return f"{local[:1]}***@{domain}"
    keep = 4 if ref.startswith("+") else 2
    tail = 3 if len(ref) > 8 else 2
    return ref[:keep] + "*" * max(len(ref) - keep - tail, 1) + ref[-tail:]


# ---------------------------------------------------------------- payout methods


def _clean_currency(currency: str) -> str:
    cur = (currency or "").strip().upper()
    minor_digits(cur)  # money.unknown_currency
    return cur


def _provider_for(name: str, currency: str) -> Any:
    provider = get_provider((name or "").strip().lower())
    if provider.currencies is not None and currency not in provider.currencies:
        raise InvalidInput(
            f"{provider.title} does not pay in {currency} here (it pays {', '.join(sorted(provider.currencies))}).",
            code="payout.currency_unsupported",
            currency=currency,
        )
    return provider


def list_methods(session: Session, user: User) -> list[PayoutMethod]:
    """The worker's payout methods in use (removed ones are kept, not listed), defaults first."""
    policy.require(user, "pay.methods")
    return list(
        session.scalars(
            sa.select(PayoutMethod)
            .where(PayoutMethod.user_id == user.id, PayoutMethod.removed_at.is_(None))
            .order_by(PayoutMethod.currency, PayoutMethod.is_default.desc(), PayoutMethod.id)
        )
    )


def _lock_user(session: Session, user_id: int) -> None:
    """The worker's ``users`` row, first in the one lock order: their method changes and a batch taking
    them serialize (SQLite serializes every write transaction anyway)."""
    session.execute(sa.select(User.id).where(User.id == user_id).with_for_update(key_share=True))


def _set_default(session: Session, method: PayoutMethod) -> None:
    session.execute(
        sa.update(PayoutMethod)
        .where(
            PayoutMethod.user_id == method.user_id,
            PayoutMethod.currency == method.currency,
            PayoutMethod.id != method.id,
            PayoutMethod.is_default.is_(True),
        )
        .values(is_default=False),
        execution_options={"synchronize_session": False},
    )
    method.is_default = True


def add_method(
    session: Session, user: User, *, provider: str, account_ref: str, currency: str, make_default: bool = False
) -> PayoutMethod:
    """Add a payout method for ``user`` (workers). The first method of a currency is its default.
    Audited ``payout_method.added`` (the reference masked)."""
    policy.require(user, "pay.methods")
    cur = _clean_currency(currency)
    name = (provider or "").strip().lower()
    impl = _provider_for(name, cur)
    ref = impl.validate_account(account_ref)
    _lock_user(session, user.id)
    active = list_methods(session, user)
    if len(active) >= MAX_METHODS:
        raise Conflict(f"You have {MAX_METHODS} payout methods; remove one first.", code="payout.too_many_methods")
    if any(m.provider == name and m.account_ref == ref and m.currency == cur for m in active):
        raise Conflict("You have this payout method already.", code="payout.method_exists")
    method = PayoutMethod(user_id=user.id, provider=name, account_ref=ref, currency=cur, is_default=False)
    session.add(method)
    session.flush()
    if make_default or not any(m.currency == cur and m.is_default for m in active):
        _set_default(session, method)
    audit.record(
        session,
        user,
        "payout_method.added",
        method,
        {"provider": name, "currency": cur, "account": mask(ref), "default": method.is_default},
    )
    return method


def _own_method(session: Session, user: User, method_id: int) -> PayoutMethod:
    policy.require(user, "pay.methods")
    method = session.get(PayoutMethod, method_id)
    if method is None or method.user_id != user.id or method.removed_at is not None:
        raise NotFound(f"No payout method {method_id}.", code="payout.method_not_found")
    return method


def make_default(session: Session, user: User, method_id: int) -> PayoutMethod:
    """Make one of the worker's methods their default for its currency. Audited."""
    _lock_user(session, user.id)
    method = _own_method(session, user, method_id)
    if not method.is_default:
        _set_default(session, method)
        audit.record(session, user, "payout_method.made_default", method, {"currency": method.currency})
    return method


def remove_method(session: Session, user: User, method_id: int) -> PayoutMethod:
    """Stop using a method (its row stays: payouts point at it). Payouts already in a batch still go
    to it. Another method of the same currency, if any, becomes the default. Audited."""
    _lock_user(session, user.id)
    method = _own_method(session, user, method_id)
    was_default = method.is_default
    method.removed_at = db_now(session)
    method.is_default = False
    session.flush()
    successor = None
    if was_default:
        successor = session.scalar(
            sa.select(PayoutMethod)
            .where(
                PayoutMethod.user_id == user.id,
                PayoutMethod.currency == method.currency,
                PayoutMethod.removed_at.is_(None),
            )
            .order_by(PayoutMethod.id.desc())
            .limit(1)
        )
        if successor is not None:
            _set_default(session, successor)
    audit.record(
        session,
        user,
        "payout_method.removed",
        method,
        {"account": mask(method.account_ref), "new_default": successor.id if successor else None},
    )
    return method


def forget_methods(session: Session, user: User) -> int:
    """For a deleted account (``privacy.delete_account`` is meant to call it): every method of
    ``user`` is removed and its reference replaced by its masked form, except the methods a payout in
    an unfinished batch still goes to (kept until that batch is sent or cancelled). Returns how many
    were forgotten. Audited ``payout_method.forgotten``."""
    pending = (
        sa.select(Payout.method_id)
        .join(PayoutBatch, PayoutBatch.id == Payout.batch_id)
        .where(Payout.user_id == user.id, PayoutBatch.status.in_(UNFINISHED))
    )
    methods = list(
        session.scalars(
            sa.select(PayoutMethod).where(
                PayoutMethod.user_id == user.id,
                PayoutMethod.id.not_in(pending),
                ~PayoutMethod.account_ref.contains("*"),
            )
        )
    )
    now = db_now(session)
    for m in methods:
        m.account_ref, m.is_default = mask(m.account_ref), False
        m.removed_at = m.removed_at or now
    if methods:
        audit.record(session, user, "payout_method.forgotten", user, {"methods": [m.id for m in methods]})
    return len(methods)


# ---------------------------------------------------------------- batches


def _require_admin(actor: User | None) -> None:
    """``None`` is the command line (an operator with the database's keys); anyone else must be an admin."""
    if actor is not None:
        policy.require(actor, "pay.payouts")


def _batch(session: Session, batch_id: int) -> PayoutBatch:
    batch = session.get(PayoutBatch, batch_id)
    if batch is None:
        raise NotFound(f"No payout batch {batch_id}.", code="payout.batch_not_found")
    return batch


def batch_payouts(session: Session, batch_id: int) -> list[Payout]:
    return list(session.scalars(sa.select(Payout).where(Payout.batch_id == batch_id).order_by(Payout.id)))


@dataclass(frozen=True)
class Candidate:
    user_id: int
    method_id: int
    balance: Money


def candidates(session: Session, provider: str, currency: str, minimum: Money) -> list[Candidate]:
    """Who a new batch would pay: default method with ``provider`` in ``currency``, earnings balance
    ≥ ``minimum`` (and > 0), and in no unfinished batch of ``currency``. Oldest account first."""
    busy = (
        sa.select(Payout.user_id)
        .join(PayoutBatch, PayoutBatch.id == Payout.batch_id)
        .where(PayoutBatch.currency == currency, PayoutBatch.status.in_(UNFINISHED))
    )
    E = LedgerEntry
    sums = (
        sa.select(E.account_id, sa.func.sum(E.amount).label("total"))
        .join(LedgerAccount, LedgerAccount.id == E.account_id)
        .where(LedgerAccount.kind == LedgerAccountKind.worker_earnings, LedgerAccount.currency == currency)
        .group_by(E.account_id)
        .subquery()
    )
    rows = session.execute(
        sa.select(PayoutMethod.user_id, PayoutMethod.id, sums.c.total)
        .join(
            LedgerAccount,
            sa.and_(
                LedgerAccount.user_id == PayoutMethod.user_id,
                LedgerAccount.kind == LedgerAccountKind.worker_earnings,
                LedgerAccount.currency == currency,
            ),
        )
        .join(sums, sums.c.account_id == LedgerAccount.id)
        .where(
            PayoutMethod.provider == provider,
            PayoutMethod.currency == currency,
            PayoutMethod.is_default.is_(True),
            PayoutMethod.removed_at.is_(None),
            PayoutMethod.user_id.not_in(busy),
            sums.c.total >= max(minimum.minor, 1),
        )
        .order_by(PayoutMethod.user_id)
    ).all()
    return [Candidate(int(u), int(m), Money(int(t), currency)) for u, m, t in rows]


def create_batch(
    session: Session,
    actor: User | None,
    *,
    provider: str,
    currency: str,
    minimum: Money | None = None,
    default_minimum_minor: int = 0,
) -> PayoutBatch:
    """Make a batch of payouts for ``provider`` in ``currency`` (see the module's docstring). The
    minimum is ``minimum`` (in the batch's currency) or ``default_minimum_minor`` (the setting
    ``payout_minimum_minor``). A batch with nobody to pay is refused (``payout.nothing_to_pay``).
    Audited ``payout_batch.created``; each payout's posting ``ledger.posted``."""
    _require_admin(actor)
    cur = _clean_currency(currency)
    name = (provider or "").strip().lower()
    impl = _provider_for(name, cur)
    if minimum is not None and minimum.currency != cur:
        raise InvalidInput(
            f"The minimum is in {minimum.currency}; this batch pays {cur}.", code="ledger.currency_mismatch"
        )
    floor = minimum if minimum is not None else Money(default_minimum_minor, cur)
    if floor.minor < 0:
        raise InvalidInput("The minimum cannot be negative.", code="money.bad_amount")
    step = impl.step(cur)
    # the workers' rows first, in id order (the one lock order), then the check again under the locks
    found = candidates(session, name, cur, floor)
    if found:
        session.execute(
            sa.select(User.id)
            .where(User.id.in_([c.user_id for c in found]))
            .order_by(User.id)
            .with_for_update(key_share=True)
        )
        found = candidates(session, name, cur, floor)
    due = [(c, c.balance.minor - c.balance.minor % step) for c in found]
    due = [(c, amount) for c, amount in due if amount > 0 and amount >= floor.minor]
    if not due:
        raise Conflict(
            f"Nobody is due a payout through {impl.title} in {cur} (default method, balance of at least "
            f"{floor}, in no unfinished batch).",
            code="payout.nothing_to_pay",
        )
    # a provider takes so many rows a file (PayPal 5,000, Wise 1,000): the rest wait for the next batch
    limit = getattr(impl, "max_rows", None)
    if limit is not None:
        due = due[:limit]
    batch = PayoutBatch(provider=name, currency=cur, minimum_minor=floor.minor, created_by=actor.id if actor else None)
    session.add(batch)
    session.flush()
    total = 0
    for cand, amount in due:
        worker = session.get(User, cand.user_id)
        assert worker is not None
        payout = Payout(batch_id=batch.id, user_id=worker.id, method_id=cand.method_id, amount=amount, currency=cur)
        session.add(payout)
        session.flush()
        money = Money(amount, cur)
        txn = ledger.post(
            session,
            ledger.TransactionKind.payout,
            [
                ledger.Leg(ledger.worker_account(session, worker, cur), -money),
                ledger.Leg(transit_account(session, worker, cur), money),
            ],
            idempotency_key=transit_key(payout.id),
            reason=f"Payout {payout.id} in batch {batch.id} ({impl.title}): {money}",
            actor=actor,
            refs={"payout_id": payout.id, "batch_id": batch.id, "step": "transit"},
        )
        payout.transaction_id = txn.id
        total += amount
    paid = len(due)
    audit.record(
        session,
        actor,
        "payout_batch.created",
        batch.id,
        {
            "provider": name,
            "currency": cur,
            "minimum": floor.format(),
            "payouts": paid,
            "total": Money(total, cur).format(),
        },
        entity_type="payout_batch",
    )
    return batch


def _move(
    session: Session, batch_id: int, from_: Sequence[PayoutBatchStatus], to: PayoutBatchStatus, **values: Any
) -> None:
    """The batch's one status change: a conditional UPDATE; 0 rows means someone else moved it first."""
    result = session.execute(
        sa.update(PayoutBatch)
        .where(PayoutBatch.id == batch_id, PayoutBatch.status.in_(list(from_)))
        .values(status=to, **values),
        execution_options={"synchronize_session": False},
    )
    if getattr(result, "rowcount", 0) != 1:
        current = session.scalar(sa.select(PayoutBatch.status).where(PayoutBatch.id == batch_id))
        now = current.value if current is not None else "gone"
        raise Conflict(
            f"Batch {batch_id} is {now}: it cannot become {to.value} (someone else may have just done it).",
            code="payout.batch_conflict",
            batch_status=now,
        )
    batch = session.get(PayoutBatch, batch_id)
    if batch is not None:
        session.refresh(batch)


def lines_for(session: Session, batch: PayoutBatch) -> list[PayoutLine]:
    rows = session.execute(
        sa.select(Payout, PayoutMethod, User)
        .join(PayoutMethod, PayoutMethod.id == Payout.method_id)
        .join(User, User.id == Payout.user_id)
        .where(Payout.batch_id == batch.id)
        .order_by(Payout.id)
    ).all()
    return [
        PayoutLine(p.id, u.id, u.display_name or f"worker {u.id}", m.account_ref, Money(p.amount, p.currency))
        for p, m, u in rows
    ]


def _info(batch: PayoutBatch) -> BatchInfo:
    return BatchInfo(batch.id, batch.provider, batch.currency)


def export_batch(session: Session, actor: User | None, batch_id: int, blobs: Blobs) -> PayoutBatch:
    """Write the provider's file for an open batch, store it (a blob: ``export_sha256``) and mark the
    batch exported. Audited ``payout_batch.exported``."""
    _require_admin(actor)
    batch = _batch(session, batch_id)
    if batch.status is not PayoutBatchStatus.open:
        raise Conflict(
            f"Batch {batch.id} is {batch.status.value}: only an open batch is exported.",
            code="payout.batch_conflict",
            batch_status=batch.status.value,
        )
    impl = get_provider(batch.provider)
    file = impl.export(_info(batch), lines_for(session, batch))
    ref = blobs.put_bytes(file.data)  # before the status: an unreferenced blob is swept, never a lost file
    _move(
        session,
        batch.id,
        [PayoutBatchStatus.open],
        PayoutBatchStatus.exported,
        exported_at=db_now(session),
        export_sha256=ref.sha256,
    )
    audit.record(
        session,
        actor,
        "payout_batch.exported",
        batch.id,
        {"sha256": ref.sha256, "size": len(file.data), "file": file.filename},
        entity_type="payout_batch",
    )
    return batch


def export_file(session: Session, actor: User | None, batch_id: int, blobs: Blobs) -> ExportFile:
    """The batch's exported file again: the very bytes stored when it was exported."""
    _require_admin(actor)
    batch = _batch(session, batch_id)
    if batch.export_sha256 is None:
        raise Conflict(f"Batch {batch.id} has not been exported yet.", code="payout.not_exported")
    impl = get_provider(batch.provider)
    with blobs.open(batch.export_sha256) as f:
        data = f.read()
    name = impl.export(_info(batch), []).filename
    return ExportFile(data, "text/csv", name)


def _clean_reference(reference: str) -> str:
    text = (reference or "").strip()
    if not text or len(text) > REFERENCE_MAX or any(ord(ch) < 32 for ch in text):
        raise InvalidInput(
            f"Give the provider's reference for this batch (1 to {REFERENCE_MAX} characters).",
            code="payout.reference_required",
        )
    return text


def _settle(session: Session, actor: User | None, batch: PayoutBatch, references: dict[int, str]) -> None:
    """Post every payout of a batch just marked sent: in transit → paid out, and tell each worker."""
    impl = get_provider(batch.provider)
    for payout in batch_payouts(session, batch.id):
        worker, money, txn = _out_of_transit(
            session,
            actor,
            payout,
            paid_out_account,
            step="sent",
            key=sent_key(payout.id),
            reason=f"Payout {payout.id} sent by {impl.title} (batch {batch.id}, reference {batch.provider_reference})",
        )
        payout.sent_transaction_id = txn.id
        if payout.id in references:
            payout.provider_reference = references[payout.id][:REFERENCE_MAX]
        notify(
            session,
            worker.id,
            "payout.sent",
            N_("{money} is on its way to you"),
            N_("We sent {money} to your {provider} account ({account})."),
            link="/earnings/payouts",
            params={"money": money, "provider": impl.title, "account": mask(_method_ref(session, payout))},
        )


def _out_of_transit(
    session: Session,
    actor: User | None,
    payout: Payout,
    to_account: Callable[[Session, User, str], LedgerAccount],
    *,
    step: str,
    key: str,
    reason: str,
) -> tuple[User, Money, LedgerTransaction]:
    """Move one payout's money out of transit: to paid out (sent) or back to earnings (cancelled)."""
    worker = session.get(User, payout.user_id)
    assert worker is not None
    money = Money(payout.amount, payout.currency)
    txn = ledger.post(
        session,
        ledger.TransactionKind.payout,
        [
            ledger.Leg(transit_account(session, worker, payout.currency), -money),
            ledger.Leg(to_account(session, worker, payout.currency), money),
        ],
        idempotency_key=key,
        reason=reason,
        actor=actor,
        refs={"payout_id": payout.id, "batch_id": payout.batch_id, "step": step},
    )
    return worker, money, txn


def _method_ref(session: Session, payout: Payout) -> str:
    method = session.get(PayoutMethod, payout.method_id)
    return method.account_ref if method is not None else ""


def mark_sent(session: Session, actor: User | None, batch_id: int, reference: str) -> PayoutBatch:
    """Record that the provider took an exported batch (its reference for it): every payout becomes
    paid out, each worker is told. Audited ``payout_batch.sent``."""
    _require_admin(actor)
    ref = _clean_reference(reference)
    batch = _batch(session, batch_id)
    _move(
        session,
        batch.id,
        [PayoutBatchStatus.exported],
        PayoutBatchStatus.sent,
        sent_at=db_now(session),
        sent_by=actor.id if actor else None,
        provider_reference=ref,
    )
    _settle(session, actor, batch, {})
    audit.record(session, actor, "payout_batch.sent", batch.id, {"reference": ref}, entity_type="payout_batch")
    return batch


def send_batch(session: Session, actor: User | None, batch_id: int) -> PayoutBatch:
    """Pay an open or exported batch through its provider's API (providers with ``send``). The status
    moves first (so a second admin gets ``payout.batch_conflict`` and the provider is asked once);
    if the provider fails, the whole transaction rolls back and the batch is as it was."""
    _require_admin(actor)
    batch = _batch(session, batch_id)
    impl = get_provider(batch.provider)
    if not can_send(impl):
        raise Conflict(
            f"{impl.title} has no API here: export the file, upload it, then mark the batch sent.",
            code="payout.cannot_send",
        )
    _move(
        session,
        batch.id,
        UNFINISHED,
        PayoutBatchStatus.sent,
        sent_at=db_now(session),
        sent_by=actor.id if actor else None,
    )
    result = impl.send(_info(batch), lines_for(session, batch))
    batch.provider_reference = _clean_reference(result.reference)
    session.flush()
    _settle(session, actor, batch, dict(result.payout_references))
    audit.record(
        session,
        actor,
        "payout_batch.sent",
        batch.id,
        {"reference": batch.provider_reference, "via": "api"},
        entity_type="payout_batch",
    )
    return batch


def cancel_batch(session: Session, actor: User | None, batch_id: int, reason: str = "") -> PayoutBatch:
    """Give up an open or exported batch before it is sent: every payout's money goes back to its
    worker's earnings. Audited ``payout_batch.cancelled``."""
    _require_admin(actor)
    why = (reason or "").strip()[:500] or "cancelled by an admin"
    batch = _batch(session, batch_id)
    _move(session, batch.id, UNFINISHED, PayoutBatchStatus.cancelled)
    for payout in batch_payouts(session, batch.id):
        worker, money, txn = _out_of_transit(
            session,
            actor,
            payout,
            ledger.worker_account,
            step="cancelled",
            key=cancelled_key(payout.id),
            reason=f"Payout {payout.id} cancelled with batch {batch.id}: {why}"[:500],
        )
        payout.sent_transaction_id = txn.id
        notify(
            session,
            worker.id,
            "payout.cancelled",
            N_("Your payout of {money} was called off"),
            N_("The payout batch was cancelled; {money} is back in your balance for the next one."),
            link="/earnings/payouts",
            params={"money": money},
        )
    audit.record(session, actor, "payout_batch.cancelled", batch.id, {"reason": why}, entity_type="payout_batch")
    return batch


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class BatchSummary:
    batch: PayoutBatch
    payouts: int
    total: Money


def list_batches(
    session: Session, actor: User | None, *, status: PayoutBatchStatus | None = None, limit: int = 100
) -> list[BatchSummary]:
    """Batches, newest first, with how many payouts and how much each holds."""
    _require_admin(actor)
    q = (
        sa.select(PayoutBatch, sa.func.count(Payout.id), sa.func.coalesce(sa.func.sum(Payout.amount), 0))
        .outerjoin(Payout, Payout.batch_id == PayoutBatch.id)
        .group_by(PayoutBatch.id)
        .order_by(PayoutBatch.id.desc())
        .limit(max(1, min(limit, 1000)))
    )
    if status is not None:
        q = q.where(PayoutBatch.status == status)
    return [BatchSummary(b, int(n), Money(int(t), b.currency)) for b, n, t in session.execute(q).all()]


@dataclass(frozen=True)
class BatchLine:
    payout: Payout
    worker_name: str
    provider: str
    account: str  # masked


def get_batch(session: Session, actor: User | None, batch_id: int) -> tuple[PayoutBatch, list[BatchLine]]:
    _require_admin(actor)
    batch = _batch(session, batch_id)
    rows = session.execute(
        sa.select(Payout, PayoutMethod, User)
        .join(PayoutMethod, PayoutMethod.id == Payout.method_id)
        .join(User, User.id == Payout.user_id)
        .where(Payout.batch_id == batch.id)
        .order_by(Payout.id)
    ).all()
    return batch, [
        BatchLine(p, u.display_name or f"worker {u.id}", m.provider, mask(m.account_ref)) for p, m, u in rows
    ]


@dataclass(frozen=True)
class MyPayout:
    payout_id: int
    batch_id: int
    amount: Money
    provider: str
    account: str  # masked
    state: str  # "in transit" | "sent" | "cancelled"
    created_at: datetime
    sent_at: datetime | None
    reference: str | None


_STATE_WORDS = {
    PayoutBatchStatus.open: "in transit",
    PayoutBatchStatus.exported: "in transit",
    PayoutBatchStatus.sent: "sent",
    PayoutBatchStatus.cancelled: "cancelled",
}


def my_payouts(session: Session, user: User, *, limit: int = 200) -> list[MyPayout]:
    """The worker's payouts, newest first (any signed-in person may read their own: nobody else's)."""
    rows = session.execute(
        sa.select(Payout, PayoutBatch, PayoutMethod)
        .join(PayoutBatch, PayoutBatch.id == Payout.batch_id)
        .join(PayoutMethod, PayoutMethod.id == Payout.method_id)
        .where(Payout.user_id == user.id)
        .order_by(Payout.id.desc())
        .limit(max(1, min(limit, 1000)))
    ).all()
    return [
        MyPayout(
            p.id,
            b.id,
            Money(p.amount, p.currency),
            m.provider,
            mask(m.account_ref),
            _STATE_WORDS[b.status],
            p.created_at,
            b.sent_at,
            p.provider_reference or (b.provider_reference if b.status is PayoutBatchStatus.sent else None),
        )
        for p, b, m in rows
    ]


def payout_totals(session: Session, user: User) -> dict[str, dict[str, Money]]:
    """``{"in_transit": {cur: Money}, "paid_out": {cur: Money}}``: the worker's money on its way and
    money that left the platform, from the ledger (for the earnings page)."""
    out: dict[str, dict[str, Money]] = {"in_transit": {}, "paid_out": {}}
    kinds = {LedgerAccountKind.payouts_in_transit: "in_transit", LedgerAccountKind.paid_out: "paid_out"}
    rows = session.execute(
        sa.select(LedgerAccount.kind, LedgerAccount.currency, sa.func.coalesce(sa.func.sum(LedgerEntry.amount), 0))
        .join(LedgerEntry, LedgerEntry.account_id == LedgerAccount.id)
        .where(LedgerAccount.user_id == user.id, LedgerAccount.kind.in_(list(kinds)))
        .group_by(LedgerAccount.kind, LedgerAccount.currency)
    ).all()
    for kind, cur, total in rows:
        if int(total):
            out[kinds[LedgerAccountKind(kind)]][cur] = Money(int(total), cur)
    return out


def not_a_payout() -> sa.ColumnElement[bool]:
    """A WHERE clause on ``LedgerTransaction`` leaving out payout postings: moving money out of a
    worker's earnings into a payout is not earning less (the earnings page's weekly totals use it)."""
    return LedgerTransaction.kind != LedgerTransactionKind.payout


def can_send_batch(batch: PayoutBatch) -> bool:
    """Whether the batch's provider pays through an API (the page then offers "send")."""
    return can_send(get_provider(batch.provider))


def providers() -> list[tuple[str, str, list[str] | None]]:
    """(name, title, currencies or None for any) of every registered provider, for forms."""
    out = []
    for entry in PAYOUT_PROVIDERS.entries():
        impl = entry.obj()
        out.append((entry.name, impl.title, sorted(impl.currencies) if impl.currencies is not None else None))
    return out


__all__ = [
    "UNFINISHED",
    "BatchLine",
    "BatchSummary",
    "Candidate",
    "MyPayout",
    "add_method",
    "batch_payouts",
    "can_send_batch",
    "cancel_batch",
    "cancelled_key",
    "candidates",
    "create_batch",
    "export_batch",
    "export_file",
    "forget_methods",
    "get_batch",
    "list_batches",
    "list_methods",
    "make_default",
    "mark_sent",
    "mask",
    "not_a_payout",
    "my_payouts",
    "paid_out_account",
    "payout_totals",
    "providers",
    "remove_method",
    "send_batch",
    "sent_key",
    "transit_account",
    "transit_key",
]
