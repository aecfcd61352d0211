"""Sessions live in the database: logging out, a password change, "log out everywhere", a role change
and suspension end them for good (a copy of the cookie saved before is worth nothing); API tokens
expire, record their last use, and die with the password."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from egocrowd.accounts import service as accounts
from egocrowd.db.models import ApiToken, LoginSession, Role, User, utcnow
from egocrowd.errors import Forbidden
from egocrowd.web.auth import COOKIE
from tests.platform.helpers import API, PASSWORD, assert_problem, make_user

NEW_PASSWORD = "a brand new passphrase"


def _csrf(client, path="/login") -> str:
    r = client.get(path)
    assert r.status_code == 200, r.text
    return re.search(r'name="csrf-token" content="([^"]+)"', r.text).group(1)


def browser(app, actor) -> tuple[TestClient, str]:
    """A client logged in through the log-in form, and its CSRF token."""
    c = TestClient(app, base_url="http://testserver")
    r = c.post(
        "/login", data={"email": actor.email, "password": PASSWORD, "csrf_token": _csrf(c)}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    return c, _csrf(c, "/campaigns")


def with_cookie(app, cookie: str) -> TestClient:
    c = TestClient(app, base_url="http://testserver")
    c.cookies.set(COOKIE, cookie)
    return c


def test_a_cookie_saved_before_logout_neither_reads_nor_writes(app, db):
    w = make_user(db, "worker", token=False)
    c, csrf = browser(app, w)
    saved = c.cookies.get(COOKIE)
    assert c.get(f"{API}/me").json()["id"] == w.id
    assert c.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303

    replay = with_cookie(app, saved)
    assert_problem(replay.get(f"{API}/me"), 401, "auth.required")
    r = replay.get("/campaigns", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    # a write with the CSRF token that belonged to it: still nobody
    assert_problem(replay.post(f"{API}/me/logout-everywhere", headers={"X-CSRF-Token": csrf}), 401, "auth.required")


def test_the_database_keeps_only_a_hash_of_the_cookie_secret(app, db):
    w = make_user(db, "worker", token=False)
    c, _ = browser(app, w)
    data = app.state.cookie_signer.loads(c.cookies.get(COOKIE))
    assert set(data) == {"sid", "csrf"} and "uid" not in data
    with db.transaction() as s:
        row = s.scalar(sa.select(LoginSession).where(LoginSession.user_id == w.id))
        assert row.secret_hash != data["sid"] and len(row.secret_hash) == 64
        assert row.expires_at - row.created_at == timedelta(days=app.state.settings.session_days)


def test_api_logout_ends_the_session(app, db):
    w = make_user(db, "worker", token=False)
    c = TestClient(app, base_url="http://testserver")
    assert c.post(f"{API}/auth/session", json={"email": w.email, "password": PASSWORD}).status_code == 200
    saved = c.cookies.get(COOKIE)
    csrf = app.state.cookie_signer.loads(saved)["csrf"]
    assert_problem(c.post(f"{API}/auth/logout"), 403, "auth.csrf")
    assert c.post(f"{API}/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert_problem(with_cookie(app, saved).get(f"{API}/me"), 401, "auth.required")


def test_list_and_revoke_my_sessions(app, db):
    w = make_user(db, "worker")
    phone, _ = browser(app, w)
    laptop, laptop_csrf = browser(app, w)
    stranger, stranger_csrf = browser(app, make_user(db, "worker"))

    items = laptop.get(f"{API}/me/sessions").json()["items"]
    assert len(items) == 2 and sum(i["current"] for i in items) == 1
    phone_id = next(i["id"] for i in items if not i["current"])
    assert items[0]["user_agent"] == "testclient"
    # nobody else's sessions, nor ending them
    assert all(not i["current"] for i in w_items(app, w))
    assert_problem(
        stranger.delete(f"{API}/me/sessions/{phone_id}", headers={"X-CSRF-Token": stranger_csrf}),
        404,
        "session.not_found",
    )
    assert laptop.delete(f"{API}/me/sessions/{phone_id}", headers={"X-CSRF-Token": laptop_csrf}).status_code == 204
    assert_problem(phone.get(f"{API}/me"), 401, "auth.required")
    assert laptop.get(f"{API}/me").status_code == 200
    assert [i["current"] for i in laptop.get(f"{API}/me/sessions").json()["items"]] == [True]


def w_items(app, actor) -> list:
    with TestClient(app, base_url="http://testserver") as c:
        return c.get(f"{API}/me/sessions", headers=actor.headers).json()["items"]


def test_password_change_ends_other_sessions_and_revokes_tokens(app, db):
    w = make_user(db, "worker")
    here, csrf = browser(app, w)
    elsewhere, _ = browser(app, w)

    body = {"current_password": "not my password", "new_password": NEW_PASSWORD}
    assert_problem(
        here.post(f"{API}/me/password", json=body, headers={"X-CSRF-Token": csrf}), 401, "auth.bad_credentials"
    )
    body = {"current_password": PASSWORD, "new_password": "password1234"}
    assert_problem(
        here.post(f"{API}/me/password", json=body, headers={"X-CSRF-Token": csrf}), 422, "user.common_password"
    )
    assert elsewhere.get(f"{API}/me").status_code == 200  # refused changes end nothing

    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert here.post(f"{API}/me/password", json=body, headers={"X-CSRF-Token": csrf}).status_code == 204
    assert here.get(f"{API}/me").status_code == 200  # the session that changed it stays
    assert_problem(elsewhere.get(f"{API}/me"), 401, "auth.required")
    with TestClient(app, base_url="http://testserver") as c:
        assert_problem(c.get(f"{API}/me", headers=w.headers), 401, "auth.bad_token")
        assert_problem(
            c.post(f"{API}/auth/token", json={"email": w.email, "password": PASSWORD}), 401, "auth.bad_credentials"
        )
        assert c.post(f"{API}/auth/token", json={"email": w.email, "password": NEW_PASSWORD}).status_code == 201


def test_log_out_everywhere_ends_every_session_and_token(app, db):
    w = make_user(db, "worker")
    here, csrf = browser(app, w)
    elsewhere, _ = browser(app, w)
    saved = here.cookies.get(COOKIE)
    assert here.post(f"{API}/me/logout-everywhere", headers={"X-CSRF-Token": csrf}).status_code == 204
    for c in (here, elsewhere, with_cookie(app, saved)):
        assert_problem(c.get(f"{API}/me"), 401, "auth.required")
    with TestClient(app, base_url="http://testserver") as c:
        assert_problem(c.get(f"{API}/me", headers=w.headers), 401, "auth.bad_token")


def test_suspension_and_role_change_end_sessions(app, db):
    admin_actor = make_user(db, "admin")
    w = make_user(db, "worker")
    r_ = make_user(db, "reviewer")
    worker_browser, _ = browser(app, w)
    reviewer_browser, _ = browser(app, r_)
    with db.transaction() as s:
        admin = s.get(User, admin_actor.id)
        accounts.set_active(s, admin, s.get(User, w.id), False)
        accounts.change_role(s, admin, s.get(User, r_.id), Role.worker)

    assert_problem(worker_browser.get(f"{API}/me"), 401, "auth.required")
    assert_problem(reviewer_browser.get(f"{API}/me"), 401, "auth.required")
    with TestClient(app, base_url="http://testserver") as c:
        assert_problem(c.get(f"{API}/me", headers=w.headers), 401, "auth.bad_token")
        # a role change keeps API tokens, which act with the new role at once
        assert c.get(f"{API}/me", headers=r_.headers).json()["role"] == "worker"
    with db.transaction() as s:  # reactivating does not bring the old session or token back
        accounts.set_active(s, s.get(User, admin_actor.id), s.get(User, w.id), True)
    with db.transaction() as s:  # events are written into the chain when their transaction commits
        kinds = [
            e
            for e in s.scalars(
                sa.text("SELECT action FROM audit_events WHERE entity_id = :i AND entity_type = 'user'"),
                {"i": str(w.id)},
            )
        ]
    assert {"user.suspended", "user.sessions_ended", "user.reactivated"} <= set(kinds)
    assert_problem(worker_browser.get(f"{API}/me"), 401, "auth.required")


def test_only_admins_change_roles_or_suspend(db):
    w = make_user(db, "worker")
    other = make_user(db, "worker")
    with db.transaction() as s:
        me, them = s.get(User, w.id), s.get(User, other.id)
        with pytest.raises(Forbidden) as refused:
            accounts.set_active(s, me, them, False)
        assert refused.value.code == "auth.forbidden"
        with pytest.raises(Forbidden) as refused:
            accounts.change_role(s, me, them, Role.admin)
        assert refused.value.code == "auth.forbidden"


def test_api_tokens_expire(client, db, settings):
    w = make_user(db, "worker", token=False)
    r = client.post(f"{API}/auth/token", json={"email": w.email, "password": PASSWORD})
    assert r.status_code == 201
    body = r.json()
    assert body["expires_at"] is not None and body["last_used_at"] is None
    with db.transaction() as s:
        row = s.get(ApiToken, body["id"])
        assert row.expires_at - row.created_at == timedelta(days=settings.token_days)
        _, old = accounts.issue_token(
            s, s.get(User, w.id), "old", ttl=timedelta(days=1), now=utcnow() - timedelta(days=2)
        )
    assert_problem(client.get(f"{API}/me", headers={"Authorization": f"Bearer {old}"}), 401, "auth.token_expired")
    assert client.get(f"{API}/me", headers={"Authorization": f"Bearer {body['token']}"}).status_code == 200


def test_token_last_use_is_recorded_at_most_once_a_minute(client, db):
    w = make_user(db, "worker")
    assert client.get(f"{API}/me", headers=w.headers).status_code == 200

    def last_used():
        with db.transaction() as s:
            return s.scalar(sa.select(ApiToken.last_used_at).where(ApiToken.user_id == w.id))

    def set_last_used(value):
        with db.transaction() as s:
            s.execute(sa.update(ApiToken).where(ApiToken.user_id == w.id).values(last_used_at=value))

    first = last_used()
    assert first is not None and utcnow() - first < timedelta(seconds=30)
    thirty_s_ago = utcnow() - timedelta(seconds=30)
    set_last_used(thirty_s_ago)
    client.get(f"{API}/me", headers=w.headers)
    assert last_used() == thirty_s_ago  # not yet a minute: no write
    set_last_used(utcnow() - timedelta(minutes=5))
    client.get(f"{API}/me", headers=w.headers)
    assert utcnow() - last_used() < timedelta(seconds=30)
    listed = client.get(f"{API}/me/tokens", headers=w.headers).json()["items"][0]
    assert listed["last_used_at"] is not None


def test_sessions_expire_and_last_seen_moves(app, db):
    w = make_user(db, "worker", token=False)
    c, _ = browser(app, w)
    with db.transaction() as s:
        s.execute(
            sa.update(LoginSession)
            .where(LoginSession.user_id == w.id)
            .values(last_seen_at=utcnow() - timedelta(minutes=10))
        )
    assert c.get(f"{API}/me").status_code == 200
    with db.transaction() as s:
        seen = s.scalar(sa.select(LoginSession.last_seen_at).where(LoginSession.user_id == w.id))
        assert utcnow() - seen < timedelta(seconds=30)
        s.execute(
            sa.update(LoginSession)
            .where(LoginSession.user_id == w.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert_problem(c.get(f"{API}/me"), 401, "auth.required")


def test_logging_in_again_replaces_the_browsers_session(app, db):
    w = make_user(db, "worker", token=False)
    c, _ = browser(app, w)
    first = c.cookies.get(COOKIE)
    r = c.post(
        "/login",
        data={"email": w.email, "password": PASSWORD, "csrf_token": _csrf(c, "/campaigns")},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert c.cookies.get(COOKIE) != first
    assert_problem(with_cookie(app, first).get(f"{API}/me"), 401, "auth.required")
    assert c.get(f"{API}/me").status_code == 200
