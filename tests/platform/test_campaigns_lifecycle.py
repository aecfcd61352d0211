"""A campaign's life that protects people: clone, deadline, limit per worker, pausing and closing
(open slots end, workers are told, uploads into a closed campaign are refused)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from tusclient import client as tus
from tusclient.exceptions import TusCommunicationError

from egocrowd.campaigns.service import SETTINGS, close_expired_campaigns
from egocrowd.db.models import Assignment, AuditEvent, Campaign, Notification
from tests.platform.helpers import API, assert_problem, claim, create_campaign, make_user, set_status


def _later(**kw) -> str:
    return (datetime.now(UTC) + timedelta(**kw)).isoformat()


def _set(db, cid: int, **values) -> None:
    """Move a campaign's columns directly (e.g. a deadline into the past, which no input allows)."""
    with db.transaction() as s:
        c = s.get(Campaign, cid)
        for k, v in values.items():
            setattr(c, k, v)


def _notices(db, user_id: int) -> list[Notification]:
    with db.transaction(write=False) as s:
        rows = s.scalars(sa.select(Notification).where(Notification.user_id == user_id)).all()
        s.expunge_all()
        return list(rows)


def test_clone_copies_every_setting_into_a_new_draft(client, world):
    src = world.open_campaign(
        deadline_at=_later(days=5), max_clips_per_worker=2, allowed_countries=["KE", "UG"], pay_cents=175
    )
    r = client.post(f"{API}/campaigns/{src['id']}/clone", headers=world.lab.headers)
    assert r.status_code == 201, r.text
    copy = r.json()
    assert copy["id"] != src["id"] and copy["status"] == "draft" and copy["slots_taken"] == 0
    assert copy["title"] == "Copy of " + src["title"]
    for k in SETTINGS:
        if k in copy and k != "title":
            assert copy[k] == src[k], k
    assert copy["pay"] == src["pay"]
    with world.db.transaction(write=False) as s:
        ev = s.scalar(sa.select(AuditEvent).where(AuditEvent.action == "campaign.cloned"))
        assert ev.entity_id == str(copy["id"]) and ev.payload["from"] == src["id"]


def test_only_who_runs_a_campaign_may_clone_it(client, db, world):
    src = world.open_campaign()
    viewer = make_user(db, "requester", org="Lab A", org_role="viewer")
    stranger = make_user(db, "requester", org="Lab B")
    assert_problem(client.post(f"{API}/campaigns/{src['id']}/clone", headers=viewer.headers), 403, "auth.forbidden")
    assert_problem(
        client.post(f"{API}/campaigns/{src['id']}/clone", headers=stranger.headers), 404, "campaign.not_found"
    )
    assert_problem(
        client.post(f"{API}/campaigns/{src['id']}/clone", headers=world.worker.headers), 403, "auth.forbidden"
    )


def test_a_deadline_must_be_in_the_future(client, world):
    r = client.post(
        f"{API}/campaigns",
        headers=world.lab.headers,
        json={**_body(), "deadline_at": "2020-01-01T00:00:00Z"},
    )
    body = assert_problem(r, 422, "validation.failed")
    assert "deadline" in str(body)
    naive = create_campaign(client, world.lab, deadline_at="2099-01-31T18:00")  # a form's value: read as UTC
    assert naive["deadline_at"].startswith("2099-01-31T18:00:00") and naive["deadline_at"].endswith("+00:00")


def _body() -> dict:
    from tests.platform.helpers import campaign_body

    return campaign_body()


def test_claims_stop_at_the_deadline_and_the_campaign_closes_itself(client, db, world):
    c = world.open_campaign(deadline_at=_later(days=1))
    a = world.claim(c["id"])
    _set(db, c["id"], deadline_at=datetime.now(UTC) - timedelta(seconds=1))
    other = world.signed_worker()
    assert_problem(claim(client, other, c["id"]), 409, "campaign.past_deadline")
    with db.transaction() as s:
        assert close_expired_campaigns(s) == 1
    with db.transaction() as s:
        assert close_expired_campaigns(s) == 0  # once
        assert s.get(Campaign, c["id"]).status.value == "closed"
        assert s.get(Assignment, a["id"]).status.value == "released"
        ev = s.scalar(sa.select(AuditEvent).where(AuditEvent.action == "campaign.closed"))
        assert ev.actor_id is None  # the platform, not a person
    notes = _notices(db, world.worker.id)
    assert [n.kind for n in notes] == ["campaign.closed"] and "reached its deadline" in notes[0].subject


def test_live_deadline_and_limit_change_only_in_the_workers_favour(client, world):
    c = world.open_campaign(deadline_at=_later(days=5), max_clips_per_worker=3)

    def patch(**body):
        return client.patch(f"{API}/campaigns/{c['id']}", json=body, headers=world.lab.headers)

    assert patch(deadline_at=_later(days=9)).status_code == 200
    body = assert_problem(patch(deadline_at=_later(days=2)), 409, "campaign.unfair_change")
    assert body["field"] == "deadline_at"
    assert patch(max_clips_per_worker=4).status_code == 200
    assert_problem(patch(max_clips_per_worker=2), 409, "campaign.unfair_change")
    r = patch(deadline_at=None, max_clips_per_worker=None)  # removing them is fair too
    assert r.status_code == 200 and r.json()["deadline_at"] is None and r.json()["max_clips_per_worker"] is None
    assert_problem(patch(max_clips_per_worker=10), 409, "campaign.unfair_change")  # none → some lowers it
    assert_problem(patch(pay_cents=None), 422, "validation.failed")  # required columns still refuse null


