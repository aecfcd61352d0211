"""The consent pages: authors write, preview, publish (asked first) and compare; workers read in their
language, see what changed and sign. In-process app, real database."""

from __future__ import annotations

import re

from egocrowd.demo import CONSENT_FAMILY, CONSENT_TEXT_FR, SCOPES, SCOPES_FR
from tests.platform.helpers import API, make_user
from tests.platform.test_access import page_login


def _form(token, **fields):
    scopes = {}
    for i, s in enumerate(SCOPES):
        scopes |= {f"scope_id_{i}": s["id"], f"scope_label_{i}": s["label"]}
        if s.get("required"):
            scopes[f"scope_required_{i}"] = "on"
    scopes |= {f"scope_id_{len(SCOPES)}": "", f"scope_label_{len(SCOPES)}": ""}  # a spare row, left empty
    return {"csrf_token": token, "mode": "new", "language": "en", **scopes, **fields}


def test_admin_writes_previews_publishes_and_revises(client, db):
    admin = make_user(db, "admin")
    token = page_login(client, admin)
    page = client.get("/consent-documents").text
    assert 'href="/consent-documents"' in page and "No consent documents yet" in page  # the nav link, the empty state

    # a bad name comes back with the form filled in and the problem next to the field
    r = client.post("/consent-documents/new", data=_form(token, family="Bad Name", title="T", body="# Hello"))
    assert r.status_code == 422, r.text[:3000]
    assert 'id="family-error"' in r.text and 'aria-invalid="true"' in r.text
    assert "# Hello" in r.text and 'value="commercial_use"' in r.text

    body = "# Recording consent\n\n1. **You film** your hands.\n\n<b>not html</b>\n"
    r = client.post(
        "/consent-documents/new",
        data=_form(token, family=CONSENT_FAMILY, title="Recording consent", body=body),
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/consent-documents/{CONSENT_FAMILY}-1/edit?m=saved"
    page = client.get(r.headers["location"]).text
    assert "<h2>Recording consent</h2>" in page and "<strong>You film</strong>" in page  # the preview
    assert "&lt;b&gt;not html&lt;/b&gt;" in page

    # publishing asks first, then freezes the text
    r = client.post(f"/consent-documents/{CONSENT_FAMILY}-1/publish", data={"csrf_token": token})
    assert r.status_code == 200 and "frozen" in r.text and 'value="yes"' in r.text
    assert f"Publish “Recording consent” ({CONSENT_FAMILY}-1)?" in r.text  # the title the author knows
    assert client.get(f"{API}/consent-documents/{CONSENT_FAMILY}-1").json()["status"] == "draft"  # not yet
    r = client.post(
        f"/consent-documents/{CONSENT_FAMILY}-1/publish",
        data={"csrf_token": token, "confirmed": "yes"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "Published." in client.get(r.headers["location"]).text  # not "Saved."
    assert client.get(f"{API}/consent-documents/{CONSENT_FAMILY}-1").json()["status"] == "published"

    # a new revision starts prefilled; its publication says who will be asked to sign again
    page = client.get(f"/consent-documents/new?source={CONSENT_FAMILY}-1").text
    assert "New revision of" in page and "You film" in page and "readonly" in page
    r = client.post(
        "/consent-documents/new",
        data=_form(token, mode="revise", family=CONSENT_FAMILY, title="Recording consent", body=body + "2. New.\n"),
        follow_redirects=False,
    )
    assert r.headers["location"].startswith(f"/consent-documents/{CONSENT_FAMILY}-2/edit")
    r = client.post(f"/consent-documents/{CONSENT_FAMILY}-2/publish", data={"csrf_token": token})
    assert "0 workers holding slots" in r.text and "replaces revision 1" in r.text
    page = client.get(f"/consent-documents/{CONSENT_FAMILY}-2/diff").text
    assert "<ins" in page and "2. New." in page


def test_worker_reads_in_their_language_and_sees_what_changed(client, db):
    from egocrowd import consent
    from egocrowd.db.models import User

    admin, worker = make_user(db, "admin"), make_user(db, "worker")
    with db.transaction() as s:
        a = s.get(User, admin.id)
        en = consent.create_draft(s, a, family="w-consent", title="Consent", body="# Consent\n", scopes=SCOPES)
        consent.publish(s, a, en.version)
        fr = consent.create_draft(
            s,
            a,
            family="w-consent",
            title="Consentement",
            body=CONSENT_TEXT_FR,
            scopes=SCOPES_FR,
            language="fr",
            revision=1,
        )
        consent.publish(s, a, fr.version)
    token = page_login(client, worker)
    page = client.get("/consent/w-consent-1", headers={"Accept-Language": "fr-CH, fr;q=0.9, en;q=0.5"}).text
    assert "Consentement" in page and 'action="/consent/w-consent-1-fr"' in page and 'lang="fr"' in page
    page = client.get("/consent/w-consent-1?lang=en", headers={"Accept-Language": "fr"}).text
    assert 'action="/consent/w-consent-1"' in page  # the reader switched to English
    # said once, with its date (in French, the page's language, whichever text is read)
    assert "publié ·" not in page and re.search(r" · publié \d{1,2} \w+\.? \d{4}, \d\d:\d\d UTC", page)
    r = client.post(
        "/consent/w-consent-1-fr",
        data={"csrf_token": token, "scopes": ["record_hands"], "sha256": consent.text_sha256(CONSENT_TEXT_FR)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with db.transaction() as s:
        a = s.get(User, admin.id)
        two = consent.create_draft(
            s, a, family="w-consent", title="Consent", body="# Consent\n\nMore.\n", scopes=SCOPES
        )
        consent.publish(s, a, two.version)
    page = client.get("/consent/w-consent-2").text
    assert 'id="changed"' in page and "diff?against=w-consent-1" in page  # compared in the new text's language
    page = client.get("/consents").text
    assert "A new revision replaced this one" in page
    # the old text stays readable, marked as replaced, and cannot be signed any more
    page = client.get("/consent/w-consent-1-fr?lang=fr").text
    assert "revision 2 replaced it" in page and 'id="sign"' not in page


def test_labs_without_permission_see_no_authoring(client, db):
    lab = make_user(db, "requester", org="Lab A")
    page_login(client, lab)
    assert 'href="/consent-documents"' not in client.get("/campaigns").text
    r = client.get("/consent-documents")
    assert r.status_code == 403 and 'data-code="auth.forbidden"' in r.text
