"""The admin console's pages (/admin): what each shows, that destructive actions ask first and say
what will happen, that a refused action comes back on the same page with its problem named, and
that nobody but an admin gets in."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from egocrowd import audit
from egocrowd.db.models import Job, JobStatus
from tests.platform.helpers import PASSWORD, make_user, open_campaign, publish_consent
from tests.platform.test_access import page_login
from tests.platform.test_admin import failed_job


@pytest.fixture
def admin(client, db):
    """(the admin, their CSRF token) with ``client`` logged in as them."""
    a = make_user(db, "admin", email="root@example.org")
    return a, page_login(client, a)


def _ids(html: str, cls: str) -> list[int]:
    return [int(x) for x in re.findall(rf'class="[^"]*{cls}[^"]*" data-id="(\d+)"', html)]


def test_only_admins_see_the_console(client, db, app):
    worker = make_user(db, "worker")
    lab = make_user(db, "requester", org="Lab A")
    for who in (worker, lab):
        with TestClient(app) as c:
            page_login(c, who)
            assert 'href="/admin"' not in c.get("/campaigns").text
            for path in ("/admin", "/admin/users", f"/admin/users/{who.id}", "/admin/audit", "/admin/health"):
                r = c.get(path)
                assert r.status_code == 403 and 'data-code="auth.forbidden"' in r.text, path


def test_home_counts_and_links(client, db, admin, settings, tmp_path):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    w = make_user(db, "worker")
    failed_job(db, settings, w.id, open_campaign(client, lab)["id"], tmp_path)
    r = client.get("/admin")
    assert r.status_code == 200
    assert 'href="/admin"' in client.get("/campaigns").text  # the nav link
    for link in ("/admin/users", "/admin/organizations", "/admin/audit", "/admin/health", "/consent-documents"):
        assert f'href="{link}"' in r.text
    assert '<a href="/admin/health#stuck">1</a>' in r.text  # one failed job, linked
    assert re.search(r"<dt>open</dt><dd>1</dd>", r.text)
    # the pay, payout and withdrawal consoles (#11, #12) are linked from the admin menu
    for link in ("/admin/pay", "/admin/payouts", "/admin/withdrawals"):
        assert f'href="{link}"' in r.text


def test_find_people_and_page_older(client, db, admin):
    a, _ = admin
    people = [make_user(db, "worker", email=f"amina{i}@example.org") for i in range(3)]
    rev = make_user(db, "reviewer", email="rev@example.org")
    r = client.get("/admin/users", params={"q": "amina", "role": "worker"})
    assert _ids(r.text, "admin-user") == [p.id for p in reversed(people)]
    assert 'value="amina"' in r.text  # the search stays in its field
    assert _ids(client.get("/admin/users", params={"role": "reviewer"}).text, "admin-user") == [rev.id]
    assert "Nobody matches." in client.get("/admin/users", params={"q": "zzz"}).text
    # paging: 50 a page, an "older" link continues after the last one shown
    for i in range(50):
        make_user(db, "worker", email=f"bulk{i}@example.org", token=False)
    first = client.get("/admin/users")
    older = re.search(r'<a href="([^"]+)" rel="next">', first.text).group(1).replace("&amp;", "&")
    second = client.get(older)
    assert len(_ids(first.text, "admin-user")) == 50
    assert _ids(second.text, "admin-user") == [rev.id, *(p.id for p in reversed(people)), a.id]
    assert 'rel="next"' not in second.text


def test_suspend_asks_first_then_ends_the_workers_session(client, db, app, admin):
    _, token = admin
    w = make_user(db, "worker", email="amina@example.org")
    with TestClient(app) as phone:
        page_login(phone, w)
        assert phone.get("/assignments").status_code == 200
        page = client.get(f"/admin/users/{w.id}")
        assert "Sessions open</dt><dd>1</dd>" in page.text
        assert f'action="/admin/users/{w.id}/reset-password"' in page.text  # the reset form (its handler: accounts)
        r = client.post(f"/admin/users/{w.id}/suspend", data={"csrf_token": token})
        assert r.status_code == 200 and "Suspend worker (amina@example.org)?" in r.text and "cannot log in" in r.text
        assert 'name="confirmed" value="yes"' in r.text
        assert phone.get("/assignments").status_code == 200  # nothing happened yet
        r = client.post(
            f"/admin/users/{w.id}/suspend", data={"csrf_token": token, "confirmed": "yes"}, follow_redirects=False
        )
        assert r.status_code == 303 and r.headers["location"] == f"/admin/users/{w.id}?m=suspended"
        r = client.get(r.headers["location"])
        assert "Account suspended" in r.text and ">suspended</span>" in r.text and "Reactivate" in r.text
        r = phone.get("/assignments", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
    r = client.post(f"/admin/users/{w.id}/reactivate", data={"csrf_token": token}, follow_redirects=False)
    assert r.headers["location"].endswith("m=reactivated")
    with db.transaction() as s:
        assert [e.action for e in audit.list_events(s, entity_type="user", entity_id=str(w.id), action="user.s")] == [
            "user.suspended",
            "user.sessions_ended",
        ]


def test_role_down_asks_first_role_up_does_not(client, db, admin):
    _, token = admin
    w = make_user(db, "worker")
    r = client.post(f"/admin/users/{w.id}/role", data={"csrf_token": token, "role": "reviewer"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("m=user_role")
    r = client.post(f"/admin/users/{w.id}/role", data={"csrf_token": token, "role": "worker"})
    assert r.status_code == 200 and "from reviewer to worker?" in r.text and 'name="role" value="worker"' in r.text
    r = client.post(f"/admin/users/{w.id}/role", data={"csrf_token": token, "role": "requester"})
    assert r.status_code == 422 and 'data-code="user.organization_required"' in r.text and "Latest changes" in r.text


def test_create_a_requester_in_a_lab(client, db, admin):
    _, token = admin
    r = client.post("/admin/organizations", data={"csrf_token": token, "name": "Open Robotics"}, follow_redirects=False)
    org_url = r.headers["location"].split("?")[0]
    org_id = int(org_url.rsplit("/", 1)[1])
    assert f'<option value="{org_id}" selected translate="no">' in client.get(f"/admin/users/new?org={org_id}").text
    form = {
        "csrf_token": token,
        "email": "lab@example.org",
        "display_name": "Lab Lead",
        "password": PASSWORD,
        "role": "requester",
        "organization_id": str(org_id),
        "org_role": "viewer",
    }
    r = client.post("/admin/users/new", data={**form, "password": "short"})
    assert r.status_code == 422 and 'value="lab@example.org"' in r.text  # sent back filled in
    r = client.post("/admin/users/new", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    r = client.get(r.headers["location"])
    assert "Open Robotics</a> (viewer)" in r.text
    assert "Lab Lead" in client.get(org_url).text


def test_organization_page_team_and_its_refusals(client, db, admin):
    _, token = admin
    owner = make_user(db, "requester", org="Lab A", email="owner@lab-a.org")
    r = client.get("/admin/organizations")
    org_url = re.search(r'href="(/admin/organizations/\d+)"><strong translate="no">Lab A', r.text).group(1)
    w = make_user(db, "worker", email="new@example.org")
    r = client.post(
        f"{org_url}/members", data={"csrf_token": token, "email": "ghost@example.org", "org_role": "editor"}
    )
    assert r.status_code == 404 and 'data-code="user.not_found"' in r.text and 'value="ghost@example.org"' in r.text
    r = client.post(f"{org_url}/members", data={"csrf_token": token, "email": w.email, "org_role": "editor"})
    assert r.status_code == 200 and "Member added." in r.text and "new@example.org" in r.text
    r = client.post(f"{org_url}/members/{owner.id}/role", data={"csrf_token": token, "org_role": "viewer"})
    assert r.status_code == 409 and 'data-code="org.last_owner"' in r.text
    r = client.post(f"{org_url}/members/{w.id}/remove", data={"csrf_token": token})
    assert "Remove worker from Lab A?" in r.text and "keep their account" in r.text
    r = client.post(f"{org_url}/members/{w.id}/remove", data={"csrf_token": token, "confirmed": "yes"})
    assert "Removed from the lab." in r.text and "new@example.org" not in r.text
    r = client.post(f"{org_url}/consent-authoring", data={"csrf_token": token, "allowed": "yes"})
    assert "This lab may write consent documents" in r.text


def test_audit_log_filters_and_links_people(client, db, admin):
    a, token = admin
    w = make_user(db, "worker", email="amina@example.org")
    client.post(f"/admin/users/{w.id}/suspend", data={"csrf_token": token, "confirmed": "yes"})
    r = client.get("/admin/audit", params={"entity_type": "user", "entity_id": str(w.id), "action": "user.s"})
    assert r.status_code == 200
    events = re.findall(r'class="card admin-event"[^>]*>\s*<div><code>([a-z_.]+)</code>', r.text)
    assert events == ["user.sessions_ended", "user.suspended"]  # newest first
    assert f'<a href="/admin/users/{a.id}" translate="no">admin</a>' in r.text  # who did it, linked
    assert f'<a href="/admin/users/{w.id}" translate="no">worker (#{w.id})</a>' in r.text  # whom it was about
    assert "<dt>reason</dt><dd>suspended</dd>" in r.text  # the payload, readable
    r = client.get("/admin/audit", params={"actor": "root@example.org", "since": "2000-01-01", "until": "2999-12-31"})
    assert (
        "user.suspended" in r.text and "token.issued" not in r.text.split("Newest first")[1].split("user.suspended")[0]
    )
    assert "No events match." in client.get("/admin/audit", params={"until": "2000-01-01"}).text
    assert "No events match." not in client.get("/admin/audit", params={"since": "bad date"}).text  # ignored


def test_health_page_retries_a_failed_job(client, db, admin, settings, tmp_path):
    _, token = admin
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    w = make_user(db, "worker")
    job_id, _ = failed_job(db, settings, w.id, open_campaign(client, lab)["id"], tmp_path)
    r = client.get("/admin/health")
    assert r.status_code == 200
    assert _ids(r.text, "admin-job") == [job_id] and "decoder fell over" in r.text
    assert "Stored files</dt><dd>1 (" in r.text and "free of" in r.text and 'role="img"' in r.text
    r = client.post(f"/admin/jobs/{job_id}/retry", data={"csrf_token": token})
    assert "queued again" in r.text and "Nothing is stuck." in r.text
    with db.transaction() as s:
        assert s.get(Job, job_id).status is JobStatus.pending
    r = client.post("/admin/jobs/requeue", data={"csrf_token": token, "stage": "probe"})
    assert "Run the “probe” stage again?" in r.text
    r = client.post("/admin/jobs/requeue", data={"csrf_token": token, "stage": "nope", "confirmed": "yes"})
    assert r.status_code == 422 and 'data-code="pipeline.unknown_stage"' in r.text


def test_health_page_lists_failed_de_identifications_and_requeue_says_what_happens(client, db, admin, app, tmp_path):
    """A failed de-identification leaves its job "done": the health page lists the clip with its
    reason (it showed nothing before), and the requeue question says the QC verdict stays."""
    from egocrowd.db.models import DeidStatus
    from tests.support.deid import add_clip, make_video

    _, token = admin
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    w = make_user(db, "worker")
    raw = make_video(tmp_path / "raw.mp4", seconds=1)
    kw = {"campaign_id": open_campaign(client, lab)["id"], "worker_id": w.id, "raw": raw, "derived": None}
    assert "No de-identification has failed." in client.get("/admin/health").text
    failed = add_clip(db, app.state.blobs, deid=DeidStatus.failed, reason="deid.model_missing", **kw)
    add_clip(db, app.state.blobs, deid=DeidStatus.pending, **kw)
    r = client.get("/admin/health")
    assert _ids(r.text, "admin-deid-failed") == [failed]
    assert f'<a href="/clips/{failed}">Clip {failed}</a>' in r.text and "<code>deid.model_missing</code>" in r.text
    assert "waiting: 1 · blurred: 0 · in review: 0 · failed: 1" in r.text
    r = client.post("/admin/jobs/requeue", data={"csrf_token": token, "stage": "deidentify"})
    assert "is de-identified again." in r.text and "goes back to processing" not in r.text


def _main(html: str) -> str:
    """The page's own part (the shell around it is checked with the shell)."""
    return html[html.index("<main>") : html.index("</main>")]


