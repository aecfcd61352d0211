"""The double-entry pay ledger: accounts, transactions, entries (docs/pay.md).

Rules this module keeps (tests/pay holds them as properties on SQLite and PostgreSQL):

- Money is exact: integer minor units of one currency per account (egocrowd.pay.money).
- A transaction's entries sum to zero per currency, or nothing is posted (``ledger.unbalanced``).
- Append-only: this module has no path that updates or deletes a transaction or an entry (a test
  reads its source to keep it so), and the migration's triggers refuse it at the database. A
  correction is a new transaction: :func:`reverse`, or an ``adjustment``.
- Balances are the SUM of entries. Each account also caches its balance, updated in the same
  database transaction as the entries, by one conditional UPDATE per account that also decides
  "may this go below zero" atomically (the same pattern as a campaign's slots). :func:`verify`
  compares every cache with the entries; nothing reads the cache as the balance.
- No worker balance (nor a campaign's budget, the fees, a payout) goes below zero unless an admin
  says so with a reason (``allow_negative=True``), recorded on the transaction and in the audit log.
- Idempotency: every posting carries a unique key. Posting a key again with the same content
  returns the first transaction; with different content it is ``ledger.idempotency_conflict``.
  Two sessions posting one key at once: the unique index lets exactly one through.
- Every posting writes an audit event in the same database transaction.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from egocrowd import audit
from egocrowd.clock import db_now
from egocrowd.db.models import (
    Campaign,
    Clip,
    LedgerAccount,
    LedgerAccountKind,
    LedgerEntry,
    LedgerTransaction,
    LedgerTransactionKind,
    Organization,
    Role,
    User,
)
from egocrowd.errors import Conflict, Forbidden, InvalidInput, NotFound
from egocrowd.pay.money import Money, check_currency, fee_for, minor_digits

T = TypeVar("T")

AccountKind = LedgerAccountKind
TransactionKind = LedgerTransactionKind

#: The one account kind whose balance is expected below zero: the outside world's side of a deposit.
MAY_GO_NEGATIVE = frozenset({AccountKind.lab_funding})

#: The platform's fee on top of a worker's pay, in basis points (1000 = 10 %), until the budgets work
#: makes it a setting; the lab's budget pays it, the worker's pay is never reduced by it.
DEFAULT_FEE_BPS = 0


class InsufficientFunds(Conflict):
    """A posting would take an account below zero (``account_id``, ``balance``, ``needed``)."""

    default_code = "ledger.insufficient_funds"


@dataclass(frozen=True)
class Leg:
    """One side of a posting: ``money`` into ``account`` (negative: out of it)."""

    account: LedgerAccount
    money: Money


# ---------------------------------------------------------------- accounts


def account(
    session: Session,
    kind: AccountKind | str,
    currency: str,
    *,
    user: User | None = None,
    campaign: Campaign | None = None,
    organization: Organization | None = None,
) -> LedgerAccount:
    """The account of this kind, currency and owner, made on first use. Workers' earnings belong to a
    user, a budget to a campaign (in the campaign's currency), funding to an organization; fees and
    payouts to the platform (or, for payouts, to a user)."""
    kind = AccountKind(kind)
    minor_digits(currency)
    owners = {"user": user, "campaign": campaign, "organization": organization}
    named = [k for k, v in owners.items() if v is not None]
    required = {
        AccountKind.worker_earnings: "user",
        AccountKind.campaign_budget: "campaign",
        AccountKind.lab_funding: "organization",
    }.get(kind)
    allowed = {required} if required else {"user"} if kind != AccountKind.platform_fees else set()
    if (required and named != [required]) or not set(named) <= allowed or len(named) > 1:
        raise InvalidInput(f"A {kind.value} account belongs to {required or 'the platform'}.", code="ledger.bad_owner")
    if campaign is not None:
        check_currency(campaign.currency, currency)
    owner_key = f"{named[0]}:{owners[named[0]].id}" if named else "platform"  # type: ignore[union-attr]
    q = sa.select(LedgerAccount).where(
        LedgerAccount.kind == kind, LedgerAccount.currency == currency, LedgerAccount.owner_key == owner_key
    )
    found = session.scalars(q).one_or_none()
    if found is not None:
        return found
    row = LedgerAccount(
        kind=kind,
        currency=currency,
        owner_key=owner_key,
        user_id=user.id if user else None,
        campaign_id=campaign.id if campaign else None,
        organization_id=organization.id if organization else None,
        balance=0,
    )
    try:
        with session.begin_nested():  # another session may be making the same account right now
            session.add(row)
    except IntegrityError:
        return session.scalars(q).one()
    return row


def worker_account(session: Session, user: User, currency: str) -> LedgerAccount:
    return account(session, AccountKind.worker_earnings, currency, user=user)


def campaign_account(session: Session, campaign: Campaign) -> LedgerAccount:
    return account(session, AccountKind.campaign_budget, campaign.currency, campaign=campaign)


def fees_account(session: Session, currency: str) -> LedgerAccount:
    return account(session, AccountKind.platform_fees, currency)


def funding_account(session: Session, organization: Organization, currency: str) -> LedgerAccount:
    return account(session, AccountKind.lab_funding, currency, organization=organization)


# ---------------------------------------------------------------- posting


def post(
    session: Session,
    kind: TransactionKind | str,
    legs: Sequence[Leg | tuple[LedgerAccount, Money]],
    *,
    idempotency_key: str,
    reason: str,
    actor: User | None,
    allow_negative: bool = False,
    refs: dict[str, Any] | None = None,
    reverses: LedgerTransaction | None = None,
) -> LedgerTransaction:
    """Post one balanced transaction in ``session``'s database transaction and return it.

    A key seen before returns the transaction posted under it, when its content (kind, legs, refs,
    what it reverses) is the same; otherwise ``ledger.idempotency_conflict``. ``allow_negative`` lets
    balances go below zero: only an admin may, with a reason. Nothing is left in the session when
    it raises."""
    kind = TransactionKind(kind)
    legs_: list[Leg] = [leg if isinstance(leg, Leg) else Leg(*leg) for leg in legs]
    key = (idempotency_key or "").strip()
    reason = (reason or "").strip()
    if not key or len(key) > 200:
        raise InvalidInput("A posting needs an idempotency key of 1 to 200 characters.", code="ledger.bad_key")
    if not reason or len(reason) > 500:
        raise InvalidInput("A posting needs a reason (at most 500 characters).", code="ledger.reason_required")
    if allow_negative and (actor is None or actor.role != Role.admin):
        raise Forbidden("Only an admin may let a balance go below zero.", code="ledger.override_forbidden")
    _check_legs(legs_)
    refs = dict(refs or {})
    session.flush()  # accounts made just now need their ids
    digest = _content_sha256(kind, legs_, refs, reverses)

    existing = _by_key(session, key)
    if existing is not None:
        return _replay(existing, digest)
    try:
        with session.begin_nested():
            return _insert(session, kind, legs_, key, digest, reason, actor, allow_negative, refs, reverses)
    except IntegrityError:
        # Lost a race for the key (PostgreSQL waited for the other session to commit): theirs stands.
        existing = _by_key(session, key)
        if existing is None:
            raise
        return _replay(existing, digest)


def _check_legs(legs: Sequence[Leg]) -> None:
    if len(legs) < 2:
        raise InvalidInput("A transaction has at least two legs.", code="ledger.unbalanced")
    totals: dict[str, int] = defaultdict(int)
    for leg in legs:
        if not isinstance(leg.money, Money) or leg.money.minor == 0:
            raise InvalidInput("Every leg moves a non-zero amount of Money.", code="ledger.bad_leg")
        check_currency(leg.account.currency, leg.money.currency)
        totals[leg.money.currency] += leg.money.minor
    off = {c: Money(t, c) for c, t in totals.items() if t}
    if off:
        raise InvalidInput(
            "The legs do not balance: " + ", ".join(f"{m} left over" for m in off.values()),
            code="ledger.unbalanced",
            left_over={c: m.format() for c, m in off.items()},
        )


def _content_sha256(kind: TransactionKind, legs: Sequence[Leg], refs: dict, reverses: LedgerTransaction | None) -> str:
    # What the posting does to money; the actor and the reason's wording may differ on a retry.
    content = {
        "kind": kind.value,
        "legs": sorted([leg.account.id, leg.money.minor, leg.money.currency] for leg in legs),
        "refs": refs,
        "reverses": reverses.id if reverses is not None else None,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def _by_key(session: Session, key: str) -> LedgerTransaction | None:
    return session.scalars(sa.select(LedgerTransaction).where(LedgerTransaction.idempotency_key == key)).one_or_none()


def _replay(existing: LedgerTransaction, digest: str) -> LedgerTransaction:
    if existing.content_sha256 != digest:
        raise Conflict(
            f"The key {existing.idempotency_key!r} was used for a different posting (transaction {existing.id}).",
            code="ledger.idempotency_conflict",
            transaction_id=existing.id,
        )
    return existing


def _insert(
    session: Session,
    kind: TransactionKind,
    legs: Sequence[Leg],
    key: str,
    digest: str,
    reason: str,
    actor: User | None,
    allow_negative: bool,
    refs: dict,
    reverses: LedgerTransaction | None,
) -> LedgerTransaction:
    txn = LedgerTransaction(
        kind=kind,
        idempotency_key=key,
        content_sha256=digest,
        reason=reason,
        actor_id=actor.id if actor else None,
        at=db_now(session),
        reverses_id=reverses.id if reverses is not None else None,
        allow_negative=allow_negative,
        refs=refs,
    )
    session.add(txn)
    session.flush()  # claims the key: a concurrent session with the same key waits here, then fails
    session.execute(
        sa.insert(LedgerEntry),
        [{"transaction_id": txn.id, "account_id": leg.account.id, "amount": leg.money.minor} for leg in legs],
    )
    went_negative = _apply_to_balances(session, legs, allow_negative)
    audit.record(
        session,
        actor,
        "ledger.posted",
        txn,
        {
            "kind": kind.value,
            "key": key,
            "reason": reason,
            "legs": [
                {"account_id": leg.account.id, "amount": leg.money.format(), "currency": leg.money.currency}
                for leg in legs
            ],
            "refs": refs,
            "reverses": txn.reverses_id,
            "allowed_negative": went_negative,
        },
    )
    return txn


def _apply_to_balances(session: Session, legs: Sequence[Leg], allow_negative: bool) -> list[int]:
    """Move each account's cached balance by its net amount, in account-id order (one lock order, no
    deadlocks). A guarded account that would go below zero refuses in the same statement that
    moves it, so two postings cannot both spend the last cent. Returns the accounts an admin let go
    below zero."""
    net: dict[int, int] = defaultdict(int)
    by_id = {leg.account.id: leg.account for leg in legs}
    for leg in legs:
        net[leg.account.id] += leg.money.minor
    went_negative = []
    for account_id in sorted(net):
        delta = net[account_id]
        if delta == 0:
            continue
        acct = by_id[account_id]
        stmt = (
            sa.update(LedgerAccount)
            .where(LedgerAccount.id == account_id)
            .values(balance=LedgerAccount.balance + delta)
            .returning(LedgerAccount.balance)
        )
        guarded = delta < 0 and acct.kind not in MAY_GO_NEGATIVE
        if guarded and not allow_negative:
            stmt = stmt.where(LedgerAccount.balance + delta >= 0)
        after = session.execute(stmt, execution_options={"synchronize_session": False}).scalar_one_or_none()
        if after is None:
            have = balance(session, acct) - Money(delta, acct.currency)  # before this posting's entries
            raise InsufficientFunds(
                f"Account {account_id} ({acct.kind.value}) holds {have}; this needs {Money(-delta, acct.currency)}.",
                account_id=account_id,
                balance=have.format(),
                needed=Money(-delta, acct.currency).format(),
            )
        if guarded and after < 0:
            went_negative.append(account_id)
    for acct in by_id.values():  # the ORM's copy of the cache is stale now
        session.expire(acct, ["balance"])
    return went_negative


def standing_reversal(payment_id: Any) -> tuple[Any, sa.ColumnElement[bool]]:
    """An alias for the reversal of the transaction ``payment_id`` and the ON clause that outer-joins
    it, unless the reversal was itself reversed (an overturned appeal paid it again): the joined
    reversal is None for a payment that stands."""
    undo, redo = aliased(LedgerTransaction), aliased(LedgerTransaction)
    return undo, sa.and_(undo.reverses_id == payment_id, ~sa.exists().where(redo.reverses_id == undo.id))


def reverse(
    session: Session,
    transaction_id: int,
    reason: str,
    actor: User | None,
    *,
    allow_negative: bool = False,
) -> LedgerTransaction:
    """Post the opposite of transaction ``transaction_id`` (a rejection found after approval, a
    mistake). The reason is required and shown to the worker. Reversing twice returns the first
    reversal (its key is ``reversal:<id>``). A reversal that would take a worker below zero (they
    were paid out already) needs an admin's ``allow_negative``."""
    original = session.get(LedgerTransaction, transaction_id)
    if original is None:
        raise NotFound(f"No ledger transaction {transaction_id}.", code="ledger.transaction_not_found")
    accounts = {
        a.id: a
        for a in session.scalars(
            sa.select(LedgerAccount).where(LedgerAccount.id.in_({e.account_id for e in original.entries}))
        )
    }
    legs = [Leg(accounts[e.account_id], Money(-e.amount, accounts[e.account_id].currency)) for e in original.entries]
    return post(
        session,
        TransactionKind.reversal,
        legs,
        idempotency_key=f"reversal:{original.id}",
        reason=reason,
        actor=actor,
        allow_negative=allow_negative,
        refs={"reverses_key": original.idempotency_key},
        reverses=original,
    )


