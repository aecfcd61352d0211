"""Payouts as Hypothesis properties, on SQLite and PostgreSQL: any sequence of accepted pay, reversals
(with or without an admin's override), batch creation, export, "sent", cancellation and replays keeps
the books sound: every transaction sums to zero, each balance is the sum of its entries, replays
change nothing, no balance is below zero without an admin's override, a worker's earnings + in
transit + paid out equal everything they were paid, and a worker is in at most one unfinished batch.

Each example runs in one transaction that is rolled back at its end, so batches (which take every
worker due a payout) never see another example's workers."""

from __future__ import annotations

import sqlalchemy as sa
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from egocrowd.blobs import BlobStore
from egocrowd.db.models import ClipStatus, LedgerEntry, Payout, PayoutBatch, PayoutBatchStatus
from egocrowd.errors import Conflict
from egocrowd.pay import ledger, payouts, reversals
from egocrowd.pay.money import Money

WORKERS = 3
PAY = 150
PROVIDERS = ("paypal", "wise")
_ARGS = {
    "accept": st.tuples(st.integers(0, WORKERS - 1)),
    "reverse": st.tuples(st.integers(0, 30), st.booleans()),
    "batch": st.tuples(st.sampled_from(PROVIDERS), st.sampled_from([0, 0, 150, 400])),
    "export": st.tuples(st.integers(0, 3)),
    "sent": st.tuples(st.integers(0, 3)),
    "cancel": st.tuples(st.integers(0, 3)),
    "replay": st.tuples(st.integers(0, 3)),
}
# weighted: money must be earned before a batch can take it, and batches made before they move
_KINDS = ["accept"] * 5 + ["batch"] * 2 + ["export"] * 2 + ["sent"] * 2 + ["reverse", "cancel", "replay"]
op = st.sampled_from(_KINDS).flatmap(lambda kind: _ARGS[kind].map(lambda args: (kind, *args)))


class Rollback(Exception):
    """Raised at the end of each example: its transaction is thrown away."""


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(  # the whole walk at least once, whatever the random examples draw
    start=[2, 3, 1],
    ops=[
        ("batch", "paypal", 0),
        ("export", 0),
        ("sent", 0),
        ("replay", 0),
        ("reverse", 0, False),
        ("reverse", 1, True),
        ("accept", 1),
        ("batch", "wise", 150),
        ("export", 1),
        ("cancel", 1),
        ("replay", 1),
        ("batch", "wise", 0),
        ("sent", 2),
        ("cancel", 0),
    ],
)
@given(start=st.lists(st.integers(1, 4), min_size=WORKERS, max_size=WORKERS), ops=st.lists(op, min_size=2, max_size=16))
def test_payout_invariants_hold_for_any_sequence(books, db, tmp_path, start, ops):
    blobs = BlobStore(tmp_path / "blobs")
    try:
        with db.transaction() as s:
            _run(books, s, blobs, [("accept", w) for w, n in enumerate(start) for _ in range(n)] + ops)
            raise Rollback
    except Rollback:
        pass


