"""Signing and withdrawing consent, and what withdrawal does to open assignments."""

from __future__ import annotations

import pytest

from egocrowd.consent import text_sha256
from egocrowd.demo import CONSENT_TEXT, CONSENT_VERSION
from tests.platform.helpers import (
    API,
    assert_problem,
    claim,
    make_user,
    open_campaign,
    publish_consent,
    sign,
)


@pytest.fixture
def setup(client, db):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    return lab, make_user(db, "worker")


def _sign(client, worker, **body):
    return client.post(f"{API}/consents", json={"version": CONSENT_VERSION, **body}, headers=worker.headers)


def test_sign_needs_the_required_scopes_and_known_ones(client, setup):
    _, w = setup
    assert_problem(_sign(client, w, scopes=[]), 422, "consent.required_scope")
    assert_problem(_sign(client, w, scopes=["face_visible"]), 422, "consent.required_scope")
    body = assert_problem(_sign(client, w, scopes=["record_hands", "sell_my_soul"]), 422, "consent.unknown_scope")
    assert "sell_my_soul" in body["detail"]
    assert_problem(
        client.post(f"{API}/consents", json={"version": "1999-01", "scopes": ["record_hands"]}, headers=w.headers),
        404,
        "consent.document_not_found",
    )
    assert client.get(f"{API}/consents", headers=w.headers).json()["items"] == []  # nothing half-signed

    r = _sign(client, w, scopes=["record_hands", "audio_kept", "audio_kept"], document_sha256=text_sha256(CONSENT_TEXT))
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["scopes"] == ["audio_kept", "record_hands"] and rec["active"] is True
    assert rec["document_sha256"] == text_sha256(CONSENT_TEXT) and rec["version"] == CONSENT_VERSION


def test_sign_refuses_a_changed_text_and_a_second_signature(client, setup):
    _, w = setup
    stale = text_sha256(CONSENT_TEXT + "\n6. A clause added after you read it.\n")
    assert_problem(_sign(client, w, scopes=["record_hands"], document_sha256=stale), 409, "consent.text_changed")
    assert_problem(_sign(client, w, scopes=["record_hands"], document_sha256="nothex"), 422, "validation.failed")
    sign(client, w)
    assert_problem(_sign(client, w, scopes=["record_hands"]), 409, "consent.already_signed")
    assert len(client.get(f"{API}/consents", headers=w.headers).json()["items"]) == 1


def test_published_text_is_public_with_its_fingerprint(client, setup):
    r = client.get(f"{API}/consent-documents/{CONSENT_VERSION}")
    assert r.status_code == 200
    doc = r.json()
    assert doc["body"] == CONSENT_TEXT and doc["sha256"] == text_sha256(CONSENT_TEXT)
    assert [s["id"] for s in doc["scopes"] if s["required"]] == ["record_hands"]
    assert_problem(client.get(f"{API}/consent-documents/nope"), 404, "consent.document_not_found")


def test_claim_needs_consent_and_withdrawal_releases_slots(client, db, setup):
    lab, w = setup
    publish_consent(db, version="2027-01", body=CONSENT_TEXT + "\n6. Version two.\n")
    c1 = open_campaign(client, lab, target_clips=2)["id"]
    c2 = open_campaign(client, lab, target_clips=2, consent_version="2027-01")["id"]

    body = assert_problem(claim(client, w, c1), 403, "consent.missing")
    assert body["consent_version"] == CONSENT_VERSION
    rec = sign(client, w)
    sign(client, w, version="2027-01")
    a1 = claim(client, w, c1).json()
    a2 = claim(client, w, c2).json()
    assert client.get(f"{API}/campaigns/{c1}", headers=w.headers).json()["slots_taken"] == 1

    r = client.post(f"{API}/consents/{rec['id']}/withdraw", headers=w.headers)
    assert r.status_code == 200 and r.json()["active"] is False and r.json()["withdrawn_at"]
    # the slot that needed the withdrawn version is given back; the other one is untouched
    assert client.get(f"{API}/assignments/{a1['id']}", headers=w.headers).json()["status"] == "released"
    assert client.get(f"{API}/assignments/{a2['id']}", headers=w.headers).json()["status"] == "active"
    assert client.get(f"{API}/campaigns/{c1}/progress", headers=lab.headers).json()["slots_taken"] == 0
    assert client.get(f"{API}/campaigns/{c2}/progress", headers=lab.headers).json()["slots_taken"] == 1

    assert_problem(claim(client, w, c1), 403, "consent.missing")
    assert_problem(
        client.post(f"{API}/consents/{rec['id']}/withdraw", headers=w.headers), 409, "consent.already_withdrawn"
    )
    # signing again (a new record) lets the worker take part again
    again = sign(client, w)
    assert again["id"] != rec["id"]
    assert claim(client, w, c1).status_code == 201