# ---------------------------------------------------------------- services the pay work calls


def deposit(
    session: Session,
    campaign: Campaign,
    money: Money,
    actor: User,
    *,
    idempotency_key: str,
    reason: str,
) -> LedgerTransaction:
    """An admin records money a lab sent for ``campaign``: its organization's funding → its budget."""
    if actor.role != Role.admin:
        raise Forbidden("Only an admin records deposits.", code="auth.forbidden")
    check_currency(campaign.currency, money.currency)
    if money.minor <= 0:
        raise InvalidInput("A deposit is a positive amount.", code="money.bad_amount")
    org = session.get(Organization, campaign.organization_id)
    assert org is not None  # a campaign's organization is a foreign key
    return post(
        session,
        TransactionKind.deposit,
        [Leg(funding_account(session, org, money.currency), -money), Leg(campaign_account(session, campaign), money)],
        idempotency_key=idempotency_key,
        reason=reason,
        actor=actor,
        refs={"campaign_id": campaign.id},
    )


@dataclass(frozen=True)
class PaymentKey:
    """The idempotency key a piece of work's payment is posted under, ``<kind>:<id>:<event>``: one
    payment per piece, ever. Called with an id it gives the key; :meth:`sql` builds the same key
    from an id column, to join work to its payment (or find work not paid yet) in one query."""

    kind: str
    event: str

    def __call__(self, work_id: int) -> str:
        return f"{self.kind}:{work_id}:{self.event}"

    def sql(self, id_column: Any) -> sa.ColumnElement[str]:
        return sa.literal(f"{self.kind}:") + sa.cast(id_column, sa.String) + sa.literal(f":{self.event}")


