"""Several sessions at once, each on its own connection, on SQLite and PostgreSQL: one idempotency
key posted by many at the same moment pays exactly once, and many spending the same balance at once
never take it below zero. (SQLite queues writers: BEGIN IMMEDIATE, see egocrowd.db.engine; PostgreSQL
lets them race, and the unique key and the conditional balance update decide.)"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from egocrowd.db.models import Clip, LedgerTransaction, User
from egocrowd.errors import EgocrowdError
from egocrowd.pay import ledger
from egocrowd.pay.ledger import Leg
from egocrowd.pay.money import Money

THREADS = 8


def _race(fn, n: int = THREADS) -> list:
    """Run ``fn(i)`` in ``n`` threads released together; the results (or the errors raised)."""
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        try:
            return fn(i)
        except EgocrowdError as e:
            return e

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_one_key_posted_by_many_at_once_pays_once(books, db):
    with db.transaction() as s:
        c = books.new_campaign(s)
        ledger.deposit(s, c, Money(10_000, "USD"), books.admin(s), idempotency_key="dep", reason="wire")
        w = books.user(s)
        clip_id, worker_id = books.clip(s, c, w).id, w.id
        ledger.worker_account(s, w, "USD")
        ledger.fees_account(s, "USD")  # made now, so that the race below is for the key itself

    def approve(i):
        with db.transaction() as s:
            return ledger.pay_for_clip(s, s.get(Clip, clip_id), None, fee_bps=1000).id

    ids = _race(approve)
    assert len(set(ids)) == 1 and all(isinstance(i, int) for i in ids), ids
    with db.transaction() as s:
        key = f"clip:{clip_id}:accepted"
        assert (
            s.scalar(
                sa.select(sa.func.count())
                .select_from(LedgerTransaction)
                .where(LedgerTransaction.idempotency_key == key)
            )
            == 1
        )
        assert ledger.balance(s, ledger.worker_account(s, s.get(User, worker_id), "USD")) == Money(150, "USD")
        assert ledger.verify(s) == []


def test_many_spending_one_balance_at_once_never_overdraw_it(books, db):
    with db.transaction() as s:
        c = books.new_campaign(s)
        ledger.deposit(s, c, Money(350, "USD"), books.admin(s), idempotency_key="dep", reason="wire")
        w = books.user(s)
        budget_id, worker_id = ledger.campaign_account(s, c).id, w.id
        ledger.worker_account(s, w, "USD")

    def bonus(i):
        with db.transaction() as s:
            budget = s.get(type(ledger.campaign_account(s, c)), budget_id)
            earn = ledger.worker_account(s, s.get(User, worker_id), "USD")
            legs = [Leg(budget, Money(-100, "USD")), Leg(earn, Money(100, "USD"))]
            return ledger.post(s, "bonus", legs, idempotency_key=f"bonus:{i}", reason="bonus", actor=None).id

    results = _race(bonus)
    ok = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, EgocrowdError)]
    assert len(ok) == 3 and len(refused) == THREADS - 3
    assert {e.code for e in refused} == {"ledger.insufficient_funds"}
    with db.transaction() as s:
        assert ledger.balance(s, ledger.campaign_account(s, s.get(type(c), c.id))) == Money(50, "USD")
        assert ledger.verify(s) == []


def test_accounts_made_at_once_are_one_account(books, db):
    with db.transaction() as s:
        worker_id = books.user(s).id

    def make(i):
        with db.transaction() as s:
            return ledger.worker_account(s, s.get(User, worker_id), "NGN").id

    ids = _race(make)
    assert len(set(ids)) == 1, ids
