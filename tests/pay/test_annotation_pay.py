"""Paying annotators (egocrowd.pay.answers) on SQLite and PostgreSQL: a submitted answer of a
campaign that pays for annotation is paid once from its budget, a too-fast one is not, the idle time
the page saw is kept within the task's span, and the budget counts annotation in its cost."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from egocrowd.db.models import AnnotationTask, Campaign, LedgerTransaction, User
from egocrowd.labels import tasks
from egocrowd.pay import answers, budgets, ledger, rates
from egocrowd.pay.money import Money
from tests.labels.annotating import accepted_clip, annotation_campaign, annotator, span
from tests.platform.helpers import make_user
from tests.support.world import take_budget_back


@pytest.fixture
def paid_setup(world, app, tmp_path):
    staff = make_user(world.db, "reviewer")
    cid = annotation_campaign(world, pay_cents=20, per_clip=2)
    clips = [accepted_clip(world.db, app.state.blobs, tmp_path, cid, world.worker.id) for _ in range(2)]
    return world, staff, cid, clips


def _answer(db, actor, *, after_s: float, idle: int | None = None):
    with db.transaction() as s:
        user = s.get_one(User, actor.id)
        t = tasks.claim_task(s, user)
        done = tasks.submit(
            s,
            user,
            t.id,
            [span(100, 2000)],
            now=t.claimed_at + timedelta(seconds=after_s),
            idle_seconds=idle,
        )
        return done.id


def _earned(db, actor) -> Money:
    with db.transaction() as s:
        return ledger.balance(s, ledger.worker_account(s, s.get_one(User, actor.id), "USD"))


def test_an_answer_is_paid_once_and_a_too_fast_one_not_at_all(paid_setup):
    world, staff, cid, _ = paid_setup
    a, b = annotator(world.db, staff), annotator(world.db, staff)
    first = _answer(world.db, a, after_s=40, idle=10)
    assert _earned(world.db, a) == Money(20, "USD")
    with world.db.transaction() as s:
        task = s.get_one(AnnotationTask, first)
        assert task.idle_seconds == 10
        again = answers.pay_for_answer(s, task, None)  # a retry: the same posting
        assert again is not None and again.idempotency_key == f"annotation:{first}:accepted"
        n = s.scalar(sa.select(sa.func.count()).where(LedgerTransaction.idempotency_key == again.idempotency_key))
        assert n == 1 and again.kind.value == "annotation_accepted"
        assert rates.working_seconds(task.claimed_at, task.submitted_at, task.idle_seconds) == 30
    fast = _answer(world.db, b, after_s=0.5, idle=999)  # faster than the 3 s clip plays: not paid
    assert _earned(world.db, b) == Money(0, "USD")
    with world.db.transaction() as s:
        task = s.get_one(AnnotationTask, fast)
        assert "too_fast" in task.flags and task.idle_seconds == 0  # idle kept within the 0.5 s span
        assert answers.pay_for_answer(s, task, None) is None
        assert [t.id for t in answers.payable_tasks(s, cid)] == [first]
        assert ledger.verify(s) == []


def test_the_budget_counts_annotation_and_a_short_budget_owes_it_until_a_deposit(paid_setup):
    world, staff, cid, _ = paid_setup
    with world.db.transaction() as s:
        c = s.get_one(Campaign, cid)
        # a clip costs its 1.50 and two answers at 0.20
        assert budgets.cost_per_clip(c) == Money(190, "USD")
        # spend the budget down to 0.10: the next answer cannot be paid
        take_budget_back(s, c, leave=Money(10, "USD"))
    a = annotator(world.db, staff)
    owed = _answer(world.db, a, after_s=30)
    assert _earned(world.db, a) == Money(0, "USD")
    with world.db.transaction() as s:
        assert [t.id for t in answers.owed_answers(s, cid)] == [owed]
        c = s.get_one(Campaign, cid)
        admin = s.scalar(sa.select(User).where(User.role == "admin").limit(1))
        budgets.record_deposit(s, c, Money(100, "USD"), admin, reason="top", idempotency_key=f"more:{cid}")
        assert answers.owed_answers(s, cid) == []
    assert _earned(world.db, a) == Money(20, "USD")