#: an accepted clip's payment
clip_payment_key = PaymentKey("clip", "accepted")


def pay_for_clip(
    session: Session,
    clip: Clip,
    actor: User | None,
    *,
    fee_bps: int = DEFAULT_FEE_BPS,
) -> LedgerTransaction:
    """Pay the worker the campaign's price for one accepted clip, from the campaign's budget, plus the
    platform's fee on top. Key ``clip:<id>:accepted``: a double approval pays once.

    Called on acceptance through :func:`egocrowd.pay.budgets.pay_accepted_clip`, which records the pay
    as owed instead when the budget cannot cover it; here a short budget raises
    ``ledger.insufficient_funds``."""
    campaign = session.get(Campaign, clip.campaign_id)
    assert campaign is not None
    worker = session.get(User, clip.worker_id)
    assert worker is not None
    pay = Money(campaign.pay_cents, campaign.currency)
    return pay_from_budget(
        session,
        TransactionKind.clip_accepted,
        campaign,
        worker,
        pay,
        fee_bps=fee_bps,
        idempotency_key=clip_payment_key(clip.id),
        reason=f"Accepted clip {clip.id} of campaign {campaign.id}: {pay}",
        actor=actor,
        refs={"clip_id": clip.id, "campaign_id": campaign.id, "fee_bps": fee_bps},
    )


