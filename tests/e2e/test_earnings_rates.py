"""Fair pay on a 390 px phone in a real Chromium: a Kenyan worker's clips took longer than the lab
expected, the campaign topped their pay up automatically, and the earnings page shows each clip's
own hourly rate, the top-ups, and the amounts in Kenyan shillings (Babel's format for sw_KE) marked
approximate, with the rate and its date."""

from __future__ import annotations

import re

import pytest

from egocrowd.db.models import Campaign, User
from egocrowd.pay import rates
from tests.pay.test_rates_api import _slow_accepted_clips
from tests.platform.helpers import fund, make_user
from tests.support.browser import PHONE, log_in, look, sqlite_db_url

pytestmark = pytest.mark.browser
db_url = sqlite_db_url  # SQLite only: the pages are the same on both backends


def test_a_workers_top_ups_and_local_currency_on_a_phone(app, live, db, world, chromium, client):
    worker = make_user(db, "worker", country="KE")
    admin = make_user(db, "admin")
    cid = world.open_campaign(target_clips=5, pay_cents=150, expected_minutes=4, pay_policy={"auto_top_up": True})["id"]
    fund(db, cid, "5.00")  # room for the top-up
    _slow_accepted_clips(db, client, world.lab, worker, cid, n=5, minutes=15)
    with db.transaction() as s:
        rates.set_rate(s, s.get_one(User, admin.id), "USD", "KES", "129.50", "Central Bank of Kenya")
        t = rates.propose(s, s.get_one(Campaign, cid))
        assert t is not None and t.state.value == "paid"

    page = log_in(chromium(), live.base, worker.email, PHONE)
    page.goto("/earnings")
    page.wait_for_url(re.compile(r"/earnings$"))
    balance = page.locator("[data-balance=USD]").inner_text()
    assert (
        balance.startswith("USD\xa010.00") and "≈\xa0Ksh\xa01,295.00" in balance
    )  # 5 × (1.50 + 0.50) × 129.50 (Babel: a no-break space)
    line = page.locator("[data-state=approved]").first
    assert line.locator("[data-effective]").inner_text() == "USD\xa08.00 an hour for your 15.0 minutes of work"
    assert "≈\xa0Ksh\xa0194.25" in line.locator("[data-amount]").inner_text()
    assert page.locator("#top-up-table tbody tr").count() == 5
    note = page.locator("#local-note").inner_text()
    assert "1 USD = 129.5 KES (Central Bank of Kenya, set " in note and "approximate" in note
    look(page, "rates-earnings")

    # the lab sees the measured rate and the paid top-up on its campaign page; the admin the tables
    lab = log_in(chromium(), live.base, world.lab.email, PHONE)
    lab.goto(f"/campaigns/{cid}#hourly-pay")
    assert lab.locator("[data-rate=capture]").inner_text().startswith("USD\xa06.00 an hour on the median working time")
    assert lab.locator("[data-rate=topped-up]").inner_text() == "USD\xa08.00 an hour with the top-ups paid"
    assert lab.locator("#top-ups [data-state=paid]").count() == 1
    look(lab, "rates-campaign")
    desk = log_in(chromium(), live.base, admin.email, PHONE)
    desk.goto("/admin/pay")
    assert desk.locator("[data-rate=USD-KES]").inner_text().startswith("1 USD =")
    look(desk, "rates-admin-pay")


def test_the_earnings_page_in_arabic_reads_right_to_left_with_arabic_money(app, live, db, world, chromium, client):
    """Issue #15: a worker who reads Arabic (the switcher's ``lang`` cookie) gets the earnings page
    laid out right to left, its amounts written the Arabic way (Babel's pattern: a right-to-left mark,
    the digits, then the code) and its times in Arabic; the local-currency figure keeps Kenya's format."""
    worker = make_user(db, "worker", country="KE")
    admin = make_user(db, "admin")
    cid = world.open_campaign(target_clips=2, pay_cents=150, expected_minutes=4)["id"]
    _slow_accepted_clips(db, client, world.lab, worker, cid, n=2, minutes=15)
    with db.transaction() as s:
        rates.set_rate(s, s.get_one(User, admin.id), "USD", "KES", "129.50", "Central Bank of Kenya")

    page = log_in(chromium(), live.base, worker.email, PHONE)
    page.context.add_cookies([{"name": "lang", "value": "ar", "url": live.base}])
    page.goto("/earnings")
    assert page.locator("html").get_attribute("dir") == "rtl" and page.locator("html").get_attribute("lang") == "ar"
    balance = page.locator("[data-balance=USD] .lab-big").inner_text()
    assert balance == "\u200f3.00\xa0USD", repr(balance)  # not "USD 3.00", not "3.00 USD"
    line = page.locator("[data-state=approved]").first
    assert line.locator("[data-amount]").inner_text().startswith("\u200f1.50\xa0USD")
    assert (
        "≈\xa0Ksh\xa0194.25" in line.locator("[data-amount]").inner_text()
    )  # Kenya's way, whatever the page's language
    # the page's own box runs right to left: the balance tile sits at the right edge of its row
    box = page.locator("#balances > div").first.bounding_box()
    assert box is not None and box["x"] + box["width"] > PHONE["width"] / 2
    look(page, "earnings-ar")
