"""Paying for accepted clips and campaign budgets (egocrowd.pay.budgets), on SQLite and PostgreSQL:
an acceptance pays once, a short budget leaves the pay owed (never the acceptance lost), a deposit
settles what is owed, and the budget's numbers come from the ledger."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from egocrowd import audit
from egocrowd.db.models import ClipStatus, LedgerTransaction
from egocrowd.errors import Conflict
from egocrowd.labels import review
from egocrowd.pay import budgets, ledger
from egocrowd.pay.money import Money


def usd(text: str) -> Money:
    return Money.parse(text, "USD")


def _clip(books, s, campaign, worker):
    clip = books.clip(s, campaign, worker)
    clip.status = ClipStatus.qc_passed
    s.flush()
    return clip


def _fund(books, s, campaign, amount: str, key: str = "dep:1"):
    return budgets.record_deposit(
        s, campaign, usd(amount), books.admin(s), reason="wire", idempotency_key=f"{key}:{campaign.id}"
    )


def test_accepting_a_clip_pays_the_worker_once(books, db):
    with db.transaction() as s:
        c = books.new_campaign(s)
        _fund(books, s, c, "150.00")
        w = books.user(s)
        clip = _clip(books, s, c, w)
        review.accept_clip(s, clip, books.reviewer(s), how="review")
        with pytest.raises(Conflict) as twice:  # a second acceptance is refused before any money moves
            review.accept_clip(s, clip, books.reviewer(s), how="review")
        assert twice.value.code == "clip.not_acceptable"
        again = budgets.pay_accepted_clip(s, clip, books.admin(s))  # a retried payment: the same posting
        assert again is not None and again.idempotency_key == f"clip:{clip.id}:accepted"
        assert ledger.balance(s, ledger.worker_account(s, w, "USD")) == usd("1.50")
        n = s.scalar(sa.select(sa.func.count()).where(LedgerTransaction.idempotency_key == again.idempotency_key))
        assert n == 1
        b = budgets.budget(s, c)
        assert (b.deposited, b.spent, b.left) == (usd("150.00"), usd("1.50"), usd("148.50"))
        assert (b.accepted_clips, b.paid_clips, b.owed_clips) == (1, 1, 0)
        assert b.to_come == usd("148.50") and b.committed == usd("150.00") and b.covered
        assert ledger.verify(s) == []


def test_a_short_budget_keeps_the_acceptance_and_owes_the_pay_until_a_deposit(books, db):
    with db.transaction() as s:
        c = books.new_campaign(s)
        _fund(books, s, c, "2.00")
        w = books.user(s)
        first, second, third = (_clip(books, s, c, w) for _ in range(3))
        for clip in (first, second, third):
            review.accept_clip(s, clip, books.reviewer(s), how="review")
            assert clip.status is ClipStatus.accepted  # the acceptance is never lost
        assert [x.id for x in budgets.owed_clips(s, c.id)] == [second.id, third.id]
        owed_events = audit.find(s, action="clip.pay_owed")
        assert [int(e.entity_id) for e in owed_events] == [second.id, third.id]
        assert owed_events[0].payload["needed"] == "1.50" and owed_events[0].payload["balance"] == "0.50"
        b = budgets.budget(s, c)
        assert (b.paid_clips, b.owed_clips, b.owed) == (1, 2, usd("3.00"))
        assert ledger.balance(s, ledger.worker_account(s, w, "USD")) == usd("1.50")

        _fund(books, s, c, "2.00", key="dep:2")  # pays the oldest owed clip; 1.00 is not enough for the next
        assert [x.id for x in budgets.owed_clips(s, c.id)] == [third.id]
        _fund(books, s, c, "2.00", key="dep:2")  # the same form sent twice: nothing more
        assert [x.id for x in budgets.owed_clips(s, c.id)] == [third.id]
        _fund(books, s, c, "1.00", key="dep:3")
        assert budgets.owed_clips(s, c.id) == []
        assert ledger.balance(s, ledger.worker_account(s, w, "USD")) == usd("4.50")
        assert ledger.balance(s, ledger.campaign_account(s, c)) == usd("0.50")
        assert ledger.verify(s) == []


def test_the_budget_counts_a_target_it_has_not_reached(books, db):
    with db.transaction() as s:
        c = books.new_campaign(s)  # 100 clips at 1.50
        b = budgets.budget(s, c)
        assert b.short == usd("150.00") and not b.covered
        with pytest.raises(Conflict) as refused:
            budgets.require_covered(s, c, doing="open it")
        assert refused.value.code == "campaign.budget_short"
        assert refused.value.extra["missing"] == "150.00"
        assert "150.00 USD more" in refused.value.message
        _fund(books, s, c, "100.00")
        assert budgets.budget(s, c).short == usd("50.00")
        assert budgets.budget(s, c, target_clips=60).short == usd("0.00")
        assert budgets.require_covered(s, c, target_clips=66, doing="raise the target").left == usd("100.00")
        with pytest.raises(Conflict):
            budgets.require_covered(s, c, target_clips=67, doing="raise the target")
