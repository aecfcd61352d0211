"""The review API (/api/v1/review/..., /api/v1/clips/{id}/appeal): the queue, one item, decisions and
appeals, with a problem document for every refusal and nothing counted twice."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from egocrowd.db.models import AuditEvent, Clip
from egocrowd.labels import review
from tests.platform.helpers import API, assert_problem, make_user
from tests.support.deid import add_clip, make_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("review-api") / "clip.mp4", seconds=2)


@pytest.fixture
def item(app, db, world, video):
    camp = world.open_campaign(review={"reviewers": "both"})["id"]
    cid = add_clip(db, app.state.blobs, campaign_id=camp, worker_id=world.worker.id, raw=video, derived=video)
    with db.transaction() as s:
        return review.route_clip(s, s.get_one(Clip, cid)).id, cid, camp


def test_queue_item_and_decision(client, db, world, item):
    item_id, cid, camp = item
    reviewer = make_user(db, "reviewer")
    r = client.get(f"{API}/review/items", params={"kind": "acceptance", "campaign_id": camp}, headers=reviewer.headers)
    assert r.status_code == 200 and [i["id"] for i in r.json()["items"]] == [item_id]
    got = r.json()["items"][0]
    assert (got["clip_id"], got["state"], got["audience"], got["due_at"] is not None) == (cid, "open", "both", True)
    assert client.get(f"{API}/review/items", params={"kind": "appeal"}, headers=reviewer.headers).json()["items"] == []
    assert client.get(f"{API}/review/items", headers=world.lab.headers).json()["items"][0]["id"] == item_id
    assert_problem(client.get(f"{API}/review/items", headers=world.worker.headers), 403, "auth.forbidden")
    assert_problem(client.get(f"{API}/review/items/{item_id}", headers=world.worker.headers), 404, "review.not_found")
    assert client.get(f"{API}/review/items/{item_id}", headers=reviewer.headers).json()["kind"] == "acceptance"
    reasons = client.get(f"{API}/review/reasons", headers=reviewer.headers).json()
    assert set(reasons) == set(review.REJECT_REASONS) and "hands_not_visible" in reasons

    url = f"{API}/review/items/{item_id}/decision"
    assert_problem(client.post(url, json={"decision": "reject"}, headers=reviewer.headers), 422, "review.bad_reason")
    assert_problem(
        client.post(url, json={"decision": "reject", "reason": "nope"}, headers=reviewer.headers),
        422,
        "review.bad_reason",
    )
    assert_problem(client.post(url, json={"decision": "uphold"}, headers=reviewer.headers), 422, "review.bad_decision")
    assert_problem(client.post(url, json={"decision": "maybe"}, headers=reviewer.headers), 422, "validation.failed")
    r = client.post(
        url, json={"decision": "reject", "reason": "duplicate", "comment": "Same as clip 1."}, headers=world.lab.headers
    )
    assert r.status_code == 200 and (r.json()["decision"], r.json()["reason"]) == ("reject", "duplicate")
    assert_problem(
        client.post(url, json={"decision": "accept"}, headers=reviewer.headers), 409, "review.already_decided"
    )
    with db.transaction() as s:
        assert s.scalar(sa.select(sa.func.count()).where(AuditEvent.action == "clip.declined")) == 1

    # the worker appeals once; the lab that rejected it may not rule on it (and never sees appeals)
    appeal_url = f"{API}/clips/{cid}/appeal"
    assert_problem(
        client.post(appeal_url, json={"comment": "no"}, headers=world.worker.headers), 422, "appeal.comment_required"
    )
    r = client.post(appeal_url, json={"comment": "It is a different shirt."}, headers=world.worker.headers)
    assert r.status_code == 201 and (r.json()["kind"], r.json()["disputes"]) == ("appeal", "rejection")
    assert_problem(
        client.post(appeal_url, json={"comment": "It is a different shirt."}, headers=world.worker.headers),
        409,
        "appeal.already_made",
    )
    stranger = make_user(db, "worker")
    assert_problem(
        client.post(appeal_url, json={"comment": "It is a different shirt."}, headers=stranger.headers),
        404,
        "clip.not_found",
    )
    appeal_id = r.json()["id"]
    assert_problem(
        client.post(
            f"{API}/review/items/{appeal_id}/decision", json={"decision": "overturn"}, headers=world.lab.headers
        ),
        403,
        "auth.forbidden",
    )
    r = client.post(f"{API}/review/items/{appeal_id}/decision", json={"decision": "overturn"}, headers=reviewer.headers)
    assert r.status_code == 200
    assert client.get(f"{API}/clips/{cid}", headers=world.worker.headers).json()["status"] == "accepted"