def test_consent_pages(client, db, setup):
    from tests.platform.test_access import page_login

    lab, w = setup
    cid = open_campaign(client, lab)["id"]
    token = page_login(client, w)
    page = client.get(f"/campaigns/{cid}").text
    assert 'id="read-consent"' in page and 'id="claim"' not in page
    page = client.get(f"/consent/{CONSENT_VERSION}?next=/campaigns/{cid}").text
    assert "Withdrawal" in page and text_sha256(CONSENT_TEXT) in page
    assert "needed for this campaign" not in page  # it is only for training
    commercial = open_campaign(client, lab, data_use={"commercial": True})["id"]
    page = client.get(f"/consent/{CONSENT_VERSION}?next=/campaigns/{commercial}").text
    assert page.count("(needed for this campaign)") == 1 and "Allow commercial use by buyers" in page
    r = client.post(
        f"/consent/{CONSENT_VERSION}",
        follow_redirects=False,
        data={
            "csrf_token": token,
            "sha256": text_sha256(CONSENT_TEXT),
            "next": f"/campaigns/{cid}",
            "scopes": ["record_hands", "face_visible"],
        },
    )
    assert r.status_code == 303 and r.headers["location"] == f"/campaigns/{cid}?m=signed"
    assert 'id="claim"' in client.get(f"/campaigns/{cid}").text
    r = client.post(f"/consent/{CONSENT_VERSION}", data={"csrf_token": token, "scopes": ["record_hands"]})
    assert r.status_code == 409 and 'data-code="consent.already_signed"' in r.text
    rec = client.get(f"{API}/consents").json()["items"][0]
    assert rec["scopes"] == ["face_visible", "record_hands"]
    # withdrawing asks first, saying what will happen; nothing changes until it is confirmed
    r = client.post(f"/consents/{rec['id']}/withdraw", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 200 and "open slots" in r.text and 'name="confirmed" value="yes"' in r.text
    assert client.get(f"{API}/consents").json()["items"][0]["active"] is True
    r = client.post(
        f"/consents/{rec['id']}/withdraw", data={"csrf_token": token, "confirmed": "yes"}, follow_redirects=False
    )
    assert r.status_code == 303
    assert "withdrawn" in client.get("/consents").text


def test_document_and_record_queries(client, db, setup):
    from egocrowd import consent
    from egocrowd.db.models import User

    _, worker = setup
    other, admin = make_user(db, "worker"), make_user(db, "admin")
    publish_consent(db, version="2027-01", body="A newer text.")
    first = sign(client, worker)["id"]
    client.post(f"{API}/consents/{first}/withdraw", headers=worker.headers)
    second = sign(client, worker)["id"]
    theirs = sign(client, other)["id"]
    with db.transaction(write=False) as s:
        assert [d.version for d in consent.list_documents(s)] == ["2027-01", CONSENT_VERSION]  # by family
        w, a = s.get(User, worker.id), s.get(User, admin.id)
        assert [r.id for r in consent.list_consents(s, w)] == [second, first]  # newest first, own only
        assert [r.id for r in consent.list_consents(s, a)] == [theirs, second, first]  # admins: everyone's
        assert [r.id for r in consent.list_consents(s, a, user_id=worker.id, limit=1, offset=1)] == [first]
        assert consent.list_consents(s, w, user_id=other.id) == []  # a filter never widens what one sees
        assert consent.signed_versions(s, w) == {CONSENT_VERSION}  # the withdrawn one counts no more
        assert consent.signed_versions(s, a) == set()
