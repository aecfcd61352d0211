"""What email proves, through a real SMTP server: sign-up that does not reveal existing addresses,
confirming an address (and changing it), password resets by the person or started by an admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from egocrowd.accounts import recovery
from egocrowd.accounts import service as accounts
from egocrowd.clock import utcnow
from egocrowd.db.models import AuditEvent, User
from egocrowd.errors import Gone
from tests.platform.helpers import API, PASSWORD, Actor, assert_problem, make_user, open_campaign, publish_consent, sign
from tests.platform.test_access import _csrf, page_login

NEW_PASSWORD = "a completely new passphrase"


@pytest.fixture
def settings(settings, smtp):
    """The app mails through the in-process SMTP server."""
    settings.mail_url = smtp.url
    settings.base_url = "https://egocrowd.example"
    return settings


def _token(client, email: str, password: str = PASSWORD) -> dict:
    r = client.post(f"{API}/auth/token", json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _actions(db, user_id: int) -> list[str]:
    with db.transaction() as s:
        return list(
            s.scalars(
                sa.select(AuditEvent.action)
                .where(AuditEvent.entity_type == "user", AuditEvent.entity_id == str(user_id))
                .order_by(AuditEvent.id)
            )
        )


def test_signup_answers_alike_for_new_and_existing_addresses(client, db, smtp):
    body = {"email": "amina@example.org", "password": PASSWORD, "display_name": "Amina", "country": "KE"}
    first = client.post(f"{API}/auth/signup", json=body)
    again = client.post(f"{API}/auth/signup", json={**body, "password": "another long passphrase"})
    assert (first.status_code, first.content) == (again.status_code, again.content)
    assert first.status_code == 202
    # the page too: the same redirect for both
    token = _csrf(client, "/signup")
    pages = [
        client.post("/signup", data={**body, "email": email, "csrf_token": token}, follow_redirects=False)
        for email in ("amina@example.org", "baraka@example.org")
    ]
    assert {(r.status_code, r.headers["location"], r.content) for r in pages} == {(303, "/signup/sent", b"")}
    assert "Check your email" in client.get("/signup/sent").text

    subjects = [m["Subject"] for m in smtp.to("amina@example.org")]
    assert subjects == [
        "Confirm your email address",
        "Someone tried to sign up with your address",
        "Someone tried to sign up with your address",
    ]
    assert "https://egocrowd.example/forgot-password" in smtp.to("amina@example.org")[1].get_content()
    assert [m["Subject"] for m in smtp.to("baraka@example.org")] == ["Confirm your email address"]
    # the existing account kept its password: the second sign-up changed nothing
    _token(client, "amina@example.org")
    with db.transaction() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(User)) == 2


def test_an_unconfirmed_worker_reads_but_claims_only_after_following_the_link(client, db, smtp):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    campaign = open_campaign(client, lab)
    client.post(f"{API}/auth/signup", json={"email": "w@example.org", "password": PASSWORD, "country": "KE"})
    headers = _token(client, "w@example.org")
    me = client.get(f"{API}/me", headers=headers).json()
    assert me["email_verified"] is False
    assert client.get(f"{API}/campaigns", headers=headers).status_code == 200
    sign(client, Actor(me["id"], me["email"], "worker", headers["Authorization"].removeprefix("Bearer ")))

    problem = assert_problem(
        client.post(f"{API}/campaigns/{campaign['id']}/claim", headers=headers), 403, "user.email_unverified"
    )
    assert problem["resend"] == "/api/v1/me/verify-email"

    first = smtp.link("w@example.org", "/verify-email")
    assert client.post(f"{API}/me/verify-email", headers=headers).status_code == 202  # a new link: the first dies
    second = smtp.link("w@example.org", "/verify-email")
    assert first != second
    assert_problem(client.post(f"{API}/auth/verify-email", json={"token": first}), 410, "user.link_invalid")

    r = client.post(f"{API}/auth/verify-email", json={"token": second})
    assert r.status_code == 200 and r.json()["email_verified"] is True
    assert_problem(client.post(f"{API}/auth/verify-email", json={"token": second}), 410, "user.link_invalid")
    assert client.post(f"{API}/campaigns/{campaign['id']}/claim", headers=headers).status_code == 201
    sent = len(smtp.messages)
    assert client.post(f"{API}/me/verify-email", headers=headers).status_code == 202
    assert len(smtp.messages) == sent  # already confirmed: nothing to send
    assert "user.email_verified" in _actions(db, me["id"])


def test_the_page_link_confirms_the_address(client, db, smtp):
    w = make_user(db, "worker")
    with db.transaction() as s:
        s.get(User, w.id).email_verified_at = None
    page_login(client, w)
    assert "not confirmed" in client.get("/account").text
    assert "Confirm your email address to take tasks" in client.get("/campaigns").text  # on every page
    token = _csrf(client, "/account")
    r = client.post("/account/verify", data={"csrf_token": token}, follow_redirects=False)
    assert r.headers["location"] == "/account?m=verify_sent"
    r = client.get("/verify-email", params={"token": smtp.link(w.email, "/verify-email")}, follow_redirects=False)
    assert r.headers["location"] == "/account?m=verified"
    page = client.get("/account?m=verified").text
    assert "Your email address is confirmed" in page and "not confirmed" not in page
    assert "Confirm your email address to take tasks" not in page
    r = client.get("/verify-email", params={"token": "used-or-not"})
    assert r.status_code == 410 and "does not work any more" in r.text


def test_changing_the_address_needs_the_new_one_confirmed(client, db, smtp):
    w = make_user(db, "worker")
    other = make_user(db, "worker")
    r = client.patch(f"{API}/me", headers=w.headers, json={"email": "New.Address@example.org"})
    assert r.status_code == 200 and r.json()["email"] == w.email  # not replaced yet
    link = smtp.link("new.address@example.org", "/verify-email")
    # asking for an address another account has: that owner gets a note, the caller the same answer
    r = client.patch(f"{API}/me", headers=w.headers, json={"email": other.email})
    assert r.status_code == 200 and r.json()["email"] == w.email
    assert [m["Subject"] for m in smtp.to(other.email)] == ["Someone tried to use your address for another account"]

    r = client.post(f"{API}/auth/verify-email", json={"token": link})
    assert r.status_code == 200 and r.json()["email"] == "new.address@example.org"
    assert client.get(f"{API}/me", headers=w.headers).json()["email"] == "new.address@example.org"
    _token(client, "new.address@example.org")
    assert "user.email_changed" in _actions(db, w.id)


def test_password_reset_by_email(client, db, smtp):
    w = make_user(db, "worker")
    unknown = client.post(f"{API}/auth/password-reset", json={"email": "nobody@example.org"})
    known = client.post(f"{API}/auth/password-reset", json={"email": w.email.upper()})
    assert (unknown.status_code, unknown.content) == (known.status_code, known.content)
    assert [m["To"] for m in smtp.messages] == [w.email]
    first = smtp.link(w.email, "/reset-password")
    client.post(f"{API}/auth/password-reset", json={"email": w.email})
    second = smtp.link(w.email, "/reset-password")
    assert first != second
    confirm = f"{API}/auth/password-reset/confirm"
    assert_problem(client.post(confirm, json={"token": first, "new_password": NEW_PASSWORD}), 410, "user.link_invalid")
    assert_problem(
        client.post(confirm, json={"token": second, "new_password": "password1234"}), 422, "user.common_password"
    )
    assert client.post(confirm, json={"token": second, "new_password": NEW_PASSWORD}).status_code == 204  # still good
    assert_problem(client.post(confirm, json={"token": second, "new_password": NEW_PASSWORD}), 410, "user.link_invalid")

    assert_problem(client.get(f"{API}/me", headers=w.headers), 401, "auth.bad_token")  # tokens revoked
    assert_problem(
        client.post(f"{API}/auth/token", json={"email": w.email, "password": PASSWORD}), 401, "auth.bad_credentials"
    )
    _token(client, w.email, NEW_PASSWORD)
    actions = _actions(db, w.id)
    assert actions.count("user.password_reset_started") == 2 and "user.password_reset" in actions
    assert "user.sessions_ended" in actions


def test_reset_links_expire_and_die_with_a_password_change(db):
    w = make_user(db, "worker")
    t0 = utcnow()
    with db.transaction() as s:
        letter = recovery.start_password_reset(s, s.get(User, w.id), actor=None, base_url="http://x", now=t0)
    secret = letter.body.split("token=")[1].split()[0]
    with pytest.raises(Gone), db.transaction() as s:
        recovery.reset_password(s, secret, NEW_PASSWORD, now=t0 + timedelta(minutes=61))
    with db.transaction() as s:
        letter = recovery.start_password_reset(s, s.get(User, w.id), actor=None, base_url="http://x")
        accounts.change_password(s, s.get(User, w.id), PASSWORD, NEW_PASSWORD)
    secret = letter.body.split("token=")[1].split()[0]
    with pytest.raises(Gone), db.transaction() as s:
        recovery.reset_password(s, secret, "yet another passphrase")


def test_reset_requests_are_throttled_like_log_in(client, db, smtp):
    w = make_user(db, "worker")
    for _ in range(10):
        assert client.post(f"{API}/auth/password-reset", json={"email": w.email}).status_code == 202
    r = client.post(f"{API}/auth/password-reset", json={"email": w.email})
    assert_problem(r, 429, "auth.throttled")
    assert len(smtp.to(w.email)) == 10
    # log-ins have their own counters: the account can still log in
    _token(client, w.email)


def test_forgot_password_pages(client, db, smtp):
    w = make_user(db, "worker")
    assert "Forgot your password?" in client.get("/login").text
    token = _csrf(client, "/forgot-password")
    answers = {
        client.post("/forgot-password", data={"email": e, "csrf_token": token}, follow_redirects=False).headers[
            "location"
        ]
        for e in (w.email, "nobody@example.org")
    }
    assert answers == {"/forgot-password/sent"}
    link = smtp.link(w.email, "/reset-password")
    assert client.get("/reset-password", params={"token": "nope"}).status_code == 410
    form = client.get("/reset-password", params={"token": link})
    assert form.status_code == 200 and 'name="token"' in form.text
    token = _csrf(client, f"/reset-password?token={link}")
    r = client.post("/reset-password", data={"token": link, "password": "short", "csrf_token": token})
    assert r.status_code == 422 and 'data-code="user.weak_password"' in r.text and link in r.text
    r = client.post(
        "/reset-password", data={"token": link, "password": NEW_PASSWORD, "csrf_token": token}, follow_redirects=False
    )
    assert r.headers["location"] == "/login?m=password_reset"
    assert "Log in with the new one" in client.get("/login?m=password_reset").text
    _token(client, w.email, NEW_PASSWORD)


def test_an_admin_sends_a_reset_link_after_confirming(client, db, smtp):
    admin = make_user(db, "admin")
    w = make_user(db, "worker")
    csrf = page_login(client, admin)
    r = client.post(f"/admin/users/{w.id}/reset-password", data={"csrf_token": csrf})
    assert r.status_code == 200 and "Send the link" in r.text and w.email in r.text  # asks first
    assert smtp.messages == []
    r = client.post(
        f"/admin/users/{w.id}/reset-password", data={"csrf_token": csrf, "confirmed": "yes"}, follow_redirects=False
    )
    assert r.headers["location"] == f"/admin/users/{w.id}?m=reset_sent"
    assert "An administrator asked" in smtp.to(w.email)[0].get_content()
    with db.transaction() as s:
        event = s.scalar(sa.select(AuditEvent).where(AuditEvent.action == "user.password_reset_started"))
        assert event.actor_id == admin.id and event.entity_id == str(w.id)
    assert client.post("/admin/users/424242/reset-password", data={"csrf_token": csrf}).status_code == 404
    client.cookies.clear()
    _token(client, w.email)  # the old password works until the link is used
    assert client.delete(f"{API}/me", headers=w.headers).status_code == 204
    csrf = page_login(client, admin)
    r = client.post(f"/admin/users/{w.id}/reset-password", data={"csrf_token": csrf, "confirmed": "yes"})
    assert r.status_code == 409 and "deleted" in r.text  # its address is a placeholder now


def test_only_admins_send_reset_links(client, db, smtp):
    w = make_user(db, "worker")
    other = make_user(db, "worker")
    csrf = page_login(client, w)
    r = client.post(f"/admin/users/{other.id}/reset-password", data={"csrf_token": csrf, "confirmed": "yes"})
    assert r.status_code == 403 and smtp.messages == []
