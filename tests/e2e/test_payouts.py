"""Payouts in a real Chromium on a 390 px phone: a worker adds M-Pesa and PayPal methods, an admin
makes a PayPal batch, writes and downloads its file, marks it sent; the worker sees the payout sent
and the pay taken back for another clip, appeals it, and an admin overturns the appeal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from egocrowd.db.models import ClipStatus, User
from egocrowd.pay import ledger
from egocrowd.pay.money import Money
from tests.pay.conftest import Books
from tests.platform.helpers import make_user
from tests.support.browser import PHONE, log_in, look, sqlite_db_url

pytestmark = pytest.mark.browser
db_url = sqlite_db_url  # SQLite only: the pages are the same on both backends


def _earn(db, worker_id: int, admin_id: int, clips: int) -> list[int]:
    books = Books(db, admin_id, admin_id)
    with db.transaction() as s:
        c = books.new_campaign(s)
        ledger.deposit(s, c, Money(150 * clips, "USD"), books.admin(s), idempotency_key=f"d{c.id}", reason="wire")
        ids = []
        for _ in range(clips):
            clip = books.clip(s, c, s.get_one(User, worker_id))
            clip.status = ClipStatus.accepted
            ledger.pay_for_clip(s, clip, None)
            ids.append(clip.id)
        return ids


def test_methods_a_batch_and_an_appeal_on_a_phone(live, db, world, chromium):
    admin = make_user(db, "admin")
    clips = _earn(db, world.worker.id, admin.id, 5)  # 7.50 USD
    browser = chromium()

    worker = log_in(browser, live.base, world.worker.email, PHONE)
    worker.goto("/earnings")
    worker.click("#payouts-link")
    worker.wait_for_url(re.compile(r"/earnings/payouts$"))
    worker.select_option("#m-provider", "mpesa")
    worker.fill("#m-account", "0712 345 678")  # no country code: refused, the form keeps what was typed
    worker.fill("#m-currency", "KES")
    worker.click("#add-method")
    assert worker.locator("[data-code='payout.bad_account']").is_visible()
    assert worker.input_value("#m-account") == "0712 345 678"
    worker.fill("#m-account", "+254 712 345 678")
    worker.click("#add-method")
    worker.wait_for_url(re.compile(r"\?m=method_added$"))
    worker.select_option("#m-provider", "paypal")
    worker.fill("#m-account", "amina@example.org")
    worker.fill("#m-currency", "USD")
    worker.click("#add-method")
    worker.wait_for_url(re.compile(r"\?m=method_added$"))
    assert worker.locator("[data-provider=mpesa]").inner_text().count("+254712345678") == 1
    assert "default for USD" in worker.locator("[data-provider=paypal]").inner_text()
    look(worker, "payouts-1-methods")

    boss = log_in(browser, live.base, admin.email, PHONE)
    boss.goto("/admin/payouts")
    boss.select_option("#b-provider", "paypal")
    boss.fill("#b-currency", "USD")
    look(boss, "payouts-2-admin")
    boss.click("#make-batch")
    boss.wait_for_url(re.compile(r"/admin/payouts/\d+\?m=batch_created$"))
    assert boss.locator("#batch-status").inner_text() == "open"
    assert "USD\xa07.50" in boss.locator("#lines").inner_text()
    boss.click("#export")
    boss.wait_for_url(re.compile(r"\?m=batch_exported$"))
    with boss.expect_download() as got:
        boss.click("#download")
    data = Path(got.value.path()).read_bytes()
    assert data.startswith(b"amina@example.org,7.50,USD,egc-")
    boss.fill("#reference", "PP-2026-11-30-A")
    look(boss, "payouts-3-batch")
    boss.click("#mark-sent")
    boss.wait_for_url(re.compile(r"\?m=batch_sent$"))
    assert boss.locator("#batch-status").inner_text() == "sent"

    # an admin takes back the pay for one clip (after the payout: only with the box ticked)
    boss.goto("/admin/payouts/reversals")
    boss.fill("#r-clip", str(clips[0]))
    boss.fill("#r-reason", "The clip repeats one sent last week.")
    boss.click("#reverse")
    assert boss.locator("[data-code='ledger.insufficient_funds']").is_visible()
    boss.check("input[name=allow_negative]")
    boss.click("#reverse")
    boss.wait_for_url(re.compile(r"\?m=pay_reversed$"))

    worker.goto("/earnings/payouts")
    assert worker.locator("#payout-history [data-state=sent]").count() == 1
    assert "PP-2026-11-30-A" in worker.locator("#payout-history").inner_text()
    taken = worker.locator(f"#reversals [data-clip='{clips[0]}']")
    assert "The clip repeats one sent last week." in taken.inner_text()
    taken.locator("textarea").fill("It is another shirt: look at the sleeves.")
    taken.get_by_role("button", name="Appeal").click()
    worker.wait_for_url(re.compile(r"\?m=pay_appealed"))
    assert worker.locator(f"#reversals [data-clip='{clips[0]}']").get_attribute("data-appeal") == "open"
    look(worker, "payouts-4-appealed")

    other = log_in(browser, live.base, make_user(db, "admin").email, PHONE)
    other.goto("/admin/payouts/reversals?appeal=open")
    row = other.locator("#reversal-list li").first
    row.locator("textarea").fill("Agreed: a different shirt.")
    row.get_by_role("button", name="Overturn: pay again").click()
    other.wait_for_url(re.compile(r"\?m=appeal_decided$"))
    assert other.locator("#reversal-list li").first.get_attribute("data-appeal") == "overturned"
    look(other, "payouts-5-reversals")

    with db.transaction(write=False) as s:
        w = s.get_one(User, world.worker.id)
        assert ledger.balance(s, ledger.worker_account(s, w, "USD")) == Money(0, "USD")  # −1.50 +1.50
        assert ledger.verify(s) == []
