"""Every failure is an RFC 9457 problem document (JSON under /api, a page elsewhere); never a trace."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient

from egocrowd.i18n import pseudo
from tests.platform.helpers import API, assert_problem, make_user

SECRET = "s3cr3t-detail-that-must-not-leak"


def test_unknown_route_wrong_method_and_bad_input(client, db):
    w = make_user(db, "worker")
    assert_problem(client.get(f"{API}/no-such-thing"), 404, "http.not_found")
    assert_problem(client.delete(f"{API}/health"), 405, "http.method_not_allowed")
    assert_problem(client.put(f"{API}/campaigns", headers=w.headers), 405, "http.method_not_allowed")
    body = assert_problem(
        client.post(
            f"{API}/auth/signup", content=b'{"email": "a@b.org", "pass', headers={"content-type": "application/json"}
        ),
        422,
        "validation.failed",
    )
    assert body["errors"]
    assert_problem(client.post(f"{API}/auth/signup", json=["not", "an", "object"]), 422, "validation.failed")
    assert_problem(client.post(f"{API}/auth/signup"), 422, "validation.failed")
    for query in ("limit=0", "limit=501", "offset=-1", "status=bogus"):
        assert_problem(client.get(f"{API}/campaigns?{query}", headers=w.headers), 422, "validation.failed")
    body = assert_problem(client.get(f"{API}/campaigns/abc", headers=w.headers), 422, "validation.failed")
    assert body["errors"][0]["field"] == "campaign_id"
    assert_problem(client.get(f"{API}/campaigns/424242", headers=w.headers), 404, "campaign.not_found")
    assert_problem(client.get(f"{API}/me"), 401, "auth.required")


def test_signup_validation(client, db):
    ok = {"email": "new.worker@example.org", "password": "long enough pw", "country": "ke"}
    for over, code in (
        ({"email": "not-an-email"}, "user.bad_email"),
        ({"password": "short"}, "validation.failed"),
        ({"country": "Kenya"}, "validation.failed"),
        ({"display_name": "x" * 101}, "validation.failed"),
        ({"role": "admin"}, "validation.failed"),
    ):
        assert_problem(client.post(f"{API}/auth/signup", json={**ok, **over}), 422, code)
    r = client.post(f"{API}/auth/signup", json=ok)
    assert r.status_code == 202 and r.json()["status"] == "sent"
    again = client.post(f"{API}/auth/signup", json={**ok, "email": "NEW.worker@example.org"})
    assert (again.status_code, again.json()) == (r.status_code, r.json())  # an existing address is not revealed
    assert_problem(
        client.post(f"{API}/auth/token", json={"email": ok["email"], "password": "wrong password"}),
        401,
        "auth.bad_credentials",
    )
    r = client.post(f"{API}/auth/token", json={"email": ok["email"], "password": ok["password"]})
    assert r.status_code == 201 and r.json()["token"].startswith("egc_")
    me = client.get(f"{API}/me", headers={"Authorization": f"Bearer {r.json()['token']}"}).json()
    assert (me["role"], me["country"], me["email_verified"]) == ("worker", "KE", False)


def test_signup_page_validates_like_the_api(client):
    from tests.platform.test_access import _csrf

    token = _csrf(client, "/signup")
    base = {"email": "page.worker@example.org", "password": "long enough pw", "csrf_token": token}
    for over, code in (
        ({"country": "Kenya"}, "user.bad_country"),
        ({"country": "K1"}, "user.bad_country"),
        ({"display_name": "x" * 101}, "user.bad_display_name"),
        ({"email": "nope"}, "user.bad_email"),
        ({"password": "short"}, "user.weak_password"),
    ):
        r = client.post("/signup", data={**base, **over}, follow_redirects=False)
        assert r.status_code == 422 and f'data-code="{code}"' in r.text, (over, r.status_code)
    r = client.post("/signup", data={**base, "country": "ke"}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/signup/sent")
    r = client.post(f"{API}/auth/token", json={"email": base["email"], "password": base["password"]})
    assert client.get(f"{API}/me", headers={"Authorization": f"Bearer {r.json()['token']}"}).json()["country"] == "KE"


@pytest.fixture
def crashing_client(app):
    """The real app plus two routes that fail the way a bug would."""

    def boom():
        raise RuntimeError(SECRET)

    app.add_api_route(f"{API}/test-boom", boom, methods=["GET"])
    app.add_api_route("/test-boom-page", boom, methods=["GET"])
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_internal_errors_never_leak(crashing_client, caplog):
    r = crashing_client.get(f"{API}/test-boom")
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "internal" and body["title"] == "Something went wrong on our side" and body["status"] == 500
    assert set(body) == {"type", "title", "status", "code", "detail", "request_id"}
    # the id of the log line to look for
    assert len(body["request_id"]) == 32 and [r.request_id for r in caplog.records] == [body["request_id"]]
    assert r.headers["x-request-id"] == body["request_id"]
    assert SECRET not in r.text and "Traceback" not in r.text and "RuntimeError" not in r.text
    assert SECRET in caplog.text  # ...but it is logged for us
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]  # errors carry the headers too
    r = crashing_client.get("/test-boom-page")
    assert r.status_code == 500 and r.headers["content-type"].startswith("text/html")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert SECRET not in r.text and "Traceback" not in r.text and 'data-code="internal"' in r.text


def test_html_errors_for_pages(client):
    r = client.get("/no-such-page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert 'data-code="http.not_found"' in r.text


def test_title_is_the_type_in_the_readers_language_detail_the_occurrence_in_english(client, db, monkeypatch):
    """RFC 9457: ``title`` names the problem type (the same for every occurrence) and is translated;
    ``detail`` is this occurrence's technical English. Pages show both, the detail marked English."""
    monkeypatch.setenv("EGOCROWD_PSEUDO_LOCALE", "1")
    w = make_user(db, "worker")
    english = assert_problem(client.get(f"{API}/campaigns/999999", headers=w.headers), 404, "campaign.not_found")
    assert english["title"] == "This campaign was not found" and "999999" not in english["title"]
    r = client.get(f"{API}/campaigns/999999", headers={**w.headers, "Accept-Language": "en-XA, en;q=0.5"})
    body = r.json()
    assert r.headers["content-language"] == "en-XA"
    assert body["title"] == pseudo("This campaign was not found") and body["detail"] == english["detail"]
    assert body["code"] == "campaign.not_found" and body["type"].endswith("/campaign.not_found")
    r = client.get(f"{API}/campaigns/999998", headers=w.headers)
    assert r.json()["title"] == english["title"] and r.json()["detail"] != english["detail"]  # one title per type
    assert r.headers["content-language"] == "en"
    # a problem answered by the body limit, before any route: titled the same way
    r = client.post(f"{API}/auth/signup", content=b"x" * (2 << 20), headers={"Accept-Language": "en-XA"})
    assert r.status_code == 413 and r.json()["title"] == pseudo("What was sent is too large")

    # the HTML face: the translated title big, the English detail under it, marked as English
    r = client.get("/no-such-page", headers={"Accept-Language": "en-XA"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    h1 = re.search(r'<h1 data-code="http.not_found">([^<]*)</h1>', r.text)
    assert h1 and h1.group(1) == html.escape(pseudo("This page does not exist"), quote=False)
    assert re.search(
        r'<p class="error" lang="en" dir="ltr" translate="no" data-code="http.not_found">Not Found</p>', r.text
    )


def test_every_status_has_a_fallback_title_and_unknown_codes_use_it():
    from egocrowd.problem_titles import GENERIC, STATUS_TITLES, title
    from egocrowd.web.problems import _HTTP_CODES

    assert set(_HTTP_CODES) <= set(STATUS_TITLES)
    assert title("http.418", 418) == GENERIC and title("nobody.knows", 409) == STATUS_TITLES[409]
    assert title("assignment.lease_expired", 500) == "This slot's time ran out"  # the code's own row wins


def test_page_forms_never_crash_on_odd_input(client, db):
    """Odd but possible submissions answer 4xx pages, never 500 (the TestClient re-raises crashes)."""
    from tests.platform.test_access import _csrf

    w = make_user(db, "worker")
    token = _csrf(client)
    r = client.post("/login", data={"email": w.email, "password": "x", "csrf_token": "é-not-ascii"})
    assert r.status_code == 403 and 'data-code="auth.csrf"' in r.text
    r = client.post("/login", files={"csrf_token": ("t.txt", token.encode())}, data={"email": w.email})
    assert r.status_code == 403
    r = client.post(
        "/signup", files={"email": ("e.txt", b"a@b.org")}, data={"csrf_token": token, "password": "long enough pw"}
    )
    assert r.status_code == 422 and 'data-code="user.bad_email"' in r.text
    r = client.post("/login", data={"email": "nobody@example.org", "password": "", "csrf_token": token})
    assert r.status_code == 401
