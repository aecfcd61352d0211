"""Budgets through the doors (API and the campaign page), both backends: a campaign opens only when
funded, an admin's deposit posts once per key, bad amounts are clear problems, the lab sees its
budget and workers do not."""

from __future__ import annotations

import re

import pytest

from egocrowd.pay import ledger
from tests.platform.helpers import (
    API,
    assert_problem,
    create_campaign,
    make_user,
    publish_consent,
    set_status,
)
from tests.platform.test_access import page_login


@pytest.fixture
def people(db):
    publish_consent(db)
    return {
        "lab": make_user(db, "requester", org="Lab Pay"),
        "admin": make_user(db, "admin"),
        "worker": make_user(db, "worker"),
        "other_lab": make_user(db, "requester", org="Lab Other"),
    }


def _deposit(client, actor, cid, amount="7.50", key="k1", currency="USD"):
    body = {"amount": amount, "currency": currency, "reason": "wire OR-1", "idempotency_key": key}
    return client.post(f"{API}/campaigns/{cid}/deposits", json=body, headers=actor.headers)


def test_a_campaign_opens_only_when_its_budget_covers_the_target(client, db, people):
    lab, admin = people["lab"], people["admin"]
    cid = create_campaign(client, lab)["id"]  # 5 clips at 1.50
    body = assert_problem(set_status(client, lab, cid, "open", funded=False), 409, "campaign.budget_short")
    assert body["missing"] == "7.50" and body["currency"] == "USD" and "Deposit 7.50 USD more" in body["detail"]
    budget = client.get(f"{API}/campaigns/{cid}/budget", headers=lab.headers).json()
    assert budget["short"] == "7.50" and budget["deposited"] == "0.00" and budget["cost_per_clip"] == "1.50"

    assert_problem(_deposit(client, lab, cid), 403, "auth.forbidden")  # only an admin records money
    assert_problem(_deposit(client, admin, cid, amount="7.5x"), 422, "money.bad_amount")
    assert_problem(_deposit(client, admin, cid, amount="0.001"), 422, "money.sub_minor")
    assert_problem(_deposit(client, admin, cid, amount="-1.00"), 422, "money.bad_amount")
    assert_problem(_deposit(client, admin, cid, currency="EUR"), 422, "ledger.currency_mismatch")
    assert_problem(_deposit(client, admin, 999_999), 404, "campaign.not_found")

    first = _deposit(client, admin, cid, amount="5.00")
    assert first.status_code == 201, first.text
    again = _deposit(client, admin, cid, amount="5.00")  # the same form sent twice
    assert again.status_code == 201 and again.json()["transaction_id"] == first.json()["transaction_id"]
    assert_problem(_deposit(client, admin, cid, amount="6.00"), 409, "ledger.idempotency_conflict")
    assert again.json()["budget"]["deposited"] == "5.00" and again.json()["budget"]["short"] == "2.50"
    assert_problem(set_status(client, lab, cid, "open", funded=False), 409, "campaign.budget_short")

    assert _deposit(client, admin, cid, amount="2.50", key="k2").status_code == 201
    assert set_status(client, lab, cid, "open", funded=False).status_code == 200
    # live: the target rises only as far as the budget reaches
    r = client.patch(f"{API}/campaigns/{cid}", json={"target_clips": 6}, headers=lab.headers)
    assert assert_problem(r, 409, "campaign.budget_short")["missing"] == "1.50"
    assert client.get(f"{API}/campaigns/{cid}", headers=lab.headers).json()["target_clips"] == 5
    r = client.patch(f"{API}/campaigns/{cid}", json={"target_clips": 4}, headers=lab.headers)  # lowering: fine
    assert r.status_code == 200, r.text
    # paused then resumed: still covered
    assert set_status(client, lab, cid, "paused").status_code == 200
    assert set_status(client, lab, cid, "open", funded=False).status_code == 200
    with db.transaction() as s:
        assert ledger.verify(s) == []


def test_only_the_lab_and_admins_see_a_budget(client, people):
    cid = create_campaign(client, people["lab"])["id"]
    assert client.get(f"{API}/campaigns/{cid}/budget", headers=people["admin"].headers).status_code == 200
    for who in ("worker", "other_lab"):
        r = client.get(f"{API}/campaigns/{cid}/budget", headers=people[who].headers)
        assert_problem(r, 404, "campaign.not_found")
    assert client.get(f"{API}/campaigns/{cid}/budget").status_code == 401


def test_the_campaign_page_shows_the_budget_and_takes_an_admins_deposit(client, people):
    cid = create_campaign(client, people["lab"])["id"]
    page_login(client, people["lab"])
    page = client.get(f"/campaigns/{cid}").text
    assert 'data-budget="short">USD\xa07.50 before the campaign can open' in page
    assert 'id="deposit-form"' not in page  # the lab sees its money, the admin records it
    client.cookies.clear()
    token = page_login(client, people["admin"])
    page = client.get(f"/campaigns/{cid}").text
    assert 'id="deposit-form"' in page and 'value="7.50"' in page
    key = re.search(r'name="idempotency_key" value="([0-9a-f]+)"', page).group(1)
    form = {"csrf_token": token, "idempotency_key": key, "amount": "7.50", "reason": "wire OR-7"}
    for _ in range(2):  # a double click posts once
        r = client.post(f"/campaigns/{cid}/deposits", data=form, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/campaigns/{cid}?m=deposited"
    page = client.get(f"/campaigns/{cid}?m=deposited").text
    assert "Deposit recorded." in page
    assert 'data-budget="deposited">USD\xa07.50<' in page and "nothing: the target is covered" in page
    r = client.post(f"/campaigns/{cid}/deposits", data={**form, "csrf_token": "nope", "idempotency_key": "x"})
    assert r.status_code == 403  # CSRF
    r = client.post(f"/campaigns/{cid}/deposits", data={**form, "amount": "lots", "idempotency_key": "y"})
    assert r.status_code == 422 and 'data-code="money.bad_amount"' in r.text
