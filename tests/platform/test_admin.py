"""The admin console's services and its JSON API (/api/v1/admin, and /api/v1/audit's filters):
finding people, suspending and changing roles, organizations and their teams, the platform's
numbers and health, putting a failed job back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from egocrowd import audit, clips
from egocrowd.blobs import BlobStore
from egocrowd.db.models import AuditEvent, Clip, ClipStatus, Job, JobStatus, User
from tests.platform.helpers import API, PASSWORD, assert_problem, claim, make_user, open_campaign, publish_consent, sign

ADMIN = f"{API}/admin"
CLIP_BYTES = b"not really a video " * 100


@pytest.fixture
def admin(db):
    return make_user(db, "admin", email="root@example.org")


def failed_job(db, settings, worker_id: int, campaign_id: int, tmp_path) -> tuple[int, int]:
    """A clip whose probe job the runner gave up on: (job id, clip id). The bytes are stored for
    real (any bytes: nothing decodes them here)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    f = tmp_path / "clip.mp4"
    f.write_bytes(CLIP_BYTES + tmp_path.name.encode())
    clip = clips.finish_upload(
        db,
        BlobStore(settings.blobs_path),
        source_ref=f"t:{tmp_path.name}",
        path=f,
        worker_id=worker_id,
        assignment_id=None,
        campaign_id=campaign_id,
        original_name="clip.mp4",
    )
    with db.transaction() as s:  # as the runner leaves a job it gave up on
        job = s.scalar(sa.select(Job).where(Job.clip_id == clip.id))
        job.status, job.attempts, job.last_error = JobStatus.error, 4, "RuntimeError: decoder fell over"
        s.get(Clip, clip.id).status = ClipStatus.error
        return job.id, clip.id


# --- the audit log --------------------------------------------------------------------------------
def test_audit_filters_newest_first_and_pages_by_id(client, db, admin):
    a = make_user(db, "worker", email="amina@example.org")
    b = make_user(db, "worker", email="bo@example.org")
    with db.transaction() as s:
        ua, ub = s.get(User, a.id), s.get(User, b.id)
        for i in range(3):
            audit.record(s, ua, "campaign.edited", 7, {"n": i}, entity_type="campaign")
        audit.record(s, ub, "campaign.opened", 8, {}, entity_type="campaign")
        audit.record(s, ua, "campaignx.odd", 9, {}, entity_type="campaign")  # not under the "campaign." prefix
        audit.record(s, ua, "user_x", 1, {}, entity_type="user")  # "_" is not a wildcard
    with db.transaction() as s:
        newest = audit.list_events(s, action="campaign.", newest_first=True, limit=3)
        assert [e.action for e in newest] == ["campaign.opened", "campaign.edited", "campaign.edited"]
        assert newest[0].id > newest[1].id > newest[2].id
        older = audit.list_events(s, action="campaign.", newest_first=True, before_id=newest[-1].id)
        assert [e.payload for e in older] == [{"n": 0}]
        assert {e.action for e in audit.list_events(s, actor_email="AMINA@example.org ")} == {
            "token.issued",  # make_user's token
            "campaign.edited",
            "campaignx.odd",
            "user_x",
        }
        assert [e.action for e in audit.list_events(s, action="user_")] == ["user_x"]
        assert [e.entity_id for e in audit.list_events(s, entity_type="campaign", entity_id="8")] == ["8"]
        everything = audit.list_events(s, limit=1000)
        last = everything[-1]
        assert audit.list_events(s, since=last.at) == [e for e in everything if e.at >= last.at]
        assert audit.list_events(s, until=everything[0].at) == []
        assert audit.list_events(s, actor_id=b.id) == [e for e in everything if e.actor_id == b.id]

    # the API: the same filters; after_id (oldest first) keeps working for existing clients
    r = client.get(f"{API}/audit", params={"action": "campaign.", "order": "desc", "limit": 2}, headers=admin.headers)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [e["action"] for e in items] == ["campaign.opened", "campaign.edited"]
    r = client.get(
        f"{API}/audit",
        params={"action": "campaign.", "order": "desc", "before_id": items[-1]["id"]},
        headers=admin.headers,
    )
    assert [e["payload"] for e in r.json()["items"]] == [{"n": 1}, {"n": 0}]
    r = client.get(f"{API}/audit", params={"actor": "bo@example.org"}, headers=admin.headers)
    assert [e["action"] for e in r.json()["items"]] == ["token.issued", "campaign.opened"]
    r = client.get(f"{API}/audit", params={"after_id": items[0]["id"]}, headers=admin.headers)
    assert all(e["id"] > items[0]["id"] for e in r.json()["items"])
    future = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None).isoformat()
    assert client.get(f"{API}/audit", params={"since": future}, headers=admin.headers).json()["items"] == []
    assert client.get(f"{API}/audit", params={"until": future}, headers=admin.headers).json()["items"]
    assert_problem(
        client.get(f"{API}/audit", params={"order": "sideways"}, headers=admin.headers), 422, "validation.failed"
    )