def pay_from_budget(
    session: Session,
    kind: TransactionKind,
    campaign: Campaign,
    worker: User,
    pay: Money,
    *,
    fee_bps: int,
    idempotency_key: str,
    reason: str,
    actor: User | None,
    refs: dict,
) -> LedgerTransaction:
    """Pay ``worker`` from the campaign's budget, with the platform's fee on top: the one shape of
    every payment for work (clips, annotation answers, evaluation verdicts, top-ups). A short budget
    raises ``ledger.insufficient_funds``; the caller decides whether the pay is then owed."""
    fee = fee_for(pay, fee_bps)
    legs = [
        Leg(campaign_account(session, campaign), -(pay + fee)),
        Leg(worker_account(session, worker, pay.currency), pay),
    ]
    if fee.minor:
        legs.append(Leg(fees_account(session, pay.currency), fee))
    return post(session, kind, legs, idempotency_key=idempotency_key, reason=reason, actor=actor, refs=refs)


def pay_or_owe(
    session: Session,
    kind: TransactionKind,
    campaign: Campaign,
    worker: User,
    pay: Money,
    *,
    owed: tuple[str, Any],
    **payment: Any,
) -> LedgerTransaction | None:
    """:func:`pay_from_budget`, or, when the budget is short, None and the audit event ``owed``
    (action, subject) saying what was needed: the pay is owed, and the next deposit settles it."""
    try:
        return pay_from_budget(session, kind, campaign, worker, pay, **payment)
    except InsufficientFunds as short:
        action, subject = owed
        audit.record(
            session,
            payment.get("actor"),
            action,
            subject,
            {"campaign_id": campaign.id, "needed": short.extra.get("needed"), "balance": short.extra.get("balance")},
        )
        return None


