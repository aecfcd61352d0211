"""Consent on a fresh install, in a phone-sized Chromium: the admin writes a draft, previews and
publishes it and adds a French version; a French-speaking worker reads French and signs; the admin
publishes revision 2; the worker's next upload is refused until they read what changed and sign
again; and a worker who did not allow commercial use cannot claim a commercial campaign."""

from __future__ import annotations

import base64
import json

import pytest

from tests.platform.helpers import API, PASSWORD, assert_problem, campaign_body, claim, make_user, set_status
from tests.support.browser import ARTIFACTS, PHONE, look

pytestmark = pytest.mark.browser
TUS = {"Tus-Resumable": "1.0.0"}

BODY_EN = """# Recording consent

1. **What you record.** Your own hands doing household tasks.
2. **Withdrawal.** You may withdraw at any time.
"""
BODY_FR = """# Consentement à l'enregistrement

1. **Ce que vous filmez.** Vos propres mains pendant des tâches ménagères.
2. **Retrait.** Vous pouvez retirer votre consentement à tout moment.
"""


def _look(page, name: str) -> None:
    look(page, f"consent-{name}")


def _log_in(browser, base, actor, **context):
    ctx = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, base_url=base, **context)
    page = ctx.new_page()
    page.set_default_timeout(20_000)
    page.goto("/login")
    page.fill("#email", actor.email)
    page.fill("#password", PASSWORD)
    page.locator("main form button[type=submit]").click()  # in whatever language the page speaks
    page.wait_for_url("**/campaigns")
    return page


def _upload(client, worker, assignment_id):
    meta = "assignment " + base64.b64encode(str(assignment_id).encode()).decode()
    headers = {**TUS, **worker.headers, "Upload-Length": "20", "Upload-Metadata": meta}
    return client.post("/api/v1/uploads", headers=headers)


def test_consent_authored_published_signed_and_signed_again(live, client, db, chromium):
    ARTIFACTS.mkdir(exist_ok=True)
    admin, lab = make_user(db, "admin"), make_user(db, "requester", org="Lab A")
    worker, other = make_user(db, "worker"), make_user(db, "worker")
    browser = chromium()

    # --- the admin writes, previews and publishes
    a = _log_in(browser, live.base, admin)
    a.get_by_role("link", name="Consent documents").click()
    _look(a, "1-admin-empty")
    a.click("#new-document")
    a.fill("#family", "egocrowd-worker")
    a.fill("#title", "Recording consent")
    a.fill("#body", BODY_EN)
    a.fill("#scope_id_0", "record_hands")
    a.fill("#scope_label_0", "Record my hands and surroundings")
    a.check("input[name=scope_required_0]")
    a.fill("#scope_id_1", "commercial_use")
    a.fill("#scope_label_1", "Allow commercial use by buyers")
    _look(a, "2-admin-new")
    a.click("#save")
    assert a.locator(".consent-text h2").inner_text() == "Recording consent"  # the preview, rendered
    assert a.locator(".consent-text strong").first.inner_text() == "What you record."
    _look(a, "3-admin-preview")
    a.click("#publish")
    assert "frozen" in a.locator(".consequences").inner_text()
    _look(a, "4-admin-confirm")
    a.get_by_role("button", name="Publish").click()
    a.wait_for_url("**/consent-documents?m=published")
    a.get_by_role("link", name="Add a language").click()
    a.fill("#language", "fr")
    a.fill("#title", "Consentement à l'enregistrement")
    a.fill("#body", BODY_FR)
    a.fill("#scope_label_0", "Filmer mes mains et ce qui m'entoure")
    a.fill("#scope_label_1", "Autoriser l'usage commercial")
    a.click("#save")
    a.click("#publish")
    a.get_by_role("button", name="Publish").click()
    a.wait_for_url("**/consent-documents?m=published")
    _look(a, "5-admin-list")

    # --- a lab can now run campaigns on it (a fresh install had nothing to name)
    plain = client.post(
        f"{API}/campaigns", json=campaign_body(consent_version="egocrowd-worker-1"), headers=lab.headers
    )
    commercial = client.post(
        f"{API}/campaigns",
        json=campaign_body(consent_version="egocrowd-worker-1", title="Sell it", data_use={"commercial": True}),
        headers=lab.headers,
    )
    for r in (plain, commercial):
        assert r.status_code == 201, r.text
        assert set_status(client, lab, r.json()["id"], "open").status_code == 200

    # --- a French-speaking worker reads French and signs it
    w = _log_in(browser, live.base, worker, locale="fr-FR")
    w.goto("/consent/egocrowd-worker-1")
    assert w.locator("main h1").inner_text() == "Consentement à l'enregistrement"
    assert w.locator(".consent-text").get_attribute("lang") == "fr"
    _look(w, "6-worker-french")
    w.check("input[name=scopes][value=record_hands]")
    w.click("#sign")
    w.wait_for_url("**/consents?m=signed")
    _look(w, "7-worker-signed")
    assignment = claim(client, worker, plain.json()["id"])
    assert assignment.status_code == 201, assignment.text
    assert _upload(client, worker, assignment.json()["id"]).status_code == 201

    # --- no commercial use allowed: no commercial campaign
    body = assert_problem(claim(client, worker, commercial.json()["id"]), 403, "consent.scope_missing")
    assert body["missing_scopes"] == ["commercial_use"]
    assert_problem(claim(client, other, commercial.json()["id"]), 403, "consent.missing")

    # --- revision 2: the admin is told who must sign again
    a.goto("/consent-documents")
    a.get_by_role("link", name="New revision").click()
    a.fill("#body", BODY_EN + "3. **Keeping.** Clips are kept for ten years.\n")
    a.click("#save")
    a.click("#publish")
    assert "1 worker holding slots" in a.locator(".consequences").inner_text()
    _look(a, "8-admin-confirm-revision")
    a.get_by_role("button", name="Publish").click()
    a.wait_for_url("**/consent-documents?m=published")

    # --- the worker's next upload is refused until they sign again
    r = _upload(client, worker, assignment.json()["id"])
    body = assert_problem(r, 403, "consent.resign_required")
    assert body["consent_version"] == "egocrowd-worker-2" and body["signed_version"] == "egocrowd-worker-1-fr"
    w.goto("/consents")
    assert "Une nouvelle révision a remplacé celle-ci" in w.content()  # the worker reads French
    _look(w, "9-worker-consents")
    w.get_by_role("link", name="Voyez ce qui a changé").click()
    assert "ten years" in w.locator("ins").inner_text()
    _look(w, "10-worker-diff")
    w.goto("/consent/egocrowd-worker-2")  # no French version of revision 2 yet: English
    assert w.locator("#changed").is_visible()
    w.check("input[name=scopes][value=record_hands]")
    w.click("#sign")
    w.wait_for_url("**/consents?m=signed")
    assert _upload(client, worker, assignment.json()["id"]).status_code == 201

    # --- withdrawing asks first and says what happens
    w.get_by_role("button", name="Retirer").first.click()
    assert "places ouvertes" in w.locator(".consequences").inner_text()
    _look(w, "11-worker-withdraw-confirm")
    w.get_by_role("button", name="Retirer mon consentement").click()
    w.wait_for_url("**/consents?m=withdrawn")
    r = client.get(f"{API}/assignments/{assignment.json()['id']}", headers=worker.headers)
    assert r.json()["status"] == "released", json.dumps(r.json())