# --- people ---------------------------------------------------------------------------------------
def test_find_users_by_text_role_state_and_org_newest_first(client, db, admin):
    lab = make_user(db, "requester", org="Lab A", email="owner@lab-a.org")
    w1 = make_user(db, "worker", email="amina@example.org")
    w2 = make_user(db, "worker", email="amir@example.org")
    assert (
        client.post(f"{ADMIN}/users/{w2.id}/active", json={"active": False}, headers=admin.headers).status_code == 200
    )

    def ids(**params):
        r = client.get(f"{ADMIN}/users", params=params, headers=admin.headers)
        assert r.status_code == 200, r.text
        return [u["id"] for u in r.json()["items"]]

    assert ids() == [w2.id, w1.id, lab.id, admin.id]  # newest first
    assert ids(q="AMI") == [w2.id, w1.id]
    assert ids(q="%") == []  # a LIKE wildcard is only a character
    assert ids(role="worker", active="true") == [w1.id]
    assert ids(active="false") == [w2.id]
    org_id = client.get(f"{ADMIN}/users/{lab.id}", headers=admin.headers).json()["organization_id"]
    assert ids(organization_id=org_id) == [lab.id]
    assert ids(limit=2) == [w2.id, w1.id]
    assert ids(limit=2, before_id=w1.id) == [lab.id, admin.id]
    user = client.get(f"{ADMIN}/users", params={"q": "owner"}, headers=admin.headers).json()["items"][0]
    assert (user["organization"], user["org_role"], user["is_active"]) == ("Lab A", "owner", True)


def test_a_user_page_shows_their_activity(client, db, admin):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    w = make_user(db, "worker")
    sign(client, w)
    claim(client, w, open_campaign(client, lab)["id"])
    client.post(f"{API}/auth/session", json={"email": w.email, "password": PASSWORD})
    r = client.get(f"{ADMIN}/users/{w.id}", headers=admin.headers)
    assert r.status_code == 200, r.text
    facts = r.json()["facts"]
    assert {k: facts[k] for k in ("consents_signed", "consents_active", "assignments", "clips", "sessions_live")} == {
        "consents_signed": 1,
        "consents_active": 1,
        "assignments": 1,
        "clips": 0,
        "sessions_live": 1,
    }
    assert datetime.fromisoformat(facts["last_login"]) > datetime.now(UTC) - timedelta(minutes=5)
    assert client.get(f"{ADMIN}/users/{lab.id}", headers=admin.headers).json()["facts"]["last_login"] is None
    assert_problem(client.get(f"{ADMIN}/users/424242", headers=admin.headers), 404, "user.not_found")