def settle(owed: Iterable[T], pay: Callable[[T], LedgerTransaction | None]) -> int:
    """Pay owed work, oldest first, while the budget lasts (after a deposit): ``pay`` is the work's
    own :func:`pay_or_owe`, whose None says the budget ran short again. Returns how many were paid."""
    n = 0
    for work in owed:
        if pay(work) is None:
            break
        n += 1
    return n


# ---------------------------------------------------------------- reading


def balance(session: Session, acct: LedgerAccount) -> Money:
    """The account's balance: the sum of its entries."""
    total = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.amount), 0)).where(LedgerEntry.account_id == acct.id)
    )
    return Money(int(total or 0), acct.currency)


def balances(
    session: Session,
    accounts: Iterable[LedgerAccount] | None = None,
    *,
    kind: AccountKind | str | None = None,
    currency: str | None = None,
) -> dict[int, Money]:
    """``{account_id: balance}`` for the given accounts, or every account (of ``kind``, ``currency``),
    zero included: one GROUP BY over the entries."""
    # Core columns, not ORM entities: the same SQL, without the ORM's work per row (50,000 accounts).
    a, e = LedgerAccount.__table__.c, LedgerEntry.__table__.c
    ids = None if accounts is None else [acct.id for acct in accounts]
    sums_q = sa.select(e.account_id, sa.func.sum(e.amount).label("total"))
    if ids is not None:  # a few accounts: sum only theirs rather than the whole table
        sums_q = sums_q.where(e.account_id.in_(ids))
    sums = sums_q.group_by(e.account_id).subquery()
    q = sa.select(a.id, a.currency, sums.c.total).outerjoin(sums, sums.c.account_id == a.id)
    if ids is not None:
        q = q.where(a.id.in_(ids))
    if kind is not None:
        q = q.where(a.kind == AccountKind(kind).value)
    if currency is not None:
        q = q.where(a.currency == currency)
    return {aid: Money(int(total or 0), cur) for aid, cur, total in session.connection().execute(q)}


class StatementLine(NamedTuple):
    """One entry of a statement. A named tuple rather than a frozen dataclass: a statement is
    thousands of lines a page, and a tuple is made several times faster (same fields, as immutable)."""

    entry_id: int
    transaction_id: int
    at: datetime
    kind: TransactionKind
    reason: str
    refs: dict[str, Any]
    amount: Money
    balance: Money  # the account's balance after this line


@dataclass(frozen=True)
class Statement:
    account_id: int
    opening: Money  # the balance before the first line
    lines: list[StatementLine]
    next_after: int | None  # pass as ``after`` for the next page; None: this was the last


