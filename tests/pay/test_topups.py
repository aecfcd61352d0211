"""Top-ups (egocrowd.pay.rates), on SQLite and PostgreSQL: a campaign whose median working time shows
underpay gets a proposal; the lab accepts (it is paid to everyone already paid, once), declines (not
proposed again for as much), or the campaign accepts automatically; a short budget owes the rest
until a deposit; any sequence of proposals, decisions, retries and deposits pays each clip exactly
its top-up (Hypothesis)."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egocrowd import audit
from egocrowd.clock import utcnow
from egocrowd.db.models import (
    Assignment,
    AssignmentStatus,
    Campaign,
    ClipStatus,
    LedgerTransaction,
    LedgerTransactionKind,
    Notification,
    OrgRole,
    Role,
    TopUp,
    TopUpState,
    User,
)
from egocrowd.errors import Conflict, Forbidden, NotFound
from egocrowd.labels import review
from egocrowd.pay import budgets, ledger, rates
from egocrowd.pay.money import Money

_keys = itertools.count()


def usd(text: str) -> Money:
    return Money.parse(text, "USD")


def fund(books, s, campaign, amount: str):
    budgets.record_deposit(
        s, campaign, usd(amount), books.admin(s), reason="wire", idempotency_key=f"dep:{campaign.id}:{next(_keys)}"
    )


def accepted_clip(books, s, campaign, worker, *, minutes: float, idle_s: int = 0):
    """A clip of ``campaign`` whose slot took ``minutes`` (less ``idle_s``), accepted (and paid)."""
    now = utcnow()
    a = Assignment(
        campaign_id=campaign.id,
        worker_id=worker.id,
        status=AssignmentStatus.submitted,
        claimed_at=now - timedelta(minutes=minutes),
        lease_expires_at=now + timedelta(hours=1),
        submitted_at=now,
        idle_seconds=idle_s,
    )
    s.add(a)
    s.flush()
    clip = books.clip(s, campaign, worker)
    clip.assignment_id, clip.status = a.id, ClipStatus.qc_passed
    s.flush()
    review.accept_clip(s, clip, books.reviewer(s), how="review")
    return clip


def underpaid(books, s, *, n=5, minutes=15.0, auto=False, deposit="100.00"):
    """A campaign paying 1.50 a clip whose clips took ``minutes`` each: 6.00 an hour at 15."""
    c = books.new_campaign(s)
    c.pay_policy = {"auto_top_up": auto}
    fund(books, s, c, deposit)
    workers = [books.user(s) for _ in range(n)]
    clips = [accepted_clip(books, s, c, w, minutes=minutes) for w in workers]
    return c, workers, clips


def earned(s, worker) -> Money:
    return ledger.balance(s, ledger.worker_account(s, worker, "USD"))


def top_up_count(s, campaign_id) -> int:
    return len(
        [
            t
            for t in s.scalars(
                sa.select(LedgerTransaction).where(LedgerTransaction.kind == LedgerTransactionKind.top_up)
            )
            if t.refs.get("campaign_id") == campaign_id
        ]
    )


def test_the_measured_rate_uses_the_median_working_time_less_idle(books, db):
    with db.transaction() as s:
        c = books.new_campaign(s)
        fund(books, s, c, "100.00")
        for minutes, idle in ((10, 0), (20, 300), (40, 0), (9, 0), (12, 0)):  # working: 10, 15, 40, 9, 12 min
            accepted_clip(books, s, c, books.user(s), minutes=minutes, idle_s=idle)
        capture = rates.measure(s, c)[0]
        assert capture.tasks == 5 and capture.median_seconds == 12 * 60
        assert capture.rate == usd("7.50") and capture.expected == usd("30.00")  # 1.50 / 0.2 h; promised 3 min


def test_a_proposal_accepted_by_the_lab_pays_everyone_once(books, db):
    with db.transaction() as s:
        c, workers, clips = underpaid(books, s)
        assert rates.propose(s, c, min_sample=6) is None  # five clips are not a sample of six
        t = rates.propose(s, c)
        assert t is not None and t.state is TopUpState.proposed
        # 8.00 an hour for 15 minutes is 2.00: 0.50 on top of 1.50, to 5 clips
        assert (t.per_task_minor, t.tasks, t.total_minor, t.hourly_minor, t.floor_minor) == (50, 5, 250, 600, 800)
        assert rates.propose(s, c) is None  # one proposal at a time
        assert all(earned(s, w) == usd("1.50") for w in workers)

        with pytest.raises(NotFound):  # a worker does not even see the lab's top-ups
            rates.decide_by(s, workers[0], c.id, t.id, accept=True)
        lab, viewer = books.user(s, role=Role.requester), books.user(s, role=Role.requester)
        lab.organization_id, lab.org_role = c.organization_id, OrgRole.owner
        viewer.organization_id, viewer.org_role = c.organization_id, OrgRole.viewer
        s.flush()
        with pytest.raises(Forbidden):  # the lab's viewers read it, its owners and editors decide
            rates.decide_by(s, viewer, c.id, t.id, accept=True)
        rates.decide_by(s, lab, c.id, t.id, accept=True)
        assert t.state is TopUpState.paid and t.decided_by == lab.id
        assert all(earned(s, w) == usd("2.00") for w in workers)
        assert top_up_count(s, c.id) == 5
        # a double click, a retried payment, a second measurement: nothing more
        rates.decide_by(s, lab, c.id, t.id, accept=True)
        assert rates.pay_top_up(s, t, lab) == 5
        assert rates.propose(s, c) is None
        assert top_up_count(s, c.id) == 5 and all(earned(s, w) == usd("2.00") for w in workers)
        with pytest.raises(Conflict) as late:
            rates.decide_by(s, lab, c.id, t.id, accept=False)
        assert late.value.code == "pay.top_up_decided"
        notes = s.scalars(sa.select(Notification).where(Notification.kind == "pay.top_up")).all()
        assert sorted(n.user_id for n in notes) == sorted(w.id for w in workers)
        assert audit.find(s, action="pay.top_up_paid", entity_id=t.id)
        assert ledger.verify(s) == []


def test_a_declined_proposal_is_not_made_again_for_as_much(books, db):
    with db.transaction() as s:
        c, workers, _ = underpaid(books, s)
        t = rates.propose(s, c)
        rates.decide(s, books.admin(s), t, accept=False)
        assert t.state is TopUpState.declined
        assert rates.propose(s, c) is None
        assert all(earned(s, w) == usd("1.50") for w in workers)
        # slower clips raise the median (6 of 11 now took 30 minutes): a larger top-up is proposed
        for _ in range(6):
            accepted_clip(books, s, c, books.user(s), minutes=30)
        again = rates.propose(s, c)
        assert again is not None and again.per_task_minor == 250 and again.tasks == 11


def test_auto_top_up_pays_without_asking(books, db):
    with db.transaction() as s:
        c, workers, _ = underpaid(books, s, auto=True)
        t = rates.propose(s, c)
        assert t is not None and t.state is TopUpState.paid and t.decided_by is None
        assert all(earned(s, w) == usd("2.00") for w in workers)


def test_a_fair_campaign_gets_no_proposal(books, db):
    with db.transaction() as s:
        c, _, _ = underpaid(books, s, minutes=10)  # 9.00 an hour
        assert rates.propose(s, c) is None


def test_a_later_top_up_pays_only_the_difference(books, db):
    with db.transaction() as s:
        c, workers, clips = underpaid(books, s, auto=True)
        first = rates.propose(s, c)
        assert first.state is TopUpState.paid
        for _ in range(6):  # slower work: median 30 minutes, 4.00 a clip is the floor
            accepted_clip(books, s, c, books.user(s), minutes=30)
        second = rates.propose(s, c)
        assert second.state is TopUpState.paid and second.per_task_minor == 250
        assert all(earned(s, w) == usd("4.00") for w in workers)  # 1.50 + 0.50 + 2.00
        assert ledger.verify(s) == []


def test_a_short_budget_owes_the_top_up_until_a_deposit(books, db):
    with db.transaction() as s:
        c, workers, _ = underpaid(books, s, deposit="8.50")  # 5 clips (7.50) and 1.00 left: two top-ups
        t = rates.propose(s, c)
        rates.decide(s, books.admin(s), t, accept=True)
        assert t.state is TopUpState.accepted  # not all paid yet
        assert sorted(earned(s, w).minor for w in workers) == [150, 150, 150, 200, 200]
        assert audit.find(s, action="pay.top_up_owed", entity_id=t.id)
        fund(books, s, c, "5.00")
        assert t.state is TopUpState.paid
        assert all(earned(s, w) == usd("2.00") for w in workers)
        assert ledger.verify(s) == []


op = st.one_of(
    st.just(("propose",)),
    st.tuples(st.just("decide"), st.booleans()),
    st.just(("pay",)),
    st.tuples(st.just("deposit"), st.integers(1, 300)),
    st.tuples(st.just("clip"), st.sampled_from([5, 15, 30])),
)


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(op, max_size=12))
def test_any_sequence_pays_each_clip_its_top_up_exactly_once(books, db, ops):
    """Whatever the order of proposals, decisions, retried payments, deposits and new clips (each in
    its own database transaction, as requests and housekeeping rounds are), every top-up key is
    posted once, no clip gets more than the largest top-up, and a paid top-up reached every clip it
    counted."""
    with db.transaction() as s:
        c, _, clips = underpaid(books, s, deposit="7.50")  # the budget holds nothing more
        cid, clip_ids = c.id, [x.id for x in clips]
    for o in ops:
        with db.transaction() as s:
            c, admin = s.get_one(Campaign, cid), books.admin(s)
            if o[0] == "propose":
                rates.propose(s, c)
            elif o[0] == "decide":
                open_ = [t for t in rates.list_top_ups(s, cid) if t.state is TopUpState.proposed]
                if open_:
                    rates.decide(s, admin, open_[0], accept=o[1])
            elif o[0] == "pay":
                for t in rates.list_top_ups(s, cid):
                    if t.state in (TopUpState.accepted, TopUpState.paid):
                        rates.pay_top_up(s, t, admin)
            elif o[0] == "deposit":
                fund(books, s, c, Money(o[1], "USD").format())
            else:
                fund(books, s, c, "1.50")
                clip_ids.append(accepted_clip(books, s, c, books.user(s), minutes=o[1]).id)
    with db.transaction() as s:
        got = rates.topped_up(s, cid)
        top_ups = rates.list_top_ups(s, cid)
        largest = max((t.per_task_minor for t in top_ups if t.state is not TopUpState.declined), default=0)
        assert all(got.get(x, 0) <= largest for x in clip_ids)
        keys = [
            t.idempotency_key
            for t in s.scalars(
                sa.select(LedgerTransaction).where(LedgerTransaction.kind == LedgerTransactionKind.top_up)
            )
        ]
        assert len(keys) == len(set(keys))
        for t in top_ups:
            if t.state is TopUpState.paid:  # every clip it counted got up to its per-task amount
                counted = rates._paid_clips(s, cid, paid_by=t.created_at)
                assert all(got.get(x.id, 0) >= t.per_task_minor for x in counted)
        assert ledger.verify(s) == []


def test_many_accepting_and_paying_one_top_up_at_once_pay_it_once(books, db):
    """Two lab members clicking, a retried request and housekeeping's settle, all at the same moment
    on their own connections: each clip's top-up is posted once (the row lock orders the deciders,
    the ledger key the payments)."""
    from tests.pay.test_concurrency import _race

    with db.transaction() as s:
        c, workers, _ = underpaid(books, s)
        t = rates.propose(s, c)
        cid, tid, worker_ids = c.id, t.id, [w.id for w in workers]

    def click(i):
        with db.transaction() as s:
            admin = books.admin(s)
            if i % 3 == 2:
                return rates.settle_top_ups(s, s.get_one(Campaign, cid), admin)
            return rates.decide(s, admin, s.get_one(TopUp, tid), accept=True).state.value

    results = _race(click, 6)
    assert not [r for r in results if isinstance(r, Exception)], results
    with db.transaction() as s:
        assert s.get_one(TopUp, tid).state is TopUpState.paid
        assert top_up_count(s, cid) == 5
        assert all(earned(s, s.get_one(User, w)) == usd("2.00") for w in worker_ids)
        assert ledger.verify(s) == []


def test_reversing_a_clips_pay_takes_its_top_ups_back_and_a_granted_appeal_returns_them(books, db):
    """A top-up is paid because the clip's pay stood: reversing that pay reverses the top-ups too,
    and an appeal granted against the reversal brings both back, to the cent."""
    from egocrowd.pay import appeals, reversals

    with db.transaction() as s:
        c, workers, clips = underpaid(books, s, auto=True)
        first = rates.propose(s, c)
        for _ in range(6):  # a second, larger top-up reaches the same clips
            accepted_clip(books, s, c, books.user(s), minutes=30)
        assert rates.propose(s, c).state is TopUpState.paid and first.state is TopUpState.paid
        worker, clip = workers[0], clips[0]
        assert earned(s, worker) == usd("4.00") and len(rates.top_up_payments(s, clip.id)) == 2
        budget = ledger.balance(s, ledger.campaign_account(s, c))
        reversals.reverse_clip_pay(s, books.admin(s), clip.id, "The clip repeats one sent last week.")
        assert earned(s, worker) == usd("0.00")
        back = ledger.balance(s, ledger.campaign_account(s, c)) - budget
        assert back == usd("4.00")  # the 1.50 pay and both top-ups (0.50, 2.00); no fee by default
        event = audit.find(s, action="clip.pay_reversed", entity_type="clip", entity_id=clip.id)[0]
        assert len(event.payload["top_up_reversals"]) == 2
        assert earned(s, workers[1]) == usd("4.00")  # nobody else's
        row = appeals.appeal(s, worker, clip.id, "It is another shirt: look at the sleeves.")
        appeals.decide(s, books.admin(s), row.id, "overturn", "Agreed.")
        assert earned(s, worker) == usd("4.00")
        assert ledger.balance(s, ledger.campaign_account(s, c)) == budget
        assert ledger.verify(s) == []