def test_suspending_ends_sessions_and_tokens_and_is_audited(client, db, admin):
    w = make_user(db, "worker")
    assert client.post(f"{API}/auth/session", json={"email": w.email, "password": PASSWORD}).status_code == 200
    assert client.get(f"{API}/me").json()["id"] == w.id  # the cookie session works
    r = client.post(f"{ADMIN}/users/{w.id}/active", json={"active": False}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["is_active"] is False and r.json()["facts"]["sessions_live"] == 0
    assert_problem(client.get(f"{API}/me"), 401, "auth.required")  # the cookie's session ended
    assert_problem(client.get(f"{API}/me", headers=w.headers), 401, "auth.bad_token")
    assert_problem(
        client.post(f"{API}/auth/token", json={"email": w.email, "password": PASSWORD}), 401, "auth.bad_credentials"
    )
    with db.transaction() as s:
        events = audit.list_events(s, entity_type="user", entity_id=str(w.id), newest_first=True, limit=2)
        assert [(e.action, e.actor_id) for e in events] == [
            ("user.sessions_ended", admin.id),
            ("user.suspended", admin.id),
        ]
        assert events[0].payload == {"reason": "suspended", "sessions": 1, "tokens": 1}

    r = client.post(f"{ADMIN}/users/{w.id}/active", json={"active": True}, headers=admin.headers)
    assert r.json()["is_active"] is True
    client.cookies.clear()  # the ended session's cookie: a cookie write would need its CSRF token
    assert client.post(f"{API}/auth/token", json={"email": w.email, "password": PASSWORD}).status_code == 201
    assert_problem(client.get(f"{API}/me", headers=w.headers), 401, "auth.bad_token")  # revoked for good
    with db.transaction() as s:
        assert audit.list_events(s, action="user.reactivated")[0].entity_id == str(w.id)


def test_role_changes_are_checked_and_audited(client, db, admin):
    w = make_user(db, "worker")
    r = client.post(f"{ADMIN}/users/{w.id}/role", json={"role": "reviewer"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["role"] == "reviewer"
    assert client.get(f"{API}/me", headers=w.headers).json()["role"] == "reviewer"  # tokens act with the new role
    assert_problem(
        client.post(f"{ADMIN}/users/{w.id}/role", json={"role": "requester"}, headers=admin.headers),
        422,
        "user.organization_required",
    )
    assert_problem(
        client.post(f"{ADMIN}/users/{w.id}/role", json={"role": "boss"}, headers=admin.headers),
        422,
        "validation.failed",
    )
    for path, body in (("role", {"role": "worker"}), ("active", {"active": False})):
        assert_problem(
            client.post(f"{ADMIN}/users/{admin.id}/{path}", json=body, headers=admin.headers), 409, "user.is_self"
        )
    with db.transaction() as s:
        (e,) = audit.list_events(s, action="user.role_changed")
        assert (e.entity_id, e.actor_id, e.payload) == (str(w.id), admin.id, {"from": "worker", "to": "reviewer"})


def test_admins_create_requesters_with_a_lab_role(client, db, admin):
    body = {"email": "viewer@lab.org", "password": PASSWORD, "role": "requester", "organization": "Lab V"}
    r = client.post(f"{API}/users", json={**body, "org_role": "viewer"}, headers=admin.headers)
    assert r.status_code == 201, r.text
    got = client.get(f"{ADMIN}/users/{r.json()['id']}", headers=admin.headers).json()
    assert (got["organization"], got["org_role"]) == ("Lab V", "viewer")


# --- organizations --------------------------------------------------------------------------------
def test_organizations_and_their_teams(client, db, admin):
    r = client.post(f"{ADMIN}/organizations", json={"name": "  Open   Robotics "}, headers=admin.headers)
    assert r.status_code == 201, r.text
    org = r.json()
    assert (org["name"], org["members"], org["may_author_consent"]) == ("Open Robotics", [], False)
    assert_problem(
        client.post(f"{ADMIN}/organizations", json={"name": "Open Robotics"}, headers=admin.headers),
        409,
        "org.name_taken",
    )
    base = f"{ADMIN}/organizations/{org['id']}"
    ana = make_user(db, "worker", email="ana@example.org")
    ben = make_user(db, "worker", email="ben@example.org")
    r = client.post(f"{base}/members", json={"email": "ANA@example.org", "org_role": "owner"}, headers=admin.headers)
    assert r.status_code == 200, r.text
    r = client.post(f"{base}/members", json={"email": "ben@example.org"}, headers=admin.headers)
    assert [(m["email"], m["org_role"]) for m in r.json()["members"]] == [
        ("ana@example.org", "owner"),
        ("ben@example.org", "editor"),
    ]
    assert client.get(f"{API}/me", headers=ben.headers).json()["role"] == "requester"
    assert_problem(
        client.post(f"{base}/members", json={"email": "nobody@example.org"}, headers=admin.headers),
        404,
        "user.not_found",
    )
    assert_problem(
        client.post(f"{base}/members/{ana.id}/role", json={"org_role": "viewer"}, headers=admin.headers),
        409,
        "org.last_owner",
    )
    r = client.post(f"{base}/members/{ben.id}/role", json={"org_role": "owner"}, headers=admin.headers)
    assert r.status_code == 200
    r = client.delete(f"{base}/members/{ana.id}", headers=admin.headers)
    assert [m["email"] for m in r.json()["members"]] == ["ben@example.org"]
    assert client.get(f"{API}/me", headers=ana.headers).json()["role"] == "worker"
    assert_problem(client.delete(f"{base}/members/{ana.id}", headers=admin.headers), 404, "org.not_member")
    r = client.post(f"{base}/consent-authoring", json={"allowed": True}, headers=admin.headers)
    assert r.json()["may_author_consent"] is True
    listed = client.get(f"{ADMIN}/organizations", headers=admin.headers).json()["items"]
    assert [(o["name"], o["may_author_consent"]) for o in listed] == [("Open Robotics", True)]
    with db.transaction() as s:
        actions = [e.action for e in audit.list_events(s, action="organization.", actor_id=admin.id)]
    assert actions == [
        "organization.created",
        "organization.member_added",
        "organization.member_added",
        "organization.member_role_changed",
        "organization.member_removed",
        "organization.consent_authoring_set",
    ]
    # a lab's owner does not use the admin console, even for their own lab
    assert_problem(client.get(base, headers=ben.headers), 403, "auth.forbidden")


# --- the platform's numbers and health ------------------------------------------------------------
def test_overview_counts_people_campaigns_clips_and_jobs(client, db, admin, settings, tmp_path):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    w = make_user(db, "worker")
    cid = open_campaign(client, lab)["id"]
    failed_job(db, settings, w.id, cid, tmp_path)
    client.post(f"{ADMIN}/users/{w.id}/active", json={"active": False}, headers=admin.headers)
    r = client.get(f"{ADMIN}/overview", headers=admin.headers)
    assert r.status_code == 200, r.text
    o = r.json()
    assert o["users"]["worker"] == {"active": 0, "suspended": 1}
    assert o["users"]["admin"] == {"active": 1, "suspended": 0}
    assert o["campaigns"]["open"] == 1 and o["campaigns"]["draft"] == 0
    assert o["clips"] == {
        "processing": 0,
        "qc_passed": 0,
        "qc_failed": 0,
        "rejected": 0,
        "error": 1,
        "accepted": 0,
        "declined": 0,
        "withdrawn": 0,
    }
    assert o["jobs"] == {"pending": 0, "running": 0, "done": 0, "error": 1}


def test_health_shows_stuck_jobs_and_retry_puts_one_back(client, db, admin, settings, tmp_path):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    w = make_user(db, "worker")
    cid = open_campaign(client, lab)["id"]
    job_id, clip_id = failed_job(db, settings, w.id, cid, tmp_path / "a")
    other_job, _ = failed_job(db, settings, w.id, cid, tmp_path / "b")
    with db.transaction() as s:  # a runner died holding this one
        job = s.get(Job, other_job)
        job.status, job.lease_owner = JobStatus.running, "host:1"
        job.lease_expires_at = datetime.now(UTC) - timedelta(minutes=5)

    r = client.get(f"{ADMIN}/health", headers=admin.headers)
    assert r.status_code == 200, r.text
    h = r.json()
    assert {(j["id"], j["status"]) for j in h["stuck"]} == {(job_id, "error"), (other_job, "running")}
    assert {(q["stage"], q["status"], q["jobs"]) for q in h["queue"]} == {
        ("probe", "error", 1),
        ("probe", "running", 1),
    }
    assert h["blobs"] == 2 and h["blobs_bytes"] == 2 * len(CLIP_BYTES + b"a")
    assert 0 < h["disk_free_bytes"] <= h["disk_total_bytes"]
    assert h["database_bytes"] > 0 and (h["uploads_open"], h["uploads_bytes"]) == (0, 0)

    assert client.post(f"{ADMIN}/jobs/{other_job}/retry", headers=admin.headers).json() == {"job_ids": []}
    assert client.post(f"{ADMIN}/jobs/{job_id}/retry", headers=admin.headers).json() == {"job_ids": [job_id]}
    with db.transaction() as s:
        job = s.get(Job, job_id)
        assert (job.status, job.attempts) == (JobStatus.pending, 0)
        assert s.get(Clip, clip_id).status is ClipStatus.processing
        (e,) = s.scalars(sa.select(AuditEvent).where(AuditEvent.action == "job.retried")).all()
        assert (e.actor_id, e.entity_id, e.payload["job_id"]) == (admin.id, str(clip_id), job_id)
    assert [j["id"] for j in client.get(f"{ADMIN}/health", headers=admin.headers).json()["stuck"]] == [other_job]

    r = client.post(f"{ADMIN}/jobs/requeue", json={"stage": "probe"}, headers=admin.headers)
    assert r.json() == {"job_ids": []}  # nothing finished or failed any more
    assert_problem(
        client.post(f"{ADMIN}/jobs/requeue", json={"stage": "nope"}, headers=admin.headers),
        422,
        "pipeline.unknown_stage",
    )


def test_blob_usage_counts_files_and_bytes(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    assert (store.usage().count, store.usage().bytes) == (0, 0)
    store.put_bytes(b"abc")
    store.put_bytes(b"abc")  # stored once
    store.put_bytes(b"hello world")
    u = store.usage()
    assert (u.count, u.bytes) == (2, 14)
    assert 0 < u.disk_free <= u.disk_total