def statement(
    session: Session,
    acct: LedgerAccount,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    after: int = 0,
    limit: int = 100,
) -> Statement:
    """One page of the account's entries, oldest first, each with the balance after it. Paged by
    entry id (keyset: ``after`` is the last entry id of the previous page, so a page never shifts when
    entries are added); ``since``/``until`` narrow to a half-open time range [since, until) of the
    transactions' times, and each line's balance still counts every entry before it."""
    return _statement(session, acct.id, acct.currency, since=since, until=until, after=after, limit=limit)


_E, _T = LedgerEntry.__table__.c, LedgerTransaction.__table__.c
_KIND_BY_VALUE = {k.value: k for k in TransactionKind}
_CHUNK = 250  # rows a page fetches at a time


@functools.cache
def _page_query(*, with_opening: bool = True) -> sa.Select:
    """A page's query, built once (bound parameters ``account``, ``after``, ``limit``): building it
    and its cache key again for every page cost as much as a page's rows. The kind comes as its
    text and the refs as JSON text; :func:`_statement` makes them an enum and dicts faster than the
    per-row result processors would."""
    opening: sa.ColumnElement[Any] = sa.null()
    if with_opening:  # everything up to ``after``: the opening balance in the page's one query
        before = LedgerEntry.__table__.alias("before")
        opening = (
            sa.select(sa.func.coalesce(sa.func.sum(before.c.amount), 0))
            .where(before.c.account_id == sa.bindparam("account"), before.c.id <= sa.bindparam("after"))
            .scalar_subquery()
        )
    return (
        sa.select(
            _E.id,
            _E.amount,
            _T.id,
            _T.at,
            sa.type_coerce(_T.kind, sa.String),
            _T.reason,
            sa.cast(_T.refs, sa.Text),
            opening,
        )
        .join_from(LedgerEntry.__table__, LedgerTransaction.__table__, _T.id == _E.transaction_id)
        .where(_E.account_id == sa.bindparam("account"), _E.id > sa.bindparam("after"))
        .order_by(_E.id)
        .limit(sa.bindparam("limit"))
    )


def _statement(
    session: Session,
    account: int,
    currency: str,
    *,
    since: datetime | None,
    until: datetime | None,
    after: int,
    limit: int,
) -> Statement:
    """:func:`statement` of the account with id ``account``. (Its id as a value, not a subquery that
    finds it: PostgreSQL plans with the account's own statistics, and a busy account's first page is
    an index walk in order, not all its entries fetched and sorted.)"""
    limit = max(1, min(limit, 10_000))
    windowed = since is not None or until is not None
    q = _page_query(with_opening=not windowed)
    if since is not None:
        q = q.where(_T.at >= since)
    if until is not None:
        q = q.where(_T.at < until)
    # Core rows, not ORM ones: the same SQL without the ORM's work per row (the flush is what the
    # ORM's execute would do first: postings of this session not yet sent)
    session.flush()
    conn = session.connection()
    result = conn.execute(q, {"account": account, "after": after, "limit": limit + 1})
    total = sa.select(sa.func.coalesce(sa.func.sum(_E.amount), 0)).where(_E.account_id == account)
    running: int | None = None
    # With a time window, entries outside it can sit between two lines (a transaction that started
    # earlier committed later): the balance after each line still counts them.
    between: list[tuple[int, int]] = []
    chunks: Iterable[Sequence[sa.Row[Any]]]
    if not windowed:
        # A few hundred rows at a time: a page's Row objects are gone before the garbage collector
        # looks at them, so they never reach its oldest generation (a full collection of a big process
        # costs as much as a whole page).
        chunks = result.partitions(_CHUNK)
    else:
        rows = result.all()
        chunks = [rows]
        opening_q = total
        if rows:
            opening_q = opening_q.where(_E.id < rows[0][0])
            last = rows[min(limit, len(rows)) - 1][0]
            span = sa.select(_E.id, _E.amount).where(_E.account_id == account, _E.id >= rows[0][0], _E.id <= last)
            shown = {r[0] for r in rows}
            between = [(i, a) for i, a in conn.execute(span.order_by(_E.id)) if i not in shown]
        running = int(conn.scalar(opening_q) or 0)
    lines: list[StatementLine] = []
    more = False
    opening = running
    cur = currency
    hidden = iter(between)
    pending = next(hidden, None)
    kinds = _KIND_BY_VALUE
    amounts: dict[int, Money] = {}  # a page's amounts repeat (the same pay per clip): Money is immutable, made once
    for chunk in chunks:
        if not chunk:
            continue
        if running is None:  # the page's first row carries the opening balance
            running = opening = int(chunk[0][7])
        if len(chunk) > limit - len(lines):  # the row past the page: there is a next page
            more = True
            chunk = chunk[: limit - len(lines)]
        # The chunk's refs decoded in one call, as one JSON array: each is a whole JSON document, so
        # the array is one too (a json.loads per line cost more than all the rest of a line).
        refs_of_chunk = json.loads("[" + ",".join([r[6] or "null" for r in chunk]) + "]")
        for (entry_id, amount, txn_id, at, kind, reason, _, _), refs in zip(chunk, refs_of_chunk, strict=True):
            while pending is not None and pending[0] < entry_id:
                running += pending[1]
                pending = next(hidden, None)
            running += amount
            money = amounts.get(amount)
            if money is None:
                money = amounts[amount] = Money(amount, cur)
            lines.append(
                StatementLine(entry_id, txn_id, at, kinds[kind], reason, refs or {}, money, Money(running, cur))
            )
    if opening is None:  # no line, so no opening balance came with one: everything up to ``after``
        opening = int(conn.scalar(total.where(_E.id <= after)) or 0)
    return Statement(account, Money(opening, currency), lines, lines[-1].entry_id if more else None)


