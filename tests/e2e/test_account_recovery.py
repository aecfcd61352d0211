"""A worker on a cheap phone forgot their password: "Forgot your password?", the email read from a real
SMTP server, the link opened, a new password set, logged in with it. Then the account page, the
notices, and the confirmation before deleting the account. Screenshots at 390×844."""

from __future__ import annotations

import re

import pytest

from egocrowd.notifications import notify
from tests.platform.helpers import PASSWORD, make_user
from tests.support.browser import ARTIFACTS, PHONE

pytestmark = pytest.mark.browser
NEW_PASSWORD = "mango tea at sunrise"


@pytest.fixture
def settings(settings, smtp):
    settings.mail_url = smtp.url
    return settings


def _shot(page, name: str) -> None:
    """A screenshot to look at, and no horizontal scrolling on the phone."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"account-{name}.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{name}: the page is {width}px wide on a {PHONE['width']}px phone"


def test_forgot_password_to_a_new_log_in(db, settings, live, smtp, chromium):
    settings.base_url = live.base  # the links in emails point at this server
    w = make_user(db, "worker", email="wanjiru@example.org")
    with db.transaction() as s:
        notify(s, w.id, "qc.result", "Your clip passed the checks", "Clip 7 is now waiting for review.", "/clips")
    ctx = chromium().new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, base_url=live.base
    )
    page = ctx.new_page()
    page.set_default_timeout(20_000)

    page.goto("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.fill("#email", "wanjiru@example.org")
    _shot(page, "1-forgot")
    page.get_by_role("button", name="Email me a link").click()
    page.wait_for_url(re.compile(r"/forgot-password/sent$"))
    assert "If an account uses this address" in page.content()
    _shot(page, "2-sent")

    (mail,) = smtp.to("wanjiru@example.org")
    assert mail["Subject"] == "Choose a new egocrowd password"
    link = re.search(r"http\S+/reset-password\?token=\S+", mail.get_content()).group(0)
    assert link.startswith(live.base)
    page.goto(link)
    page.fill("#password", NEW_PASSWORD)
    _shot(page, "3-new-password")
    page.get_by_role("button", name="Save the new password").click()
    page.wait_for_url(re.compile(r"/login\?m=password_reset$"))
    assert page.locator(".flash").inner_text() == "Your password was changed. Log in with the new one."

    page.fill("#email", "wanjiru@example.org")
    page.fill("#password", PASSWORD)  # the old one no longer works
    page.get_by_role("button", name="Log in").click()
    assert "Wrong email or password" in page.locator("[role=alert]").inner_text()
    page.fill("#email", "wanjiru@example.org")
    page.fill("#password", NEW_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/campaigns$"))
    assert page.get_by_role("link", name=re.compile(r"Notices \(1 new\)")).is_visible()

    page.get_by_role("link", name=re.compile("Notices")).click()
    assert "Your clip passed the checks" in page.content()
    _shot(page, "4-notices")
    page.get_by_role("link", name="Account").click()
    page.select_option("#country", "UG")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile(r"/account\?m=profile$"))
    assert page.locator("#country").input_value() == "UG"
    _shot(page, "5-account")
    page.get_by_role("button", name="Delete my account…").click()
    assert page.get_by_role("heading", name="Delete your account?").is_visible()
    _shot(page, "6-delete-confirm")
    page.get_by_role("link", name="Cancel").click()
    page.wait_for_url(re.compile(r"/account$"))
    ctx.close()
