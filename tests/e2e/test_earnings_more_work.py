"""The earnings page on the narrowest phone (360 px) in a real Chromium, with the kinds of paid work
added last: a worker's field sessions (paid per hour) and a top-up taken back with its clip's pay,
and a platform reviewer's redaction reviews (egocrowd.pay.sessions, pay.redaction, pay.reversals)."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from egocrowd.db.models import Campaign, Clip, User
from egocrowd.pay import rates, redaction, reversals
from tests.evaluations.test_field_sessions import session_log, upload
from tests.pay.test_rates_api import _slow_accepted_clips
from tests.platform.helpers import API, fund, make_user
from tests.support.browser import SMALL_PHONE, log_in, look, sqlite_db_url

pytestmark = pytest.mark.browser
db_url = sqlite_db_url  # SQLite only: the pages are the same on both backends


def test_sessions_reversed_top_ups_and_redaction_reviews_on_a_small_phone(app, live, db, world, chromium, client):
    worker = make_user(db, "worker")
    admin = make_user(db, "admin")
    reviewer = make_user(db, "reviewer")
    cid = world.open_campaign(
        target_clips=5,
        pay_cents=150,
        expected_minutes=4,
        pay_policy={"auto_top_up": True},
        review={"redaction_pay_cents": 40},
    )["id"]
    fund(db, cid, "20.00")  # room for the top-up, the session and the redaction review
    _slow_accepted_clips(db, client, world.lab, worker, cid, n=5, minutes=15)
    body = {"environments": ["kitchen"], "session_hour_cents": 3600, "session_max_hours": 1}
    assert client.post(f"{API}/campaigns/{cid}/evaluation", json=body, headers=world.lab.headers).status_code == 201
    r = client.post(
        f"{API}/campaigns/{cid}/evaluation/policies",
        json={"name": "alpha", "kind": "physical"},
        headers=world.lab.headers,
    )
    assert r.status_code == 201, r.text
    r = upload(client, worker, cid, session_log("s-phone", "alpha", people=("P1",)))
    assert r.status_code == 201, r.text
    session_id = r.headers["Egocrowd-Field-Session-Id"]
    with db.transaction() as s:
        assert rates.propose(s, s.get_one(Campaign, cid)).state.value == "paid"
        ids = list(s.scalars(sa.select(Clip.id).where(Clip.campaign_id == cid).order_by(Clip.id)))
        clip = s.get_one(Clip, ids[0])
        reversals.reverse_clip_pay(s, s.get_one(User, admin.id), clip.id, "The clip repeats one sent last week.")
        reviewed = s.get_one(Clip, ids[-1])
        reviewed.redaction_reviewed_by = reviewer.id  # as "Mark reviewed" records it
        assert redaction.pay_for_redaction_review(s, reviewed, None) is not None
        taken, reviewed_id = clip.id, reviewed.id

    page = log_in(chromium(), live.base, worker.email, SMALL_PHONE)
    page.goto("/earnings")
    page.wait_for_url(re.compile(r"/earnings$"))
    row = page.locator(f'#top-up-table [data-top-up="{taken}"]')
    assert row.get_attribute("data-state") == "reversed" and "taken back" in row.inner_text()
    assert page.locator("#top-up-table [data-state=approved]").count() == 4
    session = page.locator(f'#session-table [data-session="{session_id}"]')
    assert session.get_attribute("data-state") == "approved" and "USD" in session.inner_text()
    look(page, "earnings-sessions-top-ups")

    desk = log_in(chromium(), live.base, reviewer.email, SMALL_PHONE)
    desk.goto("/earnings")
    line = desk.locator(f'#redaction-table [data-redaction="{reviewed_id}"]')
    assert line.get_attribute("data-state") == "approved" and "USD\xa00.40" in line.inner_text()
    look(desk, "earnings-redaction-reviews")
