"""The ledger's invariants as Hypothesis properties, on SQLite and PostgreSQL: every transaction sums
to zero, replays change nothing, no guarded balance goes below zero without an admin's override,
balances equal the sum of entries (and a model kept beside them), and reversals restore balances.

Each example gets its own campaign and workers in the test's database, so examples never interfere."""

from __future__ import annotations

import itertools
from collections import Counter
from functools import partial

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egocrowd.db.models import LedgerEntry, LedgerTransaction
from egocrowd.errors import EgocrowdError
from egocrowd.pay import ledger
from egocrowd.pay.ledger import MAY_GO_NEGATIVE, Leg
from egocrowd.pay.money import Money

WORKERS = 3
op = st.one_of(
    st.tuples(st.just("deposit"), st.integers(1, 600)),
    st.tuples(st.just("clip"), st.integers(0, WORKERS - 1), st.sampled_from([0, 500, 1000])),
    st.tuples(st.just("bonus"), st.integers(0, WORKERS - 1), st.integers(1, 300)),
    st.tuples(st.just("payout"), st.integers(0, WORKERS - 1), st.integers(1, 400), st.booleans()),
    st.tuples(st.just("reverse"), st.integers(0, 40)),
    st.tuples(st.just("replay"), st.integers(0, 40)),
)
_example = itertools.count()


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(op, max_size=14))
def test_invariants_hold_for_any_sequence_of_postings(books, db, ops):
    n = next(_example)
    with db.transaction() as s:
        admin = books.admin(s)
        c = books.new_campaign(s, currency="KES", pay_cents=250)
        workers = [books.user(s) for _ in range(WORKERS)]
        clip_n = itertools.count()
        budget = ledger.campaign_account(s, c)
        earn = [ledger.worker_account(s, w, "KES") for w in workers]
        paid = ledger.account(s, "paid_out", "KES", user=workers[0])
        model: Counter[int] = Counter()
        posted: list[tuple[LedgerTransaction, list[Leg], str]] = []  # not reversals
        reversed_ids: set[int] = set()
        overridden: set[int] = set()

        def attempt(fn, legs, *, override=False):
            """Run a posting; the model predicts whether it may go through."""
            net = Counter()
            for leg in legs:
                net[leg.account.id] += leg.money.minor
            accounts = {leg.account.id: leg.account for leg in legs}
            short = [
                a for a, d in net.items() if d < 0 and accounts[a].kind not in MAY_GO_NEGATIVE and model[a] + d < 0
            ]
            try:
                txn = fn()
            except EgocrowdError as e:
                assert e.code == "ledger.insufficient_funds" and short and not override, (e.code, short)
                return None
            assert not short or override
            model.update(net)
            if override:
                overridden.update(short)
            return txn

        for o in ops:
            kind = o[0]
            if kind == "deposit":
                m = Money(o[1] * 10, "KES")
                org = c.organization
                legs = [Leg(ledger.funding_account(s, org, "KES"), -m), Leg(budget, m)]
                key = f"e{n}:dep:{len(posted)}"
                txn = attempt(partial(ledger.deposit, s, c, m, admin, idempotency_key=key, reason="wire"), legs)
            elif kind == "clip":
                w, fee_bps = o[1], o[2]
                clip = books.clip(s, c, workers[w])
                next(clip_n)
                pay = Money(250, "KES")
                fee = Money((250 * fee_bps + 5000) // 10000, "KES")
                legs = [Leg(budget, -(pay + fee)), Leg(earn[w], pay)] + (
                    [Leg(ledger.fees_account(s, "KES"), fee)] if fee.minor else []
                )
                key = f"clip:{clip.id}:accepted"
                txn = attempt(partial(ledger.pay_for_clip, s, clip, None, fee_bps=fee_bps), legs)
            elif kind in ("bonus", "payout"):
                w, amount = o[1], Money(o[2], "KES")
                src, dst = (budget, earn[w]) if kind == "bonus" else (earn[w], paid)
                legs = [Leg(src, -amount), Leg(dst, amount)]
                key = f"e{n}:{kind}:{len(posted)}"
                override = kind == "payout" and o[3]
                txn = attempt(
                    partial(
                        ledger.post,
                        s,
                        kind,
                        legs,
                        idempotency_key=key,
                        reason=kind,
                        actor=admin,
                        allow_negative=override,
                    ),
                    legs,
                    override=override,
                )
            elif kind == "reverse" and posted:
                original, legs, _ = posted[o[1] % len(posted)]
                if original.id in reversed_ids:  # a second reversal is absorbed: nothing moves
                    before = ledger.balances(s, [budget, *earn, paid])
                    assert ledger.reverse(s, original.id, "again", admin).reverses_id == original.id
                    assert ledger.balances(s, [budget, *earn, paid]) == before
                    continue
                opposite = [Leg(leg.account, -leg.money) for leg in legs]
                if attempt(partial(ledger.reverse, s, original.id, "found later", admin), opposite) is not None:
                    reversed_ids.add(original.id)
                continue
            elif kind == "replay" and posted:
                original, legs, key = posted[o[1] % len(posted)]
                before = ledger.balances(s, [budget, *earn, paid])
                again = ledger.post(
                    s,
                    original.kind,
                    list(reversed(legs)),
                    idempotency_key=key,
                    reason="retry",
                    actor=None,
                    refs=original.refs,
                )
                assert again.id == original.id
                assert ledger.balances(s, [budget, *earn, paid]) == before
                continue
            else:
                continue
            if txn is not None:
                posted.append((txn, legs, key))

        mine = [budget.id, *(a.id for a in earn), paid.id]
        got = ledger.balances(s, [s.get(type(budget), i) for i in mine])
        for aid in mine:
            assert got[aid].minor == model[aid], aid
            assert got[aid].minor >= 0 or aid in overridden  # below zero only by an admin's override
        assert ledger.verify(s) == []  # every transaction sums to zero; every cache equals its entries
        total = s.scalar(sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.amount), 0)))
        assert total == 0  # double entry over the whole database

        # Reversing everything not yet reversed brings every account back to zero.
        for original, _legs, _key in reversed(posted):
            if original.id not in reversed_ids:
                ledger.reverse(s, original.id, "unwind", admin, allow_negative=True)
        assert all(m.minor == 0 for m in ledger.balances(s, [s.get(type(budget), i) for i in mine]).values())
        assert ledger.verify(s) == []
