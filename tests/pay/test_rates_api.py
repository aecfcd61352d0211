"""Pay floors, exchange rates and top-ups through the doors (API and pages), both backends: admins
edit the tables (clear problems for bad input), the lab reads its campaign's rates and accepts a
top-up on the campaign page, and nobody else sees them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from egocrowd.db.models import Assignment, AssignmentStatus, Campaign, Clip, ClipStatus, TopUpState, User
from egocrowd.labels import review
from egocrowd.pay import rates
from tests.platform.helpers import (
    API,
    assert_problem,
    create_campaign,
    fund,
    make_user,
    open_campaign,
    publish_consent,
    sign,
)
from tests.platform.test_access import page_login


@pytest.fixture
def people(db):
    publish_consent(db)
    return {
        "lab": make_user(db, "requester", org="Lab Rates"),
        "admin": make_user(db, "admin"),
        "worker": make_user(db, "worker", country="KE"),
    }


def test_admins_edit_floors_and_rates_through_the_api(client, people):
    admin, lab = people["admin"], people["lab"]
    floors = client.get(f"{API}/pay/floors", headers=admin.headers).json()
    assert floors == [
        {
            "country": "*",
            "currency": "USD",
            "hourly": "8.00",
            "source": floors[0]["source"],
            "updated_at": floors[0]["updated_at"],
        }
    ]
    body = {"currency": "KES", "hourly": "300.00", "source": "Kenya's Regulation of Wages Order 2024"}
    r = client.put(f"{API}/pay/floors/ke", json=body, headers=admin.headers)
    assert r.status_code == 200 and r.json()["country"] == "KE" and r.json()["hourly"] == "300.00"
    assert_problem(
        client.put(f"{API}/pay/floors/KE", json={**body, "hourly": "3.001"}, headers=admin.headers),
        422,
        "money.sub_minor",
    )
    assert_problem(
        client.put(f"{API}/pay/floors/KE", json={**body, "currency": "QQQ"}, headers=admin.headers),
        422,
        "money.unknown_currency",
    )
    assert_problem(
        client.put(f"{API}/pay/floors/KE", json={**body, "source": " "}, headers=admin.headers),
        422,
        "validation.failed",
    )
    assert_problem(client.put(f"{API}/pay/floors/KEN", json=body, headers=admin.headers), 422, "validation.failed")
    assert_problem(client.put(f"{API}/pay/floors/KE", json=body, headers=lab.headers), 403, "auth.forbidden")

    rate = {"base": "USD", "quote": "KES", "rate": "129.50", "source": "Central Bank of Kenya, 2026-11-30"}
    r = client.post(f"{API}/pay/exchange-rates", json=rate, headers=admin.headers)
    assert r.status_code == 201 and r.json()["rate"] == "129.50"
    assert_problem(
        client.post(f"{API}/pay/exchange-rates", json={**rate, "rate": "-1"}, headers=admin.headers),
        422,
        "pay.bad_rate",
    )
    assert_problem(
        client.post(f"{API}/pay/exchange-rates", json={**rate, "quote": "USD"}, headers=admin.headers),
        422,
        "pay.bad_rate",
    )
    got = client.get(f"{API}/pay/exchange-rates", headers=admin.headers).json()
    assert [(x["base"], x["quote"], x["rate"]) for x in got] == [("USD", "KES", "129.50")]


def test_a_campaign_for_kenya_opens_only_above_kenyas_floor(client, db, people):
    admin, lab = people["admin"], people["lab"]
    client.put(
        f"{API}/pay/floors/KE",
        json={"currency": "KES", "hourly": "2000.00", "source": "a test floor above the default"},
        headers=admin.headers,
    )
    cid = create_campaign(client, lab, pay_cents=150, expected_minutes=4, allowed_countries=["KE"])["id"]  # 22.50/h
    from tests.platform.helpers import set_status

    body = assert_problem(set_status(client, lab, cid, "open"), 409, "pay.no_exchange_rate")
    assert (body["base"], body["quote"]) == ("KES", "USD")
    client.post(
        f"{API}/pay/exchange-rates",
        json={"base": "USD", "quote": "KES", "rate": "80", "source": "test"},
        headers=admin.headers,
    )
    body = assert_problem(set_status(client, lab, cid, "open"), 409, "campaign.below_pay_floor")
    assert body["countries"] == ["KE"] and body["floor"] == "25.00" and body["rate"] == "22.50"
    view = client.get(f"{API}/campaigns/{cid}/pay-rates", headers=lab.headers).json()
    assert view["expected_hourly_rate"] == "22.50" and view["floors"] == {"KE": "25.00"}
    client.patch(f"{API}/campaigns/{cid}", json={"pay_cents": 170}, headers=lab.headers)
    assert set_status(client, lab, cid, "open").status_code == 200


def _slow_accepted_clips(db, client, lab, worker, cid, n=5, minutes=15):
    """``n`` clips of campaign ``cid`` that each took ``minutes``, accepted (and paid)."""
    sign(client, worker)
    with db.transaction() as s:
        c = s.get_one(Campaign, cid)
        reviewer = s.scalar(sa.select(User).where(User.role == "admin").limit(1))
        for i in range(n):
            a = Assignment(
                campaign_id=cid,
                worker_id=worker.id,
                status=AssignmentStatus.submitted,
                claimed_at=c.created_at,
                lease_expires_at=c.created_at + timedelta(hours=1),
                submitted_at=c.created_at + timedelta(minutes=minutes),
            )
            s.add(a)
            s.flush()
            clip = Clip(
                campaign_id=cid,
                worker_id=worker.id,
                assignment_id=a.id,
                source_ref=f"test:rates:{cid}:{i}",
                sha256=f"{cid:032x}{i:032x}",
                size=1,
                original_name="c.mp4",
                status=ClipStatus.qc_passed,
            )
            s.add(clip)
            s.flush()
            review.accept_clip(s, clip, reviewer, how="review")


def test_the_lab_accepts_a_top_up_on_the_campaign_page(client, db, people):
    lab, worker = people["lab"], people["worker"]
    cid = open_campaign(client, lab, target_clips=5)["id"]
    _slow_accepted_clips(db, client, lab, worker, cid)
    with db.transaction() as s:
        t = rates.propose(s, s.get_one(Campaign, cid))
        assert t is not None
        tid = t.id
    view = client.get(f"{API}/campaigns/{cid}/pay-rates", headers=lab.headers).json()
    capture = view["measured"][0]
    assert capture["hourly_rate"] == "6.00" and capture["median_minutes"] == "15.0" and capture["tasks"] == 5
    assert view["top_ups"][0]["state"] == "proposed" and view["top_ups"][0]["per_task"] == "0.50"
    assert_problem(client.get(f"{API}/campaigns/{cid}/pay-rates", headers=worker.headers), 404, "campaign.not_found")

    page_login(client, lab)
    html = client.get(f"/campaigns/{cid}").text
    assert "Hourly pay" in html and "under the floor" in html and f'data-accept-top-up="{tid}"' in html
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    r = client.post(f"/campaigns/{cid}/top-ups/{tid}/accept", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303, r.text
    # the target's 7.50 is spent: the top-up is owed until the lab deposits more
    again = client.post(f"{API}/campaigns/{cid}/top-ups/{tid}/accept", headers=lab.headers)  # a second click
    assert again.status_code == 200 and again.json()["state"] == "accepted"
    fund(db, cid, "2.50")
    assert_problem(
        client.post(f"{API}/campaigns/{cid}/top-ups/{tid}/decline", headers=lab.headers), 409, "pay.top_up_decided"
    )
    with db.transaction() as s:
        assert rates.list_top_ups(s, cid)[0].state is TopUpState.paid
    mine = client.get(f"{API}/me/earnings", headers=worker.headers).json()
    assert mine["balances"] == [{"amount": "10.00", "currency": "USD"}]  # 5 × (1.50 + 0.50)


def test_the_admin_pay_page_sets_a_floor_and_a_rate(client, people):
    admin = people["admin"]
    page_login(client, admin)
    html = client.get("/admin/pay").text
    assert "Pay floors" in html and 'data-floor="*"' in html
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    r = client.post(
        "/admin/pay/floors",
        data={"csrf_token": csrf, "country": "NG", "currency": "NGN", "hourly": "1000.00", "source": "test source"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    bad = client.post(
        "/admin/pay/rates", data={"csrf_token": csrf, "base": "USD", "quote": "NGN", "rate": "lots", "source": "x"}
    )
    assert bad.status_code == 422 and "is not a rate" in bad.text
    r = client.post(
        "/admin/pay/rates",
        data={"csrf_token": csrf, "base": "USD", "quote": "NGN", "rate": "1550.25", "source": "CBN"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    html = client.get("/admin/pay").text
    assert 'data-floor="NG"' in html and "NGN\xa01,000.00" in html and "= 1,550.25 NGN" in html
    assert client.get("/admin/pay", headers=people["lab"].headers).status_code in (403, 303, 401)


def test_automatic_top_ups_are_a_campaign_setting_that_only_goes_on_once_live(client, people):
    lab = people["lab"]
    page_login(client, lab)
    form = client.get("/campaigns/new").text
    assert 'name="pay_policy_auto_top_up"' in form and "Top up pay automatically" in form
    cid = open_campaign(client, lab)["id"]
    got = client.get(f"{API}/campaigns/{cid}", headers=lab.headers).json()
    assert got["pay_policy"] == {"auto_top_up": False}
    on = client.patch(f"{API}/campaigns/{cid}", json={"pay_policy": {"auto_top_up": True}}, headers=lab.headers)
    assert on.status_code == 200 and on.json()["pay_policy"] == {"auto_top_up": True}
    off = client.patch(f"{API}/campaigns/{cid}", json={"pay_policy": {"auto_top_up": False}}, headers=lab.headers)
    body = assert_problem(off, 409, "campaign.unfair_change")
    assert body["field"] == "pay_policy.auto_top_up"