@functools.cache
def _budget_query() -> sa.Select:
    """A campaign budget's id by the accounts' unique key (bound parameters ``currency``, ``owner_key``)."""
    a = LedgerAccount.__table__.c
    return sa.select(a.id).where(
        a.kind == AccountKind.campaign_budget,
        a.currency == sa.bindparam("currency"),
        a.owner_key == sa.bindparam("owner_key"),
    )


def campaign_statement(
    session: Session,
    campaign: Campaign,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    after: int = 0,
    limit: int = 100,
) -> Statement:
    """The campaign budget's statement: its deposits, what each accepted piece of work cost, reversals."""
    # The budget's id by a Core query on the accounts' unique key (a page is often its own request);
    # the ORM's account() only when there is none yet, to make it on first use.
    budget = session.connection().scalar(
        _budget_query(), {"currency": campaign.currency, "owner_key": f"campaign:{campaign.id}"}
    )
    if budget is None:
        budget = campaign_account(session, campaign).id
    return _statement(session, budget, campaign.currency, since=since, until=until, after=after, limit=limit)


@dataclass(frozen=True)
class Discrepancy:
    what: str  # "unbalanced_transaction" or "stale_balance_cache"
    id: int
    detail: str


def verify(session: Session) -> list[Discrepancy]:
    """Every check the books must pass, over the whole ledger: each transaction sums to zero per
    currency, and each account's cached balance equals the sum of its entries. An empty list: sound."""
    E, A = LedgerEntry, LedgerAccount
    found = []
    unbalanced = (
        sa.select(E.transaction_id, A.currency, sa.func.sum(E.amount))
        .join(A, A.id == E.account_id)
        .group_by(E.transaction_id, A.currency)
        .having(sa.func.sum(E.amount) != 0)
    )
    for txn_id, cur, total in session.execute(unbalanced):
        found.append(Discrepancy("unbalanced_transaction", txn_id, f"{Money(int(total), cur)} left over"))
    sums = sa.select(E.account_id, sa.func.sum(E.amount).label("total")).group_by(E.account_id).subquery()
    stale = (
        sa.select(A.id, A.balance, sa.func.coalesce(sums.c.total, 0))
        .outerjoin(sums, sums.c.account_id == A.id)
        .where(A.balance != sa.func.coalesce(sums.c.total, 0))
    )
    for aid, cached, total in session.execute(stale):
        found.append(Discrepancy("stale_balance_cache", aid, f"cache {cached}, entries {total}"))
    return found


__all__ = [
    "DEFAULT_FEE_BPS",
    "MAY_GO_NEGATIVE",
    "AccountKind",
    "Discrepancy",
    "InsufficientFunds",
    "Leg",
    "Statement",
    "StatementLine",
    "TransactionKind",
    "account",
    "balance",
    "balances",
    "campaign_account",
    "campaign_statement",
    "deposit",
    "fees_account",
    "funding_account",
    "pay_for_clip",
    "post",
    "reverse",
    "settle",
    "statement",
    "verify",
    "worker_account",
]
