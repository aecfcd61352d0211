"""The capture page speaks the reader's language (issue #15): the crawl does not reach a claimed
slot's capture page, so this test claims one for the demo worker and reads it in the pseudo-language,
the page's own words (inside <main>) and the words its scripts show (tr() in capture.js)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from babel.messages.extract import extract_javascript

from egocrowd.i18n import PSEUDO_OPEN
from tests.i18n.conftest import client_for
from tests.support.i18n import untranslated

CAPTURE_JS = Path(__file__).resolve().parents[2] / "src" / "egocrowd" / "web" / "static" / "capture.js"


def _claim(app, logins) -> int:
    """The demo worker holds an active slot (consents signed first), through the API (a client
    without the page session's cookies, which would ask for a CSRF token)."""
    from fastapi.testclient import TestClient

    client = TestClient(app, base_url="http://testserver")
    email, password = logins["worker"]
    token = client.post("/api/v1/auth/token", json={"email": email, "password": password}).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    active = [a for a in client.get("/api/v1/assignments", headers=auth).json()["items"] if a["status"] == "active"]
    if active:
        return active[0]["id"]
    for doc in client.get("/api/v1/consent-documents").json()["items"]:
        scopes = [s["id"] for s in doc["scopes"]]
        client.post("/api/v1/consents", json={"version": doc["version"], "scopes": scopes}, headers=auth)
    campaign = client.get("/api/v1/campaigns", headers=auth).json()["items"][0]["id"]
    r = client.post(f"/api/v1/campaigns/{campaign}/claim", headers=auth)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_the_capture_page_and_its_script_speak_the_readers_language(demo_app):
    app, logins, data = demo_app
    client = client_for(app, logins, "worker", "en-XA")
    assignment = _claim(app, logins)
    r = client.get(f"/assignments/{assignment}/capture")
    assert r.status_code == 200, r.text
    main = re.search(r"<main>(.*)</main>", r.text, re.S).group(1)  # the shell is base.html's
    assert 'id="capture"' in main
    assert untranslated(main, data) == []
    # Every word capture.js shows reaches the page translated.
    with CAPTURE_JS.open("rb") as f:
        shown = {m if isinstance(m, str) else m[0] for _, _, m, _ in extract_javascript(f, {"tr": None}, [], {})}
    assert len(shown) > 40
    table = json.loads(re.search(r'id="i18n-strings">(.*?)</script>', r.text, re.S).group(1).replace("<\\/", "</"))
    missing = sorted(m for m in shown if PSEUDO_OPEN not in table.get(m, ""))
    assert missing == []
    # No message was glued from pieces: placeholders are named, never positional.
    assert not [m for m in shown if re.search(r"\{\d*\}|%s|%d", m)]
