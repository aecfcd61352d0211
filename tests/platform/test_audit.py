"""Every state change writes its audit event in the same transaction; refused changes write none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from egocrowd import audit
from egocrowd.campaigns import assignments
from egocrowd.db.models import Assignment, AuditEvent, User
from tests.platform.helpers import (
    API,
    claim,
    create_campaign,
    make_user,
    open_campaign,
    publish_consent,
    set_status,
    sign,
)


def _events(db, after: int = 0) -> list[tuple[str, str, str]]:
    with db.transaction() as s:
        rows = s.scalars(sa.select(AuditEvent).where(AuditEvent.id > after).order_by(AuditEvent.id))
        return [(e.action, e.entity_type, e.entity_id) for e in rows]


def _last_id(db) -> int:
    with db.transaction() as s:
        return s.scalar(sa.select(sa.func.coalesce(sa.func.max(AuditEvent.id), 0)))


@pytest.fixture
def world(client, db):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    w = make_user(db, "worker")
    return lab, w


def test_claim_writes_exactly_one_event_and_a_refused_claim_none(client, db, world):
    lab, w = world
    cid = open_campaign(client, lab, target_clips=1)["id"]
    sign(client, w)
    mark = _last_id(db)
    aid = claim(client, w, cid).json()["id"]
    assert _events(db, mark) == [("assignment.claimed", "assignment", str(aid))]

    late = make_user(db, "worker")
    mark = _last_id(db)
    assert claim(client, late, cid).json()["code"] == "consent.missing"
    sign(client, late)
    mark = _last_id(db)
    assert claim(client, late, cid).json()["code"] == "assignment.no_slots"
    assert claim(client, w, 9999).status_code == 404
    assert _events(db, mark) == []


def test_campaign_lifecycle_events(client, db, world):
    lab, _ = world
    mark = _last_id(db)
    cid = create_campaign(client, lab)["id"]
    client.patch(f"{API}/campaigns/{cid}", json={"title": "Renamed draft"}, headers=lab.headers)
    for status in ("open", "paused", "open", "closed"):
        assert set_status(client, lab, cid, status).status_code == 200
    assert set_status(client, lab, cid, "open").status_code == 409  # refused: no event
    assert client.patch(f"{API}/campaigns/{cid}", json={"title": "x"}, headers=lab.headers).status_code == 422
    assert [a for a, t, i in _events(db, mark) if t == "campaign" and i == str(cid)] == [
        "campaign.created",
        "campaign.edited",
        "campaign.opened",
        "campaign.paused",
        "campaign.resumed",
        "campaign.closed",
    ]
    with db.transaction() as s:
        edited = audit.events_for(s, "campaign", cid)[1]
        assert edited.actor_id == lab.id
        assert edited.payload == {"before": {"title": "Fold a T-shirt"}, "after": {"title": "Renamed draft"}}


def test_consent_events_and_withdrawal_cascade(client, db, world):
    lab, w = world
    cid = open_campaign(client, lab)["id"]
    mark = _last_id(db)
    rec = sign(client, w)
    aid = claim(client, w, cid).json()["id"]
    client.post(f"{API}/consents/{rec['id']}/withdraw", headers=w.headers)
    assert _events(db, mark) == [
        ("consent.signed", "consent_record", str(rec["id"])),
        ("assignment.claimed", "assignment", str(aid)),
        ("consent.withdrawn", "consent_record", str(rec["id"])),
        ("assignment.released", "assignment", str(aid)),
    ]
    with db.transaction() as s:
        released = audit.events_for(s, "assignment", aid)[-1]
        assert released.payload["reason"] == "consent_withdrawn" and released.actor_id == w.id


def test_lease_expiry_event(client, db, world):
    lab, w = world
    cid = open_campaign(client, lab)["id"]
    sign(client, w)
    t0 = datetime(2030, 5, 1, tzinfo=UTC)
    with db.transaction() as s:
        aid = assignments.claim(s, s.get(User, w.id), cid, lease=timedelta(minutes=10), now=t0).id
    mark = _last_id(db)
    with db.transaction() as s:
        assert assignments.expire_leases(s, now=t0 + timedelta(minutes=10)) == 1
    assert _events(db, mark) == [("assignment.expired", "assignment", str(aid))]
    with db.transaction() as s:
        e = audit.events_for(s, "assignment", aid)[-1]
        assert e.actor_id is None and e.payload == {"campaign_id": cid, "worker_id": w.id}


def test_event_and_change_commit_or_roll_back_together(client, db, world):
    lab, w = world
    cid = open_campaign(client, lab)["id"]
    sign(client, w)
    mark = _last_id(db)
    with pytest.raises(RuntimeError), db.transaction() as s:
        assignments.claim(s, s.get(User, w.id), cid)
        raise RuntimeError("the request failed after the claim")
    assert _events(db, mark) == []
    with db.transaction() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Assignment)) == 0


def test_only_admins_read_the_log(client, db, world):
    lab, w = world
    admin = make_user(db, "admin")
    cid = open_campaign(client, lab)["id"]
    for actor in (lab, w):
        r = client.get(f"{API}/audit", headers=actor.headers)
        assert r.status_code == 403 and r.json()["code"] == "auth.forbidden"
    r = client.get(f"{API}/audit", params={"entity_type": "campaign", "entity_id": str(cid)}, headers=admin.headers)
    assert [e["action"] for e in r.json()["items"]] == ["campaign.created", "campaign.opened"]
    first = r.json()["items"][0]["id"]
    r = client.get(f"{API}/audit", params={"entity_type": "campaign", "after_id": first}, headers=admin.headers)
    assert [e["action"] for e in r.json()["items"]] == ["campaign.opened"]
    with db.transaction() as s:  # the streaming reader sees the same log, chunk by chunk
        assert [e.id for e in audit.iter_events(s, chunk=2)] == [
            e.id for e in s.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))
        ]


def test_list_events_pages_and_filters(client, db):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    cid = create_campaign(client, lab)["id"]
    with db.transaction(write=False) as s:
        everything = audit.list_events(s, limit=500)
        assert [e.id for e in everything] == sorted(e.id for e in everything)
        after = audit.list_events(s, after_id=everything[0].id, limit=2)
        assert [e.id for e in after] == [e.id for e in everything[1:3]]
        mine = audit.list_events(s, entity_type="campaign", entity_id=str(cid))
        assert [e.action for e in mine] == ["campaign.created"]
        assert audit.list_events(s, entity_type="campaign", entity_id="999999") == []
