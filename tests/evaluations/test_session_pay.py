"""Pay for long field sessions (egocrowd.pay.sessions, docs/evaluations.md "Pay"), both backends: an
evaluation's hourly rate pays each accepted session once (kind session_work), capped, rounded up;
owed when the budget is short and settled by the next deposit; audited; counted by the budget; shown
on the worker's earnings page and API; set on the campaign form."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from egocrowd.db.models import AuditEvent, Campaign, Evaluation, FieldSession, LedgerTransaction, User
from egocrowd.pay import budgets, earnings, ledger, sessions
from egocrowd.pay.money import Money
from tests.evaluations.test_field_sessions import session_log, upload
from tests.platform.helpers import API, fund, make_user, open_campaign, publish_consent, sign
from tests.platform.test_access import page_login
from tests.support.world import take_budget_back


@pytest.mark.parametrize(
    ("duration_s", "hour_cents", "max_hours", "cents"),
    [
        (3600, 1200, 2, 1200),  # an hour at 12.00
        (80, 1200, 2, 27),  # 26.67 cents: rounded up, the worker's favour
        (1, 1, 2, 1),  # a second at a cent an hour is still a cent
        (30 * 3600, 1200, 2, 2400),  # a forged day-long log is paid the cap
        (1e12, 100_000, 24, 2_400_000),
        (0, 1200, 2, 0),
        (None, 1200, 2, 0),  # no duration, nothing to pay
        (-5, 1200, 2, 0),
        (float("nan"), 1200, 2, 0),
        (3600, 0, 2, 0),  # 0: sessions unpaid, as before
    ],
)
def test_session_pay_is_exact_capped_and_rounded_up(duration_s, hour_cents, max_hours, cents):
    got = sessions.session_pay_cents(duration_s, hour_cents, max_hours)
    assert got == cents and isinstance(got, int)


@pytest.fixture
def world(client, db):
    """An evaluation campaign that wants no clips (its budget holds only what the test deposits)
    paying 36.00 an hour of session, at most 1 hour."""
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab S")
    cid = open_campaign(client, lab, db=db, target_clips=0)["id"]
    body = {
        "tasks": [{"task": "clear the table"}],
        "environments": ["kitchen"],
        "session_hour_cents": 3600,
        "session_max_hours": 1,
    }
    r = client.post(f"{API}/campaigns/{cid}/evaluation", json=body, headers=lab.headers)
    assert r.status_code == 201, r.text
    assert (r.json()["session_hour_cents"], r.json()["session_max_hours"]) == (3600, 1)
    for name in ("alpha", "beta"):
        r = client.post(
            f"{API}/campaigns/{cid}/evaluation/policies", json={"name": name, "kind": "physical"}, headers=lab.headers
        )
        assert r.status_code == 201, r.text
    worker = make_user(db, "worker")
    sign(client, worker)
    return {"lab": lab, "cid": cid, "worker": worker}


def _sent(client, world, session_id: str) -> FieldSession:
    r = upload(client, world["worker"], world["cid"], session_log(session_id, "alpha"))
    assert r.status_code == 201, r.text
    return int(r.headers["Egocrowd-Field-Session-Id"])


def _actions(db, entity_id: int) -> list[str]:
    with db.transaction() as s:
        q = sa.select(AuditEvent.action).where(
            AuditEvent.entity_type == "field_session", AuditEvent.entity_id == str(entity_id)
        )
        return list(s.scalars(q.order_by(AuditEvent.id)))


def _earned(db, actor) -> Money:
    with db.transaction() as s:
        return ledger.balance(s, ledger.worker_account(s, s.get_one(User, actor.id), "USD"))


def test_an_accepted_session_is_paid_once_owed_when_short_then_settled(client, db, world):
    cid, worker = world["cid"], world["worker"]
    fund(db, cid, "1.00")
    first = _sent(client, world, "s-1")
    with db.transaction() as s:
        row = s.get_one(FieldSession, first)
        # what the log says it lasted, at 36.00 an hour (a cent a second), rounded up
        expected = sessions.session_pay_cents(row.duration_s, 3600, 1)
        assert row.duration_s and row.pay_cents == expected > 0
        txn = s.scalar(
            sa.select(LedgerTransaction).where(LedgerTransaction.idempotency_key == f"field_session:{first}:accepted")
        )
        assert txn is not None and txn.kind.value == "session_work"
        assert txn.refs == {"field_session_id": first, "campaign_id": cid, "pay_minor": expected, "fee_bps": 0}
        again = sessions.pay_for_session(s, row, None)  # a retry posts nothing more
        assert again is not None and again.id == txn.id
    assert _earned(db, worker) == Money(expected, "USD")
    assert "field_session.accepted" in _actions(db, first)
    # one payment for the one session so far
    with db.transaction() as s:
        n = s.scalar(
            sa.select(sa.func.count()).select_from(LedgerTransaction).where(LedgerTransaction.kind == "session_work")
        )
        assert n == 1
        take_budget_back(s, s.get_one(Campaign, cid), leave=Money(0, "USD"))
    owed = _sent(client, world, "s-2")
    assert _earned(db, worker) == Money(expected, "USD")
    assert "field_session.pay_owed" in _actions(db, owed)
    with db.transaction() as s:
        assert [x.id for x in sessions.owed_sessions(s, cid)] == [owed]
        b = budgets.budget(s, s.get_one(Campaign, cid))
        # the budget counts the owed session exactly, and shows the most one session can cost
        assert (b.owed_sessions, b.owed) == (1, Money(expected, "USD"))
        assert b.cost_per_session == Money(3600, "USD") and not b.covered
        lines = earnings.earnings(s, s.get_one(User, worker.id)).sessions
        assert [(x.field_session_id, x.state, x.amount.minor) for x in lines] == [
            (owed, "owed", expected),
            (first, "approved", expected),
        ]
    page = client.get("/earnings", headers=worker.headers).text
    assert (
        f'data-session="{owed}" data-state="owed"' in page and f'data-session="{first}" data-state="approved"' in page
    )
    lab_page = client.get(f"/campaigns/{cid}", headers=world["lab"].headers).text  # the lab sees what it owes
    assert 'data-budget="owed-sessions"' in lab_page and 'data-budget="per-session"' in lab_page
    assert 'data-budget="owed-sessions"' not in client.get(f"/campaigns/{cid}", headers=worker.headers).text
    fund(db, cid, "5.00")  # the deposit pays what is owed
    assert _earned(db, worker) == Money(2 * expected, "USD")
    with db.transaction() as s:
        assert sessions.owed_sessions(s, cid) == []
        assert budgets.budget(s, s.get_one(Campaign, cid)).owed_sessions == 0
        assert ledger.verify(s) == []
    r = client.get(f"{API}/me/earnings", headers=worker.headers)
    money = Money(expected, "USD").format()
    assert [(x["field_session_id"], x["state"], x["amount"], x["currency"]) for x in r.json()["sessions"]] == [
        (owed, "approved", money, "USD"),
        (first, "approved", money, "USD"),
    ]
    r = client.get(f"{API}/campaigns/{cid}/budget", headers=world["lab"].headers)
    assert r.status_code == 200 and r.json()["owed_sessions"] == 0 and r.json()["cost_per_session"] == "36.00"


def test_a_refused_log_and_an_unpaid_evaluation_earn_nothing(client, db, world):
    cid, worker = world["cid"], world["worker"]
    fund(db, cid, "10.00")
    r = upload(client, worker, cid, b'{"type": "session"}\nnot json\n')
    assert r.status_code == 422
    with db.transaction() as s:
        ev = s.scalar(sa.select(Evaluation).where(Evaluation.campaign_id == cid))
        assert s.scalar(sa.select(FieldSession.pay_cents).where(FieldSession.status == "rejected")) == 0
        ev.session_hour_cents = 0  # the lab stops paying per hour: sessions from now on earn nothing
    unpaid = _sent(client, world, "s-3")
    with db.transaction() as s:
        assert s.get_one(FieldSession, unpaid).pay_cents == 0
        assert sessions.pay_for_session(s, s.get_one(FieldSession, unpaid), None) is None
        assert earnings.earnings(s, s.get_one(User, worker.id)).sessions == []
    assert _earned(db, worker) == Money(0, "USD")


def test_the_campaign_form_sets_the_hourly_rate_and_cap(client, db, world):
    from tests.evaluations.test_campaign_form import EVAL
    from tests.platform.test_campaigns import _form

    lab, cid = world["lab"], world["cid"]
    token = page_login(client, lab)
    form = client.get(f"/campaigns/{cid}/edit").text
    assert 'name="eval_session_pay"' in form and 'value="36.00"' in form and 'name="eval_session_hours"' in form
    data = {**_form(target_clips="0"), **EVAL, "eval_session_pay": "12.345", "eval_session_hours": "3"}
    bad = client.post(f"/campaigns/{cid}/edit", data={**data, "csrf_token": token})
    assert bad.status_code == 422 and 'id="eval_session_pay-error"' in bad.text  # no fractions of a cent
    bad = client.post(
        f"/campaigns/{cid}/edit",
        data={**data, "eval_session_pay": "12.50", "eval_session_hours": "25", "csrf_token": token},
    )
    assert bad.status_code == 422 and 'id="eval_session_hours-error"' in bad.text
    r = client.post(
        f"/campaigns/{cid}/edit",
        data={**data, "eval_session_pay": "12.50", "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    with db.transaction() as s:
        ev = s.scalar(sa.select(Evaluation).where(Evaluation.campaign_id == cid))
        assert (ev.session_hour_cents, ev.session_max_hours) == (1250, 3)