def test_a_worker_takes_at_most_the_limit_per_worker(client, db, world):
    c = world.open_campaign(max_clips_per_worker=1, target_clips=5)
    a = world.claim(c["id"])
    body = assert_problem(claim(client, world.worker, c["id"]), 409, "assignment.per_worker_limit")
    assert body["limit"] == 1
    # a slot given back (or expired) is free again; a submitted one still counts
    assert client.post(f"{API}/assignments/{a['id']}/release", headers=world.worker.headers).status_code == 200
    b = world.claim(c["id"])
    with db.transaction() as s:
        s.get(Assignment, b["id"]).status = s.get(Assignment, b["id"]).status.__class__("submitted")
    assert_problem(claim(client, world.worker, c["id"]), 409, "assignment.per_worker_limit")
    assert world.claim(c["id"], world.signed_worker())  # others are not affected


def test_closing_ends_open_slots_and_tells_each_worker(client, db, world):
    c = world.open_campaign(target_clips=5)
    first, second = world.claim(c["id"]), world.claim(c["id"], other := world.signed_worker())
    assert set_status(client, world.lab, c["id"], "paused").status_code == 200
    paused = _notices(db, world.worker.id)
    assert [n.kind for n in paused] == ["campaign.paused"] and "still record and upload" in paused[0].body
    r = set_status(client, world.lab, c["id"], "closed")
    assert r.status_code == 200 and r.json()["slots_taken"] == 0
    with db.transaction(write=False) as s:
        for a in (first, second):
            row = s.get(Assignment, a["id"])
            assert row.status.value == "released" and row.closed_at is not None
        reasons = s.scalars(sa.select(AuditEvent.payload).where(AuditEvent.action == "assignment.released")).all()
        assert sorted(d["worker_id"] for d in reasons) == sorted([world.worker.id, other.id])
        assert all(d["reason"] == "campaign_closed" for d in reasons)
    for w in (world.worker, other):
        closed = [n for n in _notices(db, w.id) if n.kind == "campaign.closed"]
        assert len(closed) == 1 and closed[0].subject == f"{c['title']} was closed by the lab; your slot ended"
        assert "still checked and paid" in closed[0].body and closed[0].link == f"/campaigns/{c['id']}"


@pytest.fixture
def blob(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(os.urandom(64 * 1024))
    return path


def test_no_upload_into_a_closed_campaign(client, db, live, world, blob):
    """Refused when the upload is created (before the first byte) and on a PATCH of one running."""
    c = world.open_campaign(target_clips=5)
    a = world.claim(c["id"])
    running = tus.TusClient(live.base + "/api/v1/uploads/", headers=world.worker.headers).uploader(
        str(blob), chunk_size=16 * 1024, metadata={"assignment": str(a["id"])}
    )
    running.upload_chunk()
    assert set_status(client, world.lab, c["id"], "closed").status_code == 200
    with pytest.raises(TusCommunicationError) as err:
        running.upload_chunk()
    assert err.value.status_code == 409 and "campaign.closed" in str(err.value.response_content)
    assert running.offset == 16 * 1024
    fresh = tus.TusClient(live.base + "/api/v1/uploads/", headers=world.worker.headers)
    with pytest.raises(TusCommunicationError) as err:
        fresh.uploader(str(blob), chunk_size=16 * 1024, metadata={"assignment": str(a["id"])}).upload_chunk()
    assert err.value.status_code == 409 and "campaign.closed" in str(err.value.response_content)


def test_a_paused_campaign_still_takes_a_running_lease_upload(client, db, live, world, blob):
    c = world.open_campaign(target_clips=5)
    a = world.claim(c["id"])
    assert set_status(client, world.lab, c["id"], "paused").status_code == 200
    assert_problem(claim(client, world.signed_worker(), c["id"]), 404, "campaign.not_found")  # no new claims
    up = tus.TusClient(live.base + "/api/v1/uploads/", headers=world.worker.headers).uploader(
        str(blob), chunk_size=16 * 1024, metadata={"assignment": str(a["id"])}
    )
    up.upload_chunk()
    assert up.offset == 16 * 1024


def test_daily_counts_per_utc_day(db, world):
    """Clips received and passed per day, zeros included, the same on every backend."""
    from egocrowd import clips
    from egocrowd.db.models import Clip, ClipStatus

    c = world.open_campaign()
    now = datetime(2026, 11, 30, 0, 15, tzinfo=UTC)  # just after midnight: yesterday's late clips stay yesterday's
    rows = [
        (now - timedelta(minutes=20), ClipStatus.qc_passed),  # 2026-11-29 23:55
        (now - timedelta(minutes=16), ClipStatus.qc_failed),
        (now, ClipStatus.qc_passed),
        (now - timedelta(days=2), ClipStatus.processing),
        (now - timedelta(days=40), ClipStatus.qc_passed),  # outside the window
    ]
    with db.transaction() as s:
        for i, (at, status) in enumerate(rows):
            s.add(
                Clip(
                    campaign_id=c["id"],
                    worker_id=world.worker.id,
                    source_ref=f"t:{i}",
                    sha256=f"{i:064x}",
                    size=1,
                    original_name="c.mp4",
                    status=status,
                    created_at=at,
                    updated_at=at,
                )
            )
    with db.transaction(write=False) as s:
        days = clips.daily_counts(s, c["id"], 30, now=now)
    assert len(days) == 30 and days[0]["day"] == "2026-11-01" and days[-1]["day"] == "2026-11-30"
    by_day = {d["day"]: (d["received"], d["passed"]) for d in days if d["received"] or d["passed"]}
    assert by_day == {"2026-11-28": (1, 0), "2026-11-29": (2, 1), "2026-11-30": (1, 1)}
