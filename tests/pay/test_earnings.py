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


def test_pay_given_back_on_appeal_shows_as_paid_again(books, db):
    """An overturned appeal reverses the reversal: the clip's line and its top-up are approved
    again (not "taken back"), and the balance counts them once more."""
    from egocrowd.db.models import User
    from egocrowd.pay import appeals, rates, reversals
    from tests.pay.test_topups import accepted_clip, fund

    worker = make_user(db, "worker")
    with db.transaction() as s:
        c = books.new_campaign(s)
        c.pay_policy = {"auto_top_up": True}
        fund(books, s, c, "100.00")
        mine = accepted_clip(books, s, c, s.get_one(User, worker.id), minutes=15)
        for _ in range(4):
            accepted_clip(books, s, c, books.user(s), minutes=15)
        rates.propose(s, c)
        before = earnings.earnings(s, s.get_one(User, worker.id))
        reversals.reverse_clip_pay(s, books.admin(s), mine.id, "The clip repeats one sent last week.")
        taken = earnings.earnings(s, s.get_one(User, worker.id))
        assert [x.state for x in taken.lines] == ["reversed"] and [t.state for t in taken.top_ups] == ["reversed"]
        row = appeals.appeal(s, s.get_one(User, worker.id), mine.id, "It is a different shirt, look at the sleeves.")
        appeals.decide(s, books.admin(s), row.id, "overturn", "Agreed.")
        back = earnings.earnings(s, s.get_one(User, worker.id))
        assert [(x.state, x.reversed_at, x.reversal_reason) for x in back.lines] == [("approved", None, None)]
        assert [(t.state, t.reversed_at) for t in back.top_ups] == [("approved", None)]
        assert [x.effective for x in back.lines] == [x.effective for x in before.lines]
        assert back.balances == before.balances


def test_a_reversed_top_up_shows_as_taken_back_on_the_page_and_the_api(client, books, db):
    """A top-up taken back with its clip's pay (pay.reversals) is not shown as earned: its line says
    ``reversed`` with the reason, as the clip's own line does, and no longer lifts the clip's hourly
    rate; the balance and the week net it out (the ledger's reversal)."""
    from egocrowd.db.models import User
    from egocrowd.pay import rates, reversals
    from tests.pay.test_topups import accepted_clip, fund

    why = "The clip repeats one sent last week."
    worker = make_user(db, "worker")
    with db.transaction() as s:
        c = books.new_campaign(s)  # 1.50 a clip for 3 minutes; these take 15: 6.00 an hour
        c.pay_policy = {"auto_top_up": True}
        fund(books, s, c, "100.00")
        mine = accepted_clip(books, s, c, s.get_one(User, worker.id), minutes=15)
        kept = accepted_clip(books, s, c, s.get_one(User, worker.id), minutes=15)
        for _ in range(4):
            accepted_clip(books, s, c, books.user(s), minutes=15)
        rates.propose(s, c)  # paid at once (auto): a top-up on every clip
        e = earnings.earnings(s, s.get_one(User, worker.id))
        assert {(t.clip_id, t.state) for t in e.top_ups} == {(mine.id, "approved"), (kept.id, "approved")}
        lifted = {x.clip_id: x.effective for x in e.lines}[mine.id]
        topped = {t.clip_id: t.amount for t in e.top_ups}[mine.id]
        assert topped.minor > 0
        reversals.reverse_clip_pay(s, books.admin(s), mine.id, why)
        e = earnings.earnings(s, s.get_one(User, worker.id))
        by_clip = {t.clip_id: t for t in e.top_ups}
        t = by_clip[mine.id]
        assert (t.state, t.amount, t.reversal_reason) == ("reversed", topped, why) and t.reversed_at is not None
        assert by_clip[kept.id].state == "approved" and by_clip[kept.id].reversed_at is None
        line = {x.clip_id: x for x in e.lines}[mine.id]
        assert line.state == "reversed" and line.effective is not None and line.effective < lifted
        # what stands: the kept clip and its top-up, in the balance and the week alike
        assert e.balances == [Money(150, "USD") + by_clip[kept.id].amount] == e.weeks[0].earned
    r = client.get(f"{API}/me/earnings", headers=worker.headers)
    got = {x["clip_id"]: x for x in r.json()["top_ups"]}
    assert (got[mine.id]["state"], got[mine.id]["amount"], got[mine.id]["reversal_reason"]) == (
        "reversed",
        topped.format(),
        why,
    )
    assert got[kept.id]["state"] == "approved" and got[kept.id]["reversed_at"] is None
    page = client.get("/earnings", headers=worker.headers).text
    assert (
        f'data-top-up="{mine.id}" data-state="reversed"' in page
        and f'data-top-up="{kept.id}" data-state="approved"' in page
    )
    row = page[page.index(f'data-top-up="{mine.id}"') :].split("</tr>")[0]
    assert "taken back" in row and why in row
