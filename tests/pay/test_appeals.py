"""Appeals of reversed pay (egocrowd.pay.appeals), both backends: once per reversal, decided once by an
admin, an overturn pays again exactly what was taken (once), an empty budget decides nothing, and two
admins deciding at once get one success."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from egocrowd import audit
from egocrowd.db.models import ClipStatus, LedgerTransaction, Notification, PayAppeal, User
from egocrowd.errors import Conflict, Forbidden, InvalidInput, NotFound
from egocrowd.pay import appeals, ledger, reversals
from egocrowd.pay.money import Money

WHY = "The clip repeats one sent last week."
SAYS = "It is another shirt: look at the sleeves."


def _reversed_clip(books, s, *, fee_bps: int = 1000, spare: int = 0):
    """A clip paid 1.50 (+ a 10 % fee) from a budget holding ``spare`` more, then reversed."""
    c = books.new_campaign(s)
    ledger.deposit(s, c, Money(165 + spare, "USD"), books.admin(s), idempotency_key=f"d{c.id}", reason="wire")
    w = books.user(s)
    clip = books.clip(s, c, w)
    clip.status = ClipStatus.accepted
    ledger.pay_for_clip(s, clip, None, fee_bps=fee_bps)
    reversals.reverse_clip_pay(s, books.admin(s), clip.id, WHY)
    return c, w, clip


def test_a_worker_appeals_once_and_an_overturn_pays_again_exactly(books, db):
    with db.transaction() as s:
        c, w, clip = _reversed_clip(books, s)
        other = books.user(s)
        with pytest.raises(NotFound):
            appeals.appeal(s, other, clip.id, SAYS)  # not their clip
        with pytest.raises(InvalidInput) as short:
            appeals.appeal(s, w, clip.id, "unfair")
        assert short.value.code == "pay_appeal.comment_required"
        row = appeals.appeal(s, w, clip.id, SAYS)
        with pytest.raises(Conflict) as twice:
            appeals.appeal(s, w, clip.id, SAYS)
        assert twice.value.code == "pay_appeal.already_made"
        assert audit.find(s, action="pay.appealed", entity_type="pay_appeal", entity_id=row.id)
        assert [r.appeal.id for r in appeals.my_reversals(s, w)] == [row.id]
        assert appeals.my_reversals(s, other) == []

        with pytest.raises(Forbidden):
            appeals.decide(s, books.reviewer(s), row.id, "overturn")
        decided = appeals.decide(s, books.admin(s), row.id, "overturn", "Agreed.")
        assert decided.state == "overturned" and decided.repay_transaction_id is not None
        assert ledger.balance(s, ledger.worker_account(s, w, "USD")) == Money(150, "USD")
        assert ledger.balance(s, ledger.fees_account(s, "USD")).minor >= 15  # the fee came back too
        assert ledger.balance(s, ledger.campaign_account(s, c)) == Money(0, "USD")
        # the same posting asked again (a retried request) moves nothing more
        again = ledger.reverse(s, decided.reversal_id, "retry", books.admin(s))
        assert again.id == decided.repay_transaction_id
        with pytest.raises(Conflict) as done:
            appeals.decide(s, books.admin(s), row.id, "uphold", "No.")
        assert done.value.code == "pay_appeal.already_decided"
        notes = s.scalars(sa.select(Notification.kind).where(Notification.user_id == w.id))
        assert "pay_appeal.overturned" in list(notes)
        assert ledger.verify(s) == []


def test_upholding_needs_words_and_moves_nothing(books, db):
    with db.transaction() as s:
        c, w, clip = _reversed_clip(books, s)
        row = appeals.appeal(s, w, clip.id, SAYS)
        with pytest.raises(InvalidInput) as mute:
            appeals.decide(s, books.admin(s), row.id, "uphold")
        assert mute.value.code == "pay_appeal.comment_required"
        with pytest.raises(InvalidInput):
            appeals.decide(s, books.admin(s), row.id, "pardon", "x")
        before = ledger.balances(s)
        appeals.decide(s, books.admin(s), row.id, "uphold", "The same shirt, the same table.")
        assert ledger.balances(s) == before
        assert appeals.get_appeal(s, w, row.id).decision_comment == "The same shirt, the same table."
        with pytest.raises(NotFound):
            appeals.get_appeal(s, books.reviewer(s), row.id)


def test_a_budget_spent_meanwhile_decides_nothing(books, db):
    """Overturning must pay from the campaign's budget; when it no longer holds the pay, the decision
    is refused whole (the appeal stays open), rather than taking the budget below zero."""
    with db.transaction() as s:
        c, w, clip = _reversed_clip(books, s)
        other = books.user(s)
        spend = books.clip(s, c, other)  # the budget's 1.65 goes to another clip
        spend.status = ClipStatus.accepted
        ledger.pay_for_clip(s, spend, None, fee_bps=1000)
        row_id = appeals.appeal(s, w, clip.id, SAYS).id
    with pytest.raises(ledger.InsufficientFunds), db.transaction() as s:
        appeals.decide(s, books.admin(s), row_id, "overturn")
    with db.transaction() as s:
        assert s.get(PayAppeal, row_id).state == "open"
        assert ledger.balance(s, ledger.worker_account(s, s.get(User, w.id), "USD")) == Money(0, "USD")


def test_appealing_needs_a_reversal(books, db):
    with db.transaction() as s:
        c = books.new_campaign(s)
        w = books.user(s)
        clip = books.clip(s, c, w)
        with pytest.raises(Conflict) as e:
            appeals.appeal(s, w, clip.id, SAYS)
        assert e.value.code == "pay.not_reversed"


def test_two_admins_deciding_at_once_one_wins(books, db, db_url):
    from egocrowd.db import Database

    with db.transaction() as s:
        _, w, clip = _reversed_clip(books, s, spare=1000)
        row_id = appeals.appeal(s, w, clip.id, SAYS).id
        second = books.user(s, role=books.admin(s).role).id
    barrier = threading.Barrier(2)
    results: list[str] = []
    dbs = [Database(db_url), Database(db_url)]

    def decide(i: int, who: int, decision: str) -> None:
        try:
            barrier.wait(timeout=10)
            with dbs[i].transaction() as s:
                appeals.decide(s, s.get(User, who), row_id, decision, "decided")
            results.append("ok")
        except Exception as e:  # noqa: BLE001 - the loser's error is what we check
            results.append(getattr(e, "code", repr(e)))

    threads = [
        threading.Thread(target=decide, args=(0, books.admin_id, "overturn")),
        threading.Thread(target=decide, args=(1, second, "overturn")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for d in dbs:
        d.dispose()
    assert sorted(results) == ["ok", "pay_appeal.already_decided"], results
    with db.transaction() as s:
        repaid = s.scalars(sa.select(LedgerTransaction).where(LedgerTransaction.reason.like("Appeal %"))).all()
        assert len(repaid) == 1  # paid again once
        assert ledger.balance(s, ledger.worker_account(s, s.get(User, w.id), "USD")) == Money(150, "USD")
        assert ledger.verify(s) == []
