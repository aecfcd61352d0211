"""A person's data: the export ZIP holds everything about them and their own clip files; deleting an
account withdraws consents, releases slots, ends sessions and blanks personal fields, keeping the
audit log and the clips (marked by the withdrawal)."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
import sqlalchemy as sa

from egocrowd.accounts import service as accounts
from egocrowd.blobs import BlobStore
from egocrowd.clock import utcnow
from egocrowd.db.models import AccountToken, Assignment, AuditEvent, Clip, ConsentRecord, DeidStatus, Derivative, User
from egocrowd.errors import Conflict
from egocrowd.notifications import notify
from tests.platform.helpers import API, PASSWORD, assert_problem, make_user
from tests.platform.test_access import _csrf, page_login

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4000  # ~1 MB of "video"
DERIVED = b"\x00\x00\x00\x18ftypisom" + bytes(range(255, -1, -1)) * 4000  # its de-identified copy


def _with_clip(world, settings) -> tuple[dict, int, str]:
    """The world's worker holds a slot in an open campaign and sent one clip for it."""
    campaign = world.open_campaign()
    a = world.claim(campaign["id"])
    ref = BlobStore(settings.blobs_path).put_bytes(VIDEO)
    derived = BlobStore(settings.blobs_path).put_bytes(DERIVED)
    with world.db.transaction() as s:
        clip = Clip(
            campaign_id=campaign["id"],
            assignment_id=a["id"],
            worker_id=world.worker.id,
            source_ref="ingest:" + ref.sha256,
            sha256=ref.sha256,
            size=ref.size,
            original_name="kitchen.mp4",
            qc_report={"passed": True, "checks": {"brightness": 0.8}},
        )
        s.add(clip)
        notify(s, world.worker.id, "qc.result", "Your clip passed", link="/clips/1")
        s.flush()
        d = Derivative(
            clip_id=clip.id,
            kind="deid",
            sha256=derived.sha256,
            size=derived.size,
            source_sha256=ref.sha256,
            stage_version="test",
        )
        s.add(d)
        s.flush()
        clip.derived_id, clip.deid_status = d.id, DeidStatus.clean
        return a, clip.id, ref.sha256


def test_the_export_holds_everything_about_the_person(client, world, settings):
    other = world.signed_worker()
    _, clip_id, sha = _with_clip(world, settings)
    r = client.post(f"{API}/me/export", headers=world.worker.headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert f"egocrowd-data-{world.worker.id}.zip" in r.headers["content-disposition"]
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    assert zf.testzip() is None
    data = json.loads(zf.read("data.json"))
    assert data["format_version"] == 2
    assert data["profile"]["email"] == world.worker.email and "password_hash" not in data["profile"]
    (consent,) = data["consents"]
    assert len(consent["document_sha256"]) == 64 and consent["scopes"] == ["record_hands"]
    assert consent["language"] == "en"  # the language of the text signed
    assert [a["status"] for a in data["assignments"]] == ["active"]
    (clip,) = data["clips"]
    assert clip["id"] == clip_id and clip["qc_report"]["passed"] is True and clip["sha256"] == sha
    assert zf.read(clip["file"]) == DERIVED  # the de-identified copy, never the original (#9)
    assert zf.getinfo(clip["file"]).compress_type == zipfile.ZIP_STORED
    assert [n["subject"] for n in data["notifications"]] == ["Your clip passed"]
    assert all("token_hash" not in t for t in data["api_tokens"]) and data["api_tokens"]
    actions = {e["action"] for e in data["audit_events"]}
    assert {"user.created", "consent.signed"} <= actions
    assert all(e["entity_id"] != str(other.id) or e["actor_id"] == world.worker.id for e in data["audit_events"])
    with world.db.transaction() as s:
        assert (
            s.scalar(
                sa.select(AuditEvent.actor_id).where(
                    AuditEvent.action == "user.data_exported", AuditEvent.entity_id == str(world.worker.id)
                )
            )
            == world.worker.id
        )
    # someone else's export has none of it
    data = json.loads(
        zipfile.ZipFile(io.BytesIO(client.post(f"{API}/me/export", headers=other.headers).content)).read("data.json")
    )
    assert data["clips"] == [] and data["notifications"] == []


def test_the_export_page_button(client, world, settings):
    _with_clip(world, settings)
    csrf = page_login(client, world.worker)
    assert "Download my data" in client.get("/account").text
    r = client.post("/account/export", data={"csrf_token": csrf})
    assert r.status_code == 200 and zipfile.ZipFile(io.BytesIO(r.content)).read("clips/1-deidentified.mp4") == DERIVED
    assert client.post("/account/export", data={"csrf_token": "wrong"}).status_code == 403


def _live_links(user_id: int):
    return sa.select(sa.func.count()).where(
        AccountToken.user_id == user_id, AccountToken.used_at.is_(None), AccountToken.expires_at > utcnow()
    )


def test_deleting_an_account(client, world, settings):
    a, clip_id, sha = _with_clip(world, settings)
    w = world.worker
    admin = make_user(world.db, "admin")
    csrf = page_login(client, w)
    client.post("/forgot-password", data={"csrf_token": csrf, "email": w.email})  # a live reset link
    with world.db.transaction() as s:
        events_before = s.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
        assert s.scalar(_live_links(w.id)) == 1
    r = client.post("/account/delete", data={"csrf_token": csrf})
    assert r.status_code == 200 and "Delete my account" in r.text and "withdrawn" in r.text  # asks first
    r = client.post("/account/delete", data={"csrf_token": csrf, "confirmed": "yes"}, follow_redirects=False)
    assert r.headers["location"] == "/?m=deleted"
    assert "Your account was deleted." in client.get("/?m=deleted").text

    with world.db.transaction() as s:
        user = s.get(User, w.id)
        assert user.email.endswith("@deleted.invalid") and user.email != w.email
        assert (user.display_name, user.country, user.is_active) == ("Deleted user", None, False)
        assert user.deleted_at is not None and user.password_hash == "!deleted"
        record = s.scalar(sa.select(ConsentRecord).where(ConsentRecord.user_id == w.id))
        assert record.withdrawn_at is not None
        assert s.get(Assignment, a["id"]).status.value == "released"
        clip = s.get(Clip, clip_id)
        assert clip.sha256 == sha  # the clip stays; releases read the consent's withdrawal time
        assert s.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) > events_before
        assert (
            s.scalar(
                sa.select(sa.func.count()).where(AuditEvent.action == "user.created", AuditEvent.entity_id == str(w.id))
            )
            == 1
        )  # the audit log is intact
        assert s.scalar(sa.select(AuditEvent.id).where(AuditEvent.action == "user.deleted"))
        assert s.scalar(_live_links(w.id)) == 0  # the reset link asked for before is dead
    assert_problem(client.get(f"{API}/me", headers=w.headers), 401, "auth.bad_token")  # tokens revoked
    client.cookies.clear()
    assert_problem(
        client.post(f"{API}/auth/token", json={"email": w.email, "password": PASSWORD}), 401, "auth.bad_credentials"
    )
    with world.db.transaction() as s, pytest.raises(Conflict) as refused:  # an admin cannot bring it back
        accounts.set_active(s, s.get(User, admin.id), s.get(User, w.id), True)
    assert refused.value.code == "user.deleted"
    # the address is free again: signing up with it makes a new account
    assert client.post(f"{API}/auth/signup", json={"email": w.email, "password": PASSWORD}).status_code == 202
    with world.db.transaction() as s:
        assert s.scalar(sa.select(User.id).where(User.email == w.email)) not in (None, w.id)