def _run(books, s, blobs, ops):
    admin = books.admin(s)
    c = books.new_campaign(s, currency="USD", pay_cents=PAY)
    ledger.deposit(s, c, Money(PAY * 100, "USD"), admin, idempotency_key=f"dep:{c.id}", reason="wire")
    workers = [books.user(s) for _ in range(WORKERS)]
    for i, w in enumerate(workers):
        payouts.add_method(s, w, provider=PROVIDERS[i % 2], account_ref=f"w{w.id}@example.com", currency="USD")
    earned = [0] * WORKERS  # everything each worker was paid, net of reversals (the model)
    overridden: set[int] = set()  # workers an admin let go below zero
    paid_clips: list[tuple[int, int]] = []  # (clip id, worker index), not reversed
    batches: list[int] = []
    status: dict[int, PayoutBatchStatus] = {}

    def accounts(w):
        return (
            ledger.worker_account(s, w, "USD"),
            payouts.transit_account(s, w, "USD"),
            payouts.paid_out_account(s, w, "USD"),
        )

    def snapshot():
        return ledger.balances(s, [a for w in workers for a in accounts(w)])

    for o in ops:
        kind = o[0]
        if kind == "accept":
            clip = books.clip(s, c, workers[o[1]])
            clip.status = ClipStatus.accepted
            ledger.pay_for_clip(s, clip, None)
            earned[o[1]] += PAY
            paid_clips.append((clip.id, o[1]))
        elif kind == "reverse" and paid_clips:
            clip_id, wi = paid_clips[o[1] % len(paid_clips)]
            held = ledger.balance(s, accounts(workers[wi])[0]).minor
            try:
                reversals.reverse_clip_pay(s, admin, clip_id, "Found to be a copy.", allow_negative=o[2])
            except ledger.InsufficientFunds:
                assert held < PAY and not o[2]  # refused only when it would go below zero unasked
                continue
            assert held >= PAY or o[2]
            if held < PAY:
                overridden.add(wi)
            earned[wi] -= PAY
            paid_clips.remove((clip_id, wi))
        elif kind == "batch":
            try:
                b = payouts.create_batch(s, admin, provider=o[1], currency="USD", minimum=Money(o[2], "USD"))
            except Conflict as e:
                assert e.code == "payout.nothing_to_pay"
                continue
            batches.append(b.id)
            event("a batch was made")
            status[b.id] = PayoutBatchStatus.open
            assert payouts.batch_payouts(s, b.id)  # a batch is never empty
        elif kind in ("export", "sent", "cancel") and batches:
            bid = batches[o[1] % len(batches)]
            allowed = {
                "export": {PayoutBatchStatus.open},
                "sent": {PayoutBatchStatus.exported},
                "cancel": {PayoutBatchStatus.open, PayoutBatchStatus.exported},
            }[kind]
            before = snapshot()
            try:
                if kind == "export":
                    payouts.export_batch(s, admin, bid, blobs)
                elif kind == "sent":
                    payouts.mark_sent(s, admin, bid, f"REF-{bid}")
                else:
                    payouts.cancel_batch(s, admin, bid, "changed our mind")
            except Conflict as e:
                assert e.code == "payout.batch_conflict" and status[bid] not in allowed
                assert snapshot() == before
                continue
            assert status[bid] in allowed
            event(f"{kind} went through")
            status[bid] = {
                "export": PayoutBatchStatus.exported,
                "sent": PayoutBatchStatus.sent,
                "cancel": PayoutBatchStatus.cancelled,
            }[kind]
        elif kind == "replay" and batches:
            # a retried worker process posting a batch's steps again: the keys absorb every one
            bid = batches[o[1] % len(batches)]
            batch = s.get(PayoutBatch, bid)
            before = snapshot()
            n = s.scalar(sa.select(sa.func.count()).select_from(LedgerEntry))
            for p in payouts.batch_payouts(s, bid):
                w = next(x for x in workers if x.id == p.user_id)
                money = Money(p.amount, "USD")
                earn, transit, out = accounts(w)
                again = ledger.post(
                    s,
                    ledger.TransactionKind.payout,
                    [ledger.Leg(earn, -money), ledger.Leg(transit, money)],
                    idempotency_key=payouts.transit_key(p.id),
                    reason="retry",
                    actor=None,
                    refs={"payout_id": p.id, "batch_id": bid, "step": "transit"},
                )
                assert again.id == p.transaction_id
            if status[bid] is PayoutBatchStatus.sent:
                payouts._settle(s, admin, batch, {})
            assert snapshot() == before
            assert s.scalar(sa.select(sa.func.count()).select_from(LedgerEntry)) == n

        # the invariants, after every step
        assert ledger.verify(s) == []
        for i, w in enumerate(workers):
            e, t, p = (ledger.balance(s, a).minor for a in accounts(w))
            assert e + t + p == earned[i]  # all of it, in exactly three places
            assert t >= 0 and p >= 0
            assert e >= 0 or i in overridden
            mine = s.execute(
                sa.select(PayoutBatch.status, Payout.amount)
                .join(PayoutBatch, PayoutBatch.id == Payout.batch_id)
                .where(Payout.user_id == w.id)
            ).all()
            assert t == sum(a for st_, a in mine if st_ in payouts.UNFINISHED)
            assert p == sum(a for st_, a in mine if st_ is PayoutBatchStatus.sent)
            assert sum(1 for st_, _ in mine if st_ in payouts.UNFINISHED) <= 1
    total = s.scalar(sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.amount), 0)))
    assert total == 0  # double entry over the whole database
