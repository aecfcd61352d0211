"""The worker's earnings (egocrowd.pay.earnings), both backends: each clip's state from the ledger,
the buyer and data use, exact hourly rates, weekly totals and balances that agree with the books."""

from __future__ import annotations

import pytest

from egocrowd.db.models import ClipStatus
from egocrowd.labels import review
from egocrowd.pay import budgets, earnings, ledger
from egocrowd.pay.earnings import hourly_rate
from egocrowd.pay.money import Money
from tests.platform.helpers import API, make_user


@pytest.mark.parametrize(
    ("minor", "currency", "minutes", "per_hour"),
    [
        (150, "USD", 4, "22.50"),
        (150, "USD", 7, "12.86"),  # 1285.714… cents: half up to the cent
        (100, "USD", 0.5, "120.00"),
        (1500, "JPY", 7, "12857"),
        (1250, "KWD", 3, "25.000"),
        (1, "USD", 120, "0.01"),  # 0.5 cents an hour rounds half up
    ],
)
def test_hourly_rate_is_exact(minor, currency, minutes, per_hour):
    rate = hourly_rate(Money(minor, currency), minutes)
    assert rate.format() == per_hour and rate.currency == currency
    assert isinstance(rate.minor, int)


def _sent(books, s, campaign, worker, status=ClipStatus.qc_passed):
    clip = books.clip(s, campaign, worker)
    clip.status = status
    s.flush()
    return clip


def _fund(books, s, campaign, amount: str):
    budgets.record_deposit(
        s,
        campaign,
        Money.parse(amount, campaign.currency),
        books.admin(s),
        reason="wire",
        idempotency_key=f"d:{campaign.id}",
    )


def test_each_clip_has_its_state_buyer_use_and_rate(books, db):
    with db.transaction() as s:
        usd = books.new_campaign(s)  # 1.50 a clip, 3 minutes: 30.00 an hour
        usd.data_use = {"train": True, "commercial": True, "redistribute": False}
        usd.buyer_name = "Open Robotics Lab"
        kes = books.new_campaign(s, currency="KES", pay_cents=20000)
        _fund(books, s, usd, "3.00")  # two clips' worth: the third is owed
        _fund(books, s, kes, "200.00")
        w, other = books.user(s), books.user(s)
        paid, reversed_, owed = (_sent(books, s, usd, w) for _ in range(3))
        pending = _sent(books, s, usd, w, ClipStatus.processing)
        _sent(books, s, usd, w, ClipStatus.qc_failed)  # decided, never paid: not a line
        _sent(books, s, usd, other)  # someone else's
        kes_clip = _sent(books, s, kes, w)
        for clip in (paid, reversed_, owed, kes_clip):
            review.accept_clip(s, clip, books.reviewer(s), how="review")
        taken = ledger.reverse(
            s,
            budgets.pay_accepted_clip(s, reversed_, None).id,
            "The clip repeats clip 1 (found after approval)",
            books.admin(s),
        )
        e = earnings.earnings(s, w)
        by_clip = {x.clip_id: x for x in e.lines}
        assert [x.clip_id for x in e.lines] == sorted(by_clip, reverse=True)  # newest first
        assert set(by_clip) == {paid.id, reversed_.id, owed.id, pending.id, kes_clip.id}
        assert {cid: x.state for cid, x in by_clip.items()} == {
            paid.id: "approved",
            reversed_.id: "reversed",
            owed.id: "owed",
            pending.id: "pending",
            kes_clip.id: "approved",
        }
        line = by_clip[paid.id]
        assert line.amount == Money(150, "USD") and line.hourly == Money(3000, "USD")
        assert line.buyer_name == "Open Robotics Lab" and line.data_use["commercial"] is True
        assert line.paid_at is not None and line.reversed_at is None
        r = by_clip[reversed_.id]
        assert r.reversal_reason == "The clip repeats clip 1 (found after approval)" and r.reversed_at == taken.at
        assert by_clip[kes_clip.id].amount == Money(20000, "KES") and by_clip[kes_clip.id].hourly.format() == "4000.00"
        # the balance per currency is the ledger's: 1.50 paid, 1.50 paid then taken back; 200 KES
        assert e.balances == [Money(20000, "KES"), Money(150, "USD")]
        assert e.balances[1] == ledger.balance(s, ledger.worker_account(s, w, "USD"))
        assert e.totals["pending"] == [Money(150, "USD")] and e.totals["owed"] == [Money(150, "USD")]
        # every posting happened this week: the week's net is the balance
        assert len(e.weeks) == 1
        assert e.weeks[0].earned == e.balances and e.weeks[0].pending == [Money(150, "USD")]
        assert e.weeks[0].start.weekday() == 0
        nobody = books.user(s)
        empty = earnings.earnings(s, nobody)
        assert (empty.lines, empty.weeks, empty.balances) == ([], [], [])


def test_the_api_answers_in_exact_strings(client, db):
    worker = make_user(db, "worker")
    r = client.get(f"{API}/me/earnings", headers=worker.headers)
    assert r.status_code == 200 and r.json() == {
        "balances": [],
        "totals": {},
        "weeks": [],
        "lines": [],
        "top_ups": [],
        "answers": [],
        "reviews": [],
        "sessions": [],
        "redactions": [],
    }
    assert client.get(f"{API}/me/earnings").status_code == 401
    assert client.get(f"{API}/me/earnings?limit=0", headers=worker.headers).status_code == 422
