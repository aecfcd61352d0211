"""Claiming slots: leases (with explicit clocks, never sleeps), caps, countries, running out, giving back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from egocrowd.campaigns import assignments
from egocrowd.db.models import Assignment, Campaign, User
from egocrowd.errors import Conflict, Gone
from tests.platform.helpers import API, assert_problem, claim, make_user, open_campaign, publish_consent, sign

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def lab(db):
    publish_consent(db)
    return make_user(db, "requester", org="Lab A")


def worker(client, db, country="KE"):
    w = make_user(db, "worker", country=country)
    sign(client, w)
    return w


def _claim_at(db, worker_id: int, cid: int, now: datetime, lease=HOUR) -> int:
    with db.transaction() as s:
        return assignments.claim(s, s.get(User, worker_id), cid, lease=lease, now=now).id


def _slots(db, cid) -> int:
    with db.transaction() as s:
        return s.get(Campaign, cid).slots_taken


def test_lease_expiry_frees_the_slot(client, db, lab):
    cid = open_campaign(client, lab, target_clips=1)["id"]
    w1, w2 = worker(client, db), worker(client, db)
    aid = _claim_at(db, w1.id, cid, T0)
    assert _slots(db, cid) == 1

    with pytest.raises(Conflict) as e:  # still leased half an hour later
        _claim_at(db, w2.id, cid, T0 + HOUR / 2)
    assert e.value.code == "assignment.no_slots"
    with db.transaction() as s:
        assert assignments.expire_leases(s, now=T0 + HOUR - timedelta(seconds=1)) == 0
        assignments.require_active_lease(s, s.get(User, w1.id), aid, now=T0 + HOUR / 2)
    with db.transaction() as s, pytest.raises(Gone) as e:
        assignments.require_active_lease(s, s.get(User, w1.id), aid, now=T0 + HOUR)
    assert e.value.code == "assignment.lease_expired"

    with db.transaction() as s:
        assert assignments.expire_leases(s, now=T0 + HOUR) == 1
        assert assignments.expire_leases(s, now=T0 + HOUR) == 0  # a second sweep frees nothing twice
    with db.transaction() as s:
        a = s.get(Assignment, aid)
        assert a.status.value == "expired" and a.closed_at == T0 + HOUR
    assert _slots(db, cid) == 0
    aid2 = _claim_at(db, w2.id, cid, T0 + HOUR)
    assert aid2 != aid and _slots(db, cid) == 1


def test_claim_itself_reclaims_expired_leases(client, db, lab):
    cid = open_campaign(client, lab, target_clips=1)["id"]
    w1, w2 = worker(client, db), worker(client, db)
    first = _claim_at(db, w1.id, cid, T0)
    _claim_at(db, w2.id, cid, T0 + 2 * HOUR)  # no sweeper ran: the claim expires the stale lease
    with db.transaction() as s:
        assert s.get(Assignment, first).status.value == "expired"
        assert s.get(Campaign, cid).slots_taken == 1


def test_per_worker_cap(client, db, lab, settings):
    assert settings.max_open_assignments == 3
    cid = open_campaign(client, lab, target_clips=10)["id"]
    w = worker(client, db)
    ids = [claim(client, w, cid).json()["id"] for _ in range(3)]
    body = assert_problem(claim(client, w, cid), 409, "assignment.worker_cap")
    assert body["limit"] == 3
    assert client.post(f"{API}/assignments/{ids[0]}/release", headers=w.headers).status_code == 200
    assert claim(client, w, cid).status_code == 201
    # expired leases do not count against the cap
    with db.transaction() as s:
        for aid in ids[1:]:
            s.get(Assignment, aid).lease_expires_at = datetime(2000, 1, 1, tzinfo=UTC)
    assert claim(client, w, cid).status_code == 201


def test_country_restriction(client, db, lab):
    cid = open_campaign(client, lab, allowed_countries=["UG", "TZ"])["id"]
    ke, ug, nowhere = worker(client, db, "KE"), worker(client, db, "UG"), worker(client, db, None)
    for w in (ke, nowhere):
        assert_problem(claim(client, w, cid), 403, "campaign.country_not_allowed")
        assert client.get(f"{API}/campaigns", headers=w.headers).json()["items"] == []
    assert [c["id"] for c in client.get(f"{API}/campaigns", headers=ug.headers).json()["items"]] == [cid]
    assert claim(client, ug, cid).status_code == 201


def test_no_slots_left(client, db, lab):
    cid = open_campaign(client, lab, target_clips=2)["id"]
    for _ in range(2):
        assert claim(client, worker(client, db), cid).status_code == 201
    late = worker(client, db)
    assert_problem(claim(client, late, cid), 409, "assignment.no_slots")
    assert client.get(f"{API}/assignments", headers=late.headers).json()["items"] == []
    prog = client.get(f"{API}/campaigns/{cid}/progress", headers=lab.headers).json()
    assert prog["active"] == 2 and prog["slots_left"] == 0


@pytest.mark.parametrize("state", ["paused", "closed"])
def test_no_claims_unless_open(client, db, lab, state):
    cid = open_campaign(client, lab)["id"]
    w = worker(client, db)
    client.post(f"{API}/campaigns/{cid}/status", json={"status": state}, headers=lab.headers)
    assert_problem(claim(client, w, cid), 404, "campaign.not_found")


def test_release(client, db, lab):
    cid = open_campaign(client, lab, target_clips=1)["id"]
    w, other = worker(client, db), worker(client, db)
    aid = claim(client, w, cid).json()["id"]
    assert_problem(client.post(f"{API}/assignments/{aid}/release", headers=other.headers), 404, "assignment.not_found")
    r = client.post(f"{API}/assignments/{aid}/release", headers=w.headers)
    assert r.status_code == 200 and r.json()["status"] == "released" and r.json()["closed_at"]
    assert_problem(client.post(f"{API}/assignments/{aid}/release", headers=w.headers), 409, "assignment.not_active")
    assert _slots(db, cid) == 0
    assert claim(client, other, cid).status_code == 201
    prog = client.get(f"{API}/campaigns/{cid}/progress", headers=lab.headers).json()
    assert (prog["active"], prog["released"], prog["slots_taken"]) == (1, 1, 1)


def test_my_work_page(client, db, lab):
    from tests.platform.test_access import page_login

    cid = open_campaign(client, lab, title="Open a jar")["id"]
    w = worker(client, db)
    token = page_login(client, w)
    r = client.post(f"/campaigns/{cid}/claim", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/assignments?m=claimed"
    page = client.get("/assignments?m=claimed").text
    assert "Open a jar" in page and "Slot claimed" in page and "Give back" in page
    aid = client.get(f"{API}/assignments").json()["items"][0]["id"]
    # giving back asks first, says what will happen, and changes nothing until confirmed
    r = client.post(f"/assignments/{aid}/release", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 200 and "Give back your slot in “Open a jar”?" in r.text
    assert 'name="confirmed" value="yes"' in r.text and 'href="/assignments"' in r.text
    assert client.get(f"{API}/assignments/{aid}").json()["status"] == "active"
    r = client.post(
        f"/assignments/{aid}/release", data={"csrf_token": token, "confirmed": "yes"}, follow_redirects=False
    )
    assert r.status_code == 303
    assert client.get(f"{API}/assignments/{aid}").json()["status"] == "released"
    assert '<span class="pill released">ended</span>' in client.get("/assignments").text  # plain words


def test_worker_pages_through_campaigns_of_their_country(client, db, lab):
    ke_ok = [open_campaign(client, lab, title=f"Everywhere {i}")["id"] for i in range(3)]
    for i in range(4):  # newer, and closed to Kenya: they must not eat the worker's pages
        open_campaign(client, lab, title=f"Uganda only {i}", allowed_countries=["UG"])
    w = worker(client, db, "KE")

    def page(limit, offset):
        r = client.get(f"{API}/campaigns", params={"limit": limit, "offset": offset}, headers=w.headers)
        return [c["id"] for c in r.json()["items"]]

    assert page(2, 0) == ke_ok[::-1][:2]
    assert page(2, 2) == ke_ok[::-1][2:]
    assert page(2, 4) == []
    assert page(100, 0) == ke_ok[::-1]
