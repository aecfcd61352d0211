"""Notices: listed newest first, read one by one or all at once, counted in the menu, and emailed
(through a real SMTP server) to confirmed addresses only, from the worker's housekeeping."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from egocrowd import notifications
from egocrowd.blobs import BlobStore
from egocrowd.clock import utcnow
from egocrowd.db.models import Notification, User
from egocrowd.notifications import deliver_notifications, notify
from egocrowd.uploads import UploadStore
from egocrowd.worker import housekeeping
from tests.platform.helpers import API, assert_problem, make_user
from tests.platform.test_access import page_login
from tests.support.smtp import _free_port


@pytest.fixture
def settings(settings, smtp):
    settings.mail_url = smtp.url
    settings.base_url = "https://egocrowd.example"
    return settings


def _notify(db, user_id: int, n: int = 1, **kw) -> list[int]:
    with db.transaction() as s:
        notes = [
            notify(
                s,
                user_id,
                kw.get("kind", "qc.result"),
                f"Clip {i} passed the checks",
                "All checks passed.",
                f"/clips/{i}",
            )
            for i in range(n)
        ]
        s.flush()
        return [note.id for note in notes]


def test_the_api_lists_and_marks_notices(client, db):
    w, other = make_user(db, "worker"), make_user(db, "worker")
    ids = _notify(db, w.id, 3)
    _notify(db, other.id)
    items = client.get(f"{API}/me/notifications", headers=w.headers).json()["items"]
    assert [i["id"] for i in items] == ids[::-1]  # newest first, only mine
    assert items[0]["link"] == "/clips/2" and items[0]["read_at"] is None

    r = client.post(f"{API}/me/notifications/{ids[0]}/read", headers=w.headers)
    assert r.status_code == 200 and r.json()["read_at"] is not None
    unread = client.get(f"{API}/me/notifications?unread_only=true", headers=w.headers).json()["items"]
    assert [i["id"] for i in unread] == ids[:0:-1]
    assert_problem(
        client.post(f"{API}/me/notifications/{ids[1]}/read", headers=other.headers), 404, "notification.not_found"
    )
    assert client.post(f"{API}/me/notifications/read-all", headers=w.headers).status_code == 204
    assert client.get(f"{API}/me/notifications?unread_only=true", headers=w.headers).json()["items"] == []
    assert len(client.get(f"{API}/me/notifications?unread_only=true", headers=other.headers).json()["items"]) == 1
    assert len(client.get(f"{API}/me/notifications?limit=2", headers=w.headers).json()["items"]) == 2


def test_the_page_and_the_menu_count(client, db):
    w = make_user(db, "worker")
    csrf = page_login(client, w)
    assert "Notices</a>" in client.get("/campaigns").text and "No notices yet" in client.get("/notifications").text
    ids = _notify(db, w.id, 2)
    page = client.get("/notifications").text
    assert "(2 new)" in page and page.index("Clip 1 passed") < page.index("Clip 0 passed")
    assert page.count('class="card notice unread"') == 2
    r = client.post(f"/notifications/{ids[1]}/read", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.headers["location"] == "/clips/1"  # where the notice points
    assert "(1 new)" in client.get("/campaigns").text
    client.post("/notifications/read-all", data={"csrf_token": csrf})
    page = client.get("/notifications").text
    assert " new)" not in page and "unread" not in page


def test_notices_are_emailed_to_confirmed_addresses_only(db, settings, smtp):
    verified = make_user(db, "worker")
    unverified = make_user(db, "worker")
    deleted = make_user(db, "worker")
    with db.transaction() as s:
        s.get(User, unverified.id).email_verified_at = None
        s.get(User, deleted.id).deleted_at = utcnow()
    for actor in (verified, unverified, deleted):
        _notify(db, actor.id)
    assert deliver_notifications(db, settings) == 1
    (msg,) = smtp.messages
    assert (msg["To"], msg["Subject"]) == (verified.email, "Clip 0 passed the checks")
    assert "https://egocrowd.example/clips/0" in msg.get_content()
    with db.transaction() as s:  # every notice is handled: none is looked at again
        assert s.scalar(sa.select(sa.func.count()).where(Notification.emailed_at.is_(None))) == 0
    assert deliver_notifications(db, settings) == 0 and len(smtp.messages) == 1


def test_notice_emails_can_be_turned_off(db, settings, smtp):
    w = make_user(db, "worker")
    _notify(db, w.id, 2)
    settings.notice_emails = False
    assert deliver_notifications(db, settings) == 0
    settings.notice_emails = True
    assert deliver_notifications(db, settings) == 0 and smtp.messages == []  # not sent later either


def test_a_failed_send_is_tried_again_next_round(db, settings, smtp):
    w = make_user(db, "worker")
    _notify(db, w.id, 3)
    settings.mail_url = f"smtp://127.0.0.1:{_free_port()}"  # nobody listens
    assert deliver_notifications(db, settings) == 0
    settings.mail_url = smtp.url
    assert deliver_notifications(db, settings, limit=2) == 2
    assert deliver_notifications(db, settings) == 1
    assert len(smtp.messages) == 3


def test_housekeeping_delivers_notices(db, settings, smtp):
    w = make_user(db, "worker")
    _notify(db, w.id)
    done = housekeeping(db, BlobStore(settings.blobs_path), UploadStore(settings.uploads_path), settings)
    assert done["notices_emailed"] == 1 and len(smtp.to(w.email)) == 1


def test_the_unread_count_is_zero_without_a_session(db):
    w = make_user(db, "worker")
    _notify(db, w.id)
    with db.transaction() as s:
        user = s.get(User, w.id)
        assert notifications.unread_for(user) == 1
    assert notifications.unread_for(user) == 0  # detached: no query
    assert notifications.unread_for(None) == 0
