"""An id beyond the database's 64-bit integers was an OverflowError / DataError (500) on every route
taking an id; now it is a client error like any other malformed input."""

from __future__ import annotations

import base64

import pytest

from tests.platform.helpers import assert_problem, make_user

HUGE = "9" * 23
ROUTES = [
    ("GET", f"/api/v1/clips/{HUGE}"),
    ("GET", f"/api/v1/clips?campaign_id={HUGE}"),
    ("GET", f"/api/v1/campaigns/{HUGE}/qc"),
    ("GET", f"/api/v1/campaigns/{HUGE}"),
    ("PATCH", f"/api/v1/campaigns/{HUGE}"),
    ("POST", f"/api/v1/campaigns/{HUGE}/status"),
    ("GET", f"/api/v1/campaigns/{HUGE}/progress"),
    ("POST", f"/api/v1/campaigns/{HUGE}/claim"),
    ("GET", f"/api/v1/assignments/{HUGE}"),
    ("GET", f"/api/v1/assignments?campaign_id={HUGE}"),
    ("POST", f"/api/v1/assignments/{HUGE}/release"),
    ("POST", f"/api/v1/consents/{HUGE}/withdraw"),
    ("DELETE", f"/api/v1/me/tokens/{HUGE}"),
    ("GET", f"/api/v1/audit?after_id={HUGE}"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_an_id_too_big_for_the_database_is_a_client_error(client, db, method, path):
    admin = make_user(db, "admin")
    body = {"status": "open"} if path.endswith("/status") else ({"title": "Fold towels"} if method == "PATCH" else None)
    r = client.request(method, path, headers=admin.headers, json=body)
    assert_problem(r, 422, "validation.failed")


def test_an_offset_past_every_row_is_an_empty_page(client, db):
    admin = make_user(db, "admin")
    r = client.get(f"/api/v1/clips?offset={HUGE}", headers=admin.headers)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["items"] == []


def test_a_tus_upload_for_an_impossible_assignment_is_a_client_error(client, db):
    worker = make_user(db, "worker")
    r = client.post(
        "/api/v1/uploads",
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Length": "10",
            **worker.headers,
            "Upload-Metadata": f"assignment {base64.b64encode(HUGE.encode()).decode()}",
        },
    )
    assert_problem(r, 422, "upload.bad_metadata")


PAGE_ROUTES = [
    ("GET", f"/assignments/{HUGE}/capture"),
    ("GET", f"/campaigns/{HUGE}"),
    ("GET", f"/campaigns/{HUGE}/edit"),
    ("POST", f"/campaigns/{HUGE}/edit"),
    ("POST", f"/campaigns/{HUGE}/status"),
    ("POST", f"/campaigns/{HUGE}/claim"),
    ("POST", f"/consents/{HUGE}/withdraw"),
    ("POST", f"/assignments/{HUGE}/release"),
]


@pytest.mark.parametrize(("method", "path"), PAGE_ROUTES)
def test_pages_too_answer_a_huge_id_with_a_client_error(client, db, method, path):
    admin = make_user(db, "admin")
    r = client.request(method, path, headers=admin.headers, data={"csrf_token": "x"} if method == "POST" else None)
    assert r.status_code == 422, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("text/html") and "validation.failed" in r.text
