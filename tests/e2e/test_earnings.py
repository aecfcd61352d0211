"""Money in a real Chromium on a 360 px phone: the admin records a lab's deposit on the campaign page,
the campaign opens, clips are paid on acceptance (one taken back with a reason, one still waiting),
and the worker's earnings page shows each clip's state, buyer, use and hourly rate, the week's total
and the balance, exactly."""

from __future__ import annotations

import re

import pytest

from egocrowd.db.models import Clip, User
from egocrowd.labels import review
from egocrowd.pay import budgets, ledger
from tests.platform.helpers import API, create_campaign, make_user, set_status
from tests.support.browser import SMALL_PHONE, log_in, look, sqlite_db_url
from tests.support.deid import add_clip, make_video

pytestmark = pytest.mark.browser
db_url = sqlite_db_url  # SQLite only: the pages are the same on both backends


def test_a_deposit_then_a_workers_earnings_on_a_phone(app, live, db, world, chromium, client, tmp_path):
    video = make_video(tmp_path / "clip.mp4", seconds=2)
    cid = create_campaign(
        client, world.lab, target_clips=4, pay_cents=150, expected_minutes=4, buyer_name="Open Robotics Lab"
    )["id"]
    admin = make_user(db, "admin")
    browser = chromium()

    page = log_in(browser, live.base, admin.email, SMALL_PHONE)
    page.goto(f"/campaigns/{cid}")
    assert page.locator("[data-budget=short]").inner_text() == "USD\xa06.00 before the campaign can open"
    assert page.input_value("#deposit-amount") == "6.00"
    form, amount = page.locator("#deposit-form").bounding_box(), page.locator("#deposit-amount").bounding_box()
    assert amount["width"] > 0.9 * form["width"]  # a full-width field like the other forms', not a tiny box
    page.fill("#deposit-reason", "Wire OR-2026-114")
    look(page, "pay-1-deposit")
    page.click("#deposit")
    page.wait_for_url(re.compile(rf"/campaigns/{cid}\?m=deposited$"))
    assert page.locator("[data-budget=deposited]").inner_text() == "USD\xa06.00"
    assert set_status(client, world.lab, cid, "open", funded=False).status_code == 200

    ids = [
        add_clip(db, app.state.blobs, campaign_id=cid, worker_id=world.worker.id, raw=video, derived=video)
        for _ in range(3)
    ]
    with db.transaction() as s:
        reviewer = s.get_one(User, admin.id)
        for clip_id in ids[:2]:
            review.accept_clip(s, s.get_one(Clip, clip_id), reviewer, how="review")
        payment = budgets.pay_accepted_clip(s, s.get_one(Clip, ids[1]), reviewer)
        ledger.reverse(s, payment.id, "Found after approval: the clip repeats another one.", reviewer)

    page.goto(f"/campaigns/{cid}")
    assert (
        page.locator("[data-budget=spent]").inner_text() == "USD\xa01.50 (1 clip paid, USD\xa01.50 each with the fee)"
    )
    look(page, "pay-2-campaign-budget")

    worker = log_in(browser, live.base, world.worker.email, SMALL_PHONE)
    worker.get_by_role("link", name="Earnings").click()
    worker.wait_for_url(re.compile(r"/earnings$"))
    assert worker.locator("[data-balance=USD]").inner_text().startswith("USD\xa01.50")
    assert worker.locator("[data-total=pending-USD]").inner_text().startswith("USD\xa01.50")
    paid = worker.locator(f"[data-clip='{ids[0]}']")
    assert paid.get_attribute("data-state") == "approved"
    assert paid.locator("[data-amount]").inner_text() == "USD\xa01.50"
    assert paid.locator("[data-hourly]").inner_text().startswith("USD\xa022.50 an hour")
    text = paid.inner_text()
    assert "Open Robotics Lab" in text and "Train robot-learning and AI models on the clips" in text
    taken = worker.locator(f"[data-clip='{ids[1]}']")
    assert taken.get_attribute("data-state") == "reversed"
    assert "Found after approval: the clip repeats another one." in taken.inner_text()
    assert worker.locator(f"[data-clip='{ids[2]}']").get_attribute("data-state") == "pending"
    week = worker.locator("#week-table tbody tr")
    assert week.count() == 1 and week.locator("td").nth(1).inner_text() == "USD\xa01.50"
    look(worker, "pay-3-earnings")
    api = client.get(f"{API}/me/earnings", headers=world.worker.headers).json()
    assert api["balances"] == [{"amount": "1.50", "currency": "USD"}]