def test_admins_and_last_owners_cannot_delete_themselves(client, db):
    admin = make_user(db, "admin")
    owner = make_user(db, "requester", org="Lab Z")
    for actor in (admin, owner):
        assert_problem(client.delete(f"{API}/me", headers=actor.headers), 403, "user.cannot_delete")
    second = make_user(db, "requester", org="Lab Z", org_role="owner")
    with db.transaction() as s:  # a suspended owner cannot run the lab: the same rule as removing a member
        s.get(User, second.id).is_active = False
    assert_problem(client.delete(f"{API}/me", headers=owner.headers), 403, "user.cannot_delete")
    with db.transaction() as s:
        s.get(User, second.id).is_active = True
    assert client.delete(f"{API}/me", headers=owner.headers).status_code == 204
    assert_problem(client.delete(f"{API}/me", headers=second.headers), 403, "user.cannot_delete")
    csrf = page_login(client, admin)
    r = client.post("/account/delete", data={"csrf_token": csrf, "confirmed": "yes"})
    assert r.status_code == 403 and "Admin accounts cannot be deleted" in r.text


def test_the_profile_page(client, db):
    w = make_user(db, "worker", country="KE")
    csrf = page_login(client, w)
    page = client.get("/account").text
    assert '<option translate="no" value="KE" selected>Kenya</option>' in page and ">Uganda</option>" in page
    r = client.post(
        "/account/profile",
        data={"csrf_token": csrf, "display_name": "Amina W.", "country": "UG"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/account?m=profile"
    me = client.get(f"{API}/me", headers=w.headers).json()
    assert (me["display_name"], me["country"]) == ("Amina W.", "UG")
    r = client.post("/account/profile", data={"csrf_token": csrf, "display_name": "Amina", "country": "XX"})
    assert r.status_code == 422 and 'data-code="user.bad_country"' in r.text and "Choose your country" in r.text
    r = client.post(
        "/account/password",
        data={"csrf_token": csrf, "current_password": "wrong", "new_password": "a new passphrase here"},
    )
    assert r.status_code == 401 and 'data-code="auth.bad_credentials"' in r.text
    assert_problem(client.patch(f"{API}/me", headers=w.headers, json={"country": "ZZ"}), 422, "user.bad_country")
    r = client.patch(f"{API}/me", headers=w.headers, json={"country": ""})
    assert r.status_code == 200 and r.json()["country"] is None and r.json()["display_name"] == "Amina W."


def test_log_out_everywhere_asks_first(client, db):
    w = make_user(db, "worker")
    csrf = page_login(client, w)
    r = client.post("/account/logout-everywhere", data={"csrf_token": csrf})
    assert r.status_code == 200 and "Every API token" in r.text
    assert client.get(f"{API}/me", headers=w.headers).status_code == 200
    r = client.post("/account/logout-everywhere", data={"csrf_token": csrf, "confirmed": "yes"}, follow_redirects=False)
    assert r.headers["location"] == "/login"
    assert_problem(client.get(f"{API}/me", headers=w.headers), 401, "auth.bad_token")
    assert client.get("/account", follow_redirects=False).headers["location"].startswith("/login")
    _csrf(client)


def test_logging_out_one_other_session(client, db):
    from fastapi.testclient import TestClient

    w = make_user(db, "worker")
    with TestClient(client.app, base_url="http://testserver") as phone:
        page_login(phone, w)
        csrf = page_login(client, w)
        page = client.get("/account").text
        assert page.count("Log this one out") == 1  # the phone's, not this one's
        sid = int(re.search(r"/account/sessions/(\d+)/end", page).group(1))
        r = client.post(f"/account/sessions/{sid}/end", data={"csrf_token": csrf}, follow_redirects=False)
        assert r.headers["location"] == "/account?m=session_ended"
        assert phone.get("/account", follow_redirects=False).status_code == 303  # the phone is logged out
        assert client.get("/account").status_code == 200 and "Log this one out" not in client.get("/account").text


def test_the_export_tells_a_worker_who_paid_them_and_which_releases_and_labs_have_their_clip(
    client, world, settings, db
):
    """#13, workers' view: every payment on their earnings, and for each clip the published releases
    that contain it and the labs licensed to use them (a release still being built is not listed)."""
    from egocrowd.db.models import (
        AccessState,
        Campaign,
        Organization,
        Release,
        ReleaseAccess,
        ReleaseClip,
        ReleaseStatus,
    )
    from egocrowd.pay import ledger
    from egocrowd.pay.money import Money

    _, clip_id, sha = _with_clip(world, settings)
    admin = make_user(db, "admin")
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        campaign = s.get_one(Campaign, clip.campaign_id)
        ledger.deposit(
            s, campaign, Money(10_000, "USD"), s.get_one(User, admin.id), idempotency_key="d1", reason="funds"
        )
        ledger.pay_for_clip(s, clip, None)
        buyer = Organization(name="Small Robot Lab")
        s.add(buyer)
        s.flush()
        for version, status in ((1, ReleaseStatus.published), (2, ReleaseStatus.building)):
            r = Release(
                organization_id=campaign.organization_id, name="jars", version=version, title="Jars",
                licence={"name": "research", "uses": ["training"]}, status=ReleaseStatus.building,
            )  # fmt: skip
            s.add(r)
            s.flush()
            s.add(ReleaseClip(release_id=r.id, clip_id=clip_id, clip_sha256=sha, media_sha256=sha, files=["a.tar"]))
            s.add(ReleaseAccess(release_id=r.id, organization_id=buyer.id, state=AccessState.granted))
            s.flush()
            if status is ReleaseStatus.published:  # as the builder publishes it, once complete
                r.status, r.root_hash, r.published_at = status, "f" * 64, utcnow()
    r = client.post(f"{API}/me/export", headers=world.worker.headers)
    data = json.loads(zipfile.ZipFile(io.BytesIO(r.content)).read("data.json"))
    (payment,) = data["payments"]
    assert (payment["kind"], payment["amount"], payment["currency"]) == ("clip_accepted", "1.50", "USD")
    assert payment["refs"]["clip_id"] == clip_id
    (clip,) = data["clips"]
    (release,) = clip["releases"]  # the one still building is not there
    assert (release["name"], release["version"], release["root_hash"]) == ("jars", 1, "f" * 64)
    assert release["published_by"] == "Lab A" and release["licensed_to"] == ["Small Robot Lab"]
    assert clip["buyer"]


def test_deleting_an_account_masks_its_payout_methods_and_the_export_lists_them(client, world, db):
    from egocrowd.db.models import PayoutMethod
    from egocrowd.pay import payouts

    with db.transaction() as s:
        payouts.add_method(
            s, s.get_one(User, world.worker.id), provider="paypal", account_ref="pay.me@example.org", currency="USD"
        )
    r = client.post(f"{API}/me/export", headers=world.worker.headers)
    (method,) = json.loads(zipfile.ZipFile(io.BytesIO(r.content)).read("data.json"))["payout_methods"]
    assert (method["provider"], method["account_ref"]) == ("paypal", "pay.me@example.org")
    r = client.delete(f"{API}/me", headers=world.worker.headers)
    assert r.status_code in (200, 204), r.text
    with db.transaction(write=False) as s:
        (m,) = s.scalars(sa.select(PayoutMethod).where(PayoutMethod.user_id == world.worker.id)).all()
        assert "pay.me@example.org" not in m.account_ref and "*" in m.account_ref and m.removed_at is not None