def test_admin_pages_and_their_refusals_speak_the_readers_language(client, db, admin, monkeypatch):
    """In the pseudo-language every word of the console, its confirmations and its refusals went
    through gettext; what people wrote (names, emails) and technical English (codes) is marked."""
    from tests.support.i18n import untranslated

    monkeypatch.setenv("EGOCROWD_PSEUDO_LOCALE", "1")
    a, token = admin
    owner = make_user(db, "requester", org="Lab A", email="owner@lab-a.org")
    w = make_user(db, "worker", email="amina@example.org")
    client.post(f"/admin/users/{w.id}/suspend", data={"csrf_token": token, "confirmed": "yes"})
    client.cookies.set("lang", "en-XA")
    written = frozenset({"Lab A", "owner@lab-a.org", "amina@example.org", "admin", "worker", "requester"})
    org_url = re.search(r'href="(/admin/organizations/\d+)"', client.get("/admin/organizations").text).group(1)
    pages = {
        path: client.get(path)
        for path in (
            "/admin",
            "/admin/users",
            "/admin/users/new",
            f"/admin/users/{w.id}",
            f"/admin/users/{owner.id}",
            "/admin/organizations",
            org_url,
            "/admin/audit",
            "/admin/health",
        )
    }
    # refusals and confirmations: a form error, a pydantic-style field error, a question
    pages["refused role"] = client.post(
        f"{org_url}/members/{owner.id}/role", data={"csrf_token": token, "org_role": "viewer"}
    )
    pages["short password"] = client.post(
        "/admin/users/new", data={"csrf_token": token, "email": "x@example.org", "password": "short", "role": "worker"}
    )
    confirm = client.post(f"/admin/users/{owner.id}/role", data={"csrf_token": token, "role": "worker"})
    pages["missing"] = client.get("/admin/organizations/999999")
    for name, r in pages.items():
        assert r.status_code in (200, 404, 409, 422), (name, r.status_code)
        assert "⟦" in r.text, name
        assert untranslated(_main(r.text), written) == [], name
    assert 'data-code="org.last_owner"' in pages["refused role"].text
    assert 'lang="en" dir="ltr" translate="no"' in pages["refused role"].text  # the English detail, marked
    assert '<h1 data-code="org.not_found">⟦' in pages["missing"].text  # the title, translated
    # the confirmation page is the shell's; the question and what happens are this page's words
    question = re.search(r"<h1>(.*?)</h1>", confirm.text).group(1)
    assert question.startswith("⟦") and "owner@lab-a.org" not in question
    assert confirm.text.count("<li>⟦") == 3
