"""Taking back a clip's pay (egocrowd.pay.reversals), both backends: admins only, with a reason the
worker reads on the earnings page and in a notice, once, the money back in the campaign's budget,
and never a negative balance without the admin saying so."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from egocrowd import audit
from egocrowd.db.models import ClipStatus, LedgerAccount, Notification
from egocrowd.errors import Conflict, Forbidden, InvalidInput, NotFound
from egocrowd.labels import review
from egocrowd.pay import budgets, earnings, ledger, reversals
from egocrowd.pay.ledger import Leg
from egocrowd.pay.money import Money
from tests.pay.conftest import Books
from tests.platform.helpers import API, assert_problem, make_user

WHY = "The clip repeats one sent last week."


def _paid_clip(books, s):
    c = books.new_campaign(s)
    budgets.record_deposit(
        s, c, Money.parse("150.00", "USD"), books.admin(s), reason="wire", idempotency_key=f"d:{c.id}"
    )
    w = books.user(s)
    clip = books.clip(s, c, w)
    clip.status = ClipStatus.qc_passed
    s.flush()
    review.accept_clip(s, clip, books.reviewer(s), how="review")
    return c, w, clip


def test_an_admin_takes_back_a_clips_pay_once_with_a_reason(books, db):
    with db.transaction() as s:
        c, w, clip = _paid_clip(books, s)
        with pytest.raises(Forbidden):
            reversals.reverse_clip_pay(s, books.reviewer(s), clip.id, WHY)
        with pytest.raises(InvalidInput) as short:
            reversals.reverse_clip_pay(s, books.admin(s), clip.id, "fraud")
        assert short.value.code == "pay.reason_required"
        with pytest.raises(NotFound):
            reversals.reverse_clip_pay(s, books.admin(s), 999_999, WHY)
        unpaid = books.clip(s, c, w)
        with pytest.raises(Conflict) as nothing:
            reversals.reverse_clip_pay(s, books.admin(s), unpaid.id, WHY)
        assert nothing.value.code == "pay.not_paid"

        t = reversals.reverse_clip_pay(s, books.admin(s), clip.id, WHY)
        again = reversals.reverse_clip_pay(s, books.admin(s), clip.id, "Another reason, asked twice")
        assert again.id == t.id and t.reason == WHY
        assert ledger.balance(s, ledger.worker_account(s, w, "USD")) == Money(0, "USD")
        assert ledger.balance(s, ledger.campaign_account(s, c)) == Money.parse("150.00", "USD")
        assert budgets.budget(s, c).paid_clips == 0
        notes = s.scalars(
            sa.select(Notification).where(Notification.user_id == w.id, Notification.kind == "pay.reversed")
        )
        assert [n.link for n in notes] == ["/earnings"]
        events = audit.find(s, action="clip.pay_reversed")
        assert len(events) == 1 and events[0].payload["reason"] == WHY
        line = next(x for x in earnings.earnings(s, w).lines if x.clip_id == clip.id)
        assert (line.state, line.reversal_reason) == ("reversed", WHY)
        assert ledger.verify(s) == []


def test_a_worker_already_paid_out_goes_below_zero_only_when_the_admin_says_so(books, db):
    with db.transaction() as s:
        _, w, clip = _paid_clip(books, s)
        earned = ledger.worker_account(s, w, "USD")
        out = ledger.account(s, ledger.AccountKind.paid_out, "USD", user=w)
        ledger.post(  # the worker's 1.50 left the platform (payouts are built later; the ledger has the kind)
            s,
            ledger.TransactionKind.payout,
            [Leg(earned, Money(-150, "USD")), Leg(out, Money(150, "USD"))],
            idempotency_key=f"payout-test:{w.id}",
            reason="paid out",
            actor=books.admin(s),
        )
        with pytest.raises(ledger.InsufficientFunds):
            reversals.reverse_clip_pay(s, books.admin(s), clip.id, WHY)
        t = reversals.reverse_clip_pay(s, books.admin(s), clip.id, WHY, allow_negative=True)
        assert t.allow_negative is True
        assert ledger.balance(s, earned) == Money(-150, "USD")
        assert s.get(LedgerAccount, earned.id) is not None and ledger.verify(s) == []


def test_the_api_reverses_for_admins_only(client, db):
    admin, worker = make_user(db, "admin"), make_user(db, "worker")
    with db.transaction() as s:
        _, _, clip = _paid_clip(Books(db, admin.id, admin.id), s)
        clip_id = clip.id
    r = client.post(f"{API}/clips/{clip_id}/pay-reversal", json={"reason": WHY}, headers=worker.headers)
    assert_problem(r, 403, "auth.forbidden")
    r = client.post(f"{API}/clips/{clip_id}/pay-reversal", json={"reason": "no"}, headers=admin.headers)
    assert_problem(r, 422, "pay.reason_required")
    first = client.post(f"{API}/clips/{clip_id}/pay-reversal", json={"reason": WHY}, headers=admin.headers)
    assert first.status_code == 201 and first.json()["reason"] == WHY
    again = client.post(f"{API}/clips/{clip_id}/pay-reversal", json={"reason": WHY}, headers=admin.headers)
    assert again.json()["transaction_id"] == first.json()["transaction_id"]


def test_two_admins_reversing_at_once_take_back_once_and_tell_the_worker_once(books, db):
    import threading

    with db.transaction() as s:
        _, w, clip = _paid_clip(books, s)
        clip_id, worker_id = clip.id, w.id
    barrier, results, errors = threading.Barrier(2), [], []

    def reverse() -> None:
        try:
            barrier.wait()
            with db.transaction() as s:
                results.append(reversals.reverse_clip_pay(s, books.admin(s), clip_id, WHY).id)
        except Exception as exc:  # pragma: no cover - shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=reverse) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 2 and results[0] == results[1]
    with db.transaction() as s:
        notes = s.scalars(
            sa.select(Notification).where(Notification.user_id == worker_id, Notification.kind == "pay.reversed")
        ).all()
        assert len(notes) == 1
        assert ledger.verify(s) == []
