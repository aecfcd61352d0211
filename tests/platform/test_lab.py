"""The lab console: the team (add, change roles, remove with a confirmation), each member's own
API tokens (the secret shown once), and what a viewer of the lab sees on a campaign page."""

from __future__ import annotations

import re

from egocrowd.db.models import OrgRole, Role, User
from tests.platform.helpers import API, claim, make_user, open_campaign, publish_consent, sign
from tests.platform.test_access import page_login


def _user(db, user_id: int) -> tuple[Role, OrgRole | None, int | None]:
    with db.transaction(write=False) as s:
        u = s.get(User, user_id)
        return u.role, u.org_role, u.organization_id


def test_an_owner_runs_the_team(client, db):
    owner = make_user(db, "requester", org="Lab A")
    worker = make_user(db, "worker")
    token = page_login(client, owner)
    page = client.get("/lab")
    assert page.status_code == 200 and "Lab A" in page.text and "Add someone" in page.text

    # an existing account, by email
    r = client.post(
        "/lab/members",
        data={"email": worker.email.upper(), "org_role": "viewer", "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/lab?m=team_added"
    role, org_role, org_id = _user(db, worker.id)
    assert role is Role.requester and org_role is OrgRole.viewer and org_id is not None

    # an unknown email without a password: said next to the email, what was typed kept
    r = client.post("/lab/members", data={"email": "nobody@example.org", "org_role": "editor", "csrf_token": token})
    assert r.status_code == 404 and 'id="email-error">There is no account with this email' in r.text
    assert 'value="nobody@example.org"' in r.text
    # a new account with a first password (a weak one is refused next to it)
    r = client.post(
        "/lab/members",
        data={
            "email": "new@example.org",
            "display_name": "Neo",
            "password": "short",
            "org_role": "editor",
            "csrf_token": token,
        },
    )
    assert r.status_code == 422 and 'id="password-error">' in r.text and "short" not in r.text.split("<main>")[1]
    r = client.post(
        "/lab/members",
        data={
            "email": "new@example.org",
            "display_name": "Neo",
            "password": "a long first password",
            "org_role": "editor",
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "Neo" in client.get("/lab").text

    # roles: a made-up one is refused, a real one changes
    r = client.post(f"/lab/members/{worker.id}/role", data={"org_role": "boss", "csrf_token": token})
    assert r.status_code == 422
    r = client.post(
        f"/lab/members/{worker.id}/role", data={"org_role": "editor", "csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303 and _user(db, worker.id)[1] is OrgRole.editor
    # the last owner cannot step down
    r = client.post(f"/lab/members/{owner.id}/role", data={"org_role": "viewer", "csrf_token": token})
    assert r.status_code == 409 and 'data-code="org.last_owner"' in r.text

    # removing asks first, and says what happens
    r = client.post(f"/lab/members/{worker.id}/remove", data={"csrf_token": token})
    assert r.status_code == 200 and "Remove worker from Lab A?" in r.text and "logged out everywhere" in r.text
    assert _user(db, worker.id)[0] is Role.requester
    r = client.post(
        f"/lab/members/{worker.id}/remove", data={"csrf_token": token, "confirmed": "yes"}, follow_redirects=False
    )
    assert r.status_code == 303 and _user(db, worker.id) == (Role.worker, None, None)


def test_viewers_and_other_labs_cannot_run_the_team(client, db):
    owner = make_user(db, "requester", org="Lab A")
    viewer = make_user(db, "requester", org="Lab A", org_role="viewer")
    stranger = make_user(db, "requester", org="Lab B")
    token = page_login(client, viewer)
    page = client.get("/lab")
    assert page.status_code == 200 and '<span class="pill">Owner</span>' in page.text  # the role's name, not its code
    assert "Add someone" not in page.text
    assert "Change role" not in page.text
    r = client.post(f"/lab/members/{owner.id}/role", data={"org_role": "viewer", "csrf_token": token})
    assert r.status_code == 403
    r = client.post("/lab/members", data={"email": stranger.email, "org_role": "owner", "csrf_token": token})
    assert r.status_code == 403 and _user(db, stranger.id)[2] != _user(db, owner.id)[2]
    client.cookies.clear()
    token = page_login(client, stranger)
    r = client.post(f"/lab/members/{owner.id}/remove", data={"csrf_token": token, "confirmed": "yes"})
    assert r.status_code == 404 and 'data-code="org.not_member"' in r.text
    # an account without a lab has no lab page
    client.cookies.clear()
    page_login(client, make_user(db, "worker"))
    assert client.get("/lab").status_code == 404


def test_api_tokens_are_made_shown_once_and_revoked(client, db):
    lab = make_user(db, "requester", org="Lab A", token=False)
    token = page_login(client, lab)
    assert "No tokens yet." in client.get("/lab/tokens").text
    r = client.post("/lab/tokens", data={"name": "  ", "csrf_token": token})
    assert r.status_code == 422 and 'id="name-error"' in r.text
    r = client.post("/lab/tokens", data={"name": "upload script", "csrf_token": token})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    secret = re.search(r'id="new-token" type="text" readonly value="(egc_[^"]+)"', r.text).group(1)
    api = {"Authorization": f"Bearer {secret}"}
    assert client.get(f"{API}/me", headers=api).json()["id"] == lab.id
    listing = client.get("/lab/tokens").text
    assert "upload script" in listing and secret[:10] in listing and secret not in listing  # shown once
    tid = client.get(f"{API}/me/tokens", headers=api).json()["items"][0]["id"]
    r = client.post(f"/lab/tokens/{tid}/revoke", data={"csrf_token": token})
    assert r.status_code == 200 and "Revoke this API token?" in r.text
    assert client.get(f"{API}/me", headers=api).status_code == 200  # not yet
    r = client.post(f"/lab/tokens/{tid}/revoke", data={"csrf_token": token, "confirmed": "yes"}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get(f"{API}/me", headers=api).status_code == 401
    other = make_user(db, "worker")
    other_tid = client.get(f"{API}/me/tokens", headers=other.headers).json()["items"][0]["id"]
    r = client.post(f"/lab/tokens/{other_tid}/revoke", data={"csrf_token": token, "confirmed": "yes"})
    assert r.status_code == 404  # only your own


def test_a_viewer_sees_the_campaign_at_a_glance_but_no_controls(client, db):
    publish_consent(db)
    owner = make_user(db, "requester", org="Lab A")
    c = open_campaign(client, owner)
    page_login(client, make_user(db, "requester", org="Lab A", org_role="viewer"))
    page = client.get(f"/campaigns/{c['id']}").text
    assert "At a glance" in page and "Budget" in page and "<svg" in page
    for control in ('data-status="paused"', 'data-status="closed"', 'id="clone"', "/edit", 'id="deposit-form"'):
        assert control not in page, control
    client.cookies.clear()
    page_login(client, owner)
    page = client.get(f"/campaigns/{c['id']}").text
    for control in ('data-status="paused"', 'data-status="closed"', 'id="clone"', "/edit"):
        assert control in page, control
    assert 'id="deposit-form"' not in page  # the lab sees its budget; admins record deposits


def test_closing_on_the_page_says_who_is_affected_first(client, db):
    publish_consent(db)
    owner = make_user(db, "requester", org="Lab A")
    c = open_campaign(client, owner, target_clips=5)
    for _ in range(2):
        w = make_user(db, "worker")
        sign(client, w)
        assert claim(client, w, c["id"]).status_code == 201
    token = page_login(client, owner)
    r = client.post(f"/campaigns/{c['id']}/status", data={"status": "closed", "csrf_token": token})
    assert r.status_code == 200 and "2 workers hold open slots: their slots end now and they are told." in r.text
    assert client.get(f"{API}/campaigns/{c['id']}", headers=owner.headers).json()["status"] == "open"
    r = client.post(f"/campaigns/{c['id']}/status", data={"status": "paused", "csrf_token": token})
    assert "2 workers hold open slots: they keep them" in r.text
    r = client.post(
        f"/campaigns/{c['id']}/status",
        data={"status": "closed", "csrf_token": token, "confirmed": "yes"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    body = client.get(f"{API}/campaigns/{c['id']}", headers=owner.headers).json()
    assert body["status"] == "closed" and body["slots_taken"] == 0
