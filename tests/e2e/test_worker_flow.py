"""A worker on a phone-sized Chromium: sign up, read a campaign, sign the consent, claim a slot, see it
under "My work". Real server (the app factory `egocrowd serve` runs, in its own uvicorn process), real
browser (Debian's chromium)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support.browser import ARTIFACTS, PHONE, require_browser
from tests.support.servers import ServerProcess
from tests.support.smtp import mailed_link

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e-data")


@pytest.fixture(scope="module")
def server(data_dir):
    """`egocrowd demo --no-serve` into a temp data dir, then the app `egocrowd serve` runs, on port 0."""
    require_browser()
    data = data_dir
    env = {**os.environ, "EGOCROWD_DATA_DIR": str(data), "EGOCROWD_RUN_PIPELINE_IN_SERVER": "false"}
    for k in ("EGOCROWD_DATABASE_URL", "EGOCROWD_CONFIG"):
        env.pop(k, None)
    subprocess.run(
        [sys.executable, "-m", "egocrowd.cli", "demo", "--no-serve"],
        env=env,
        check=True,
        capture_output=True,
        timeout=180,
    )
    srv = ServerProcess("egocrowd.web.app:create_app", workdir=data / "server", env=env, ready_path="/api/v1/health")
    try:
        yield srv.start(timeout=90).base
    finally:
        srv.stop()


@pytest.fixture
def page(server, chromium):
    ARTIFACTS.mkdir(exist_ok=True)
    ctx = chromium().new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, base_url=server)
    pg = ctx.new_page()
    pg.set_default_timeout(20_000)
    return pg


def _fits_the_phone(page, name: str) -> None:
    """No horizontal scrolling, and a screenshot to look at."""
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{name}: the page is {width}px wide on a {PHONE['width']}px phone"


def test_worker_signs_up_consents_and_claims(page, data_dir):
    page.goto("/")
    _fits_the_phone(page, "1-landing")
    page.get_by_role("link", name="Sign up as a worker").click()

    page.fill("#email", "amina@example.org")
    page.fill("#display_name", "Amina")
    page.select_option("#country", "KE")
    page.fill("#password", "a long enough password")
    _fits_the_phone(page, "2-signup")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(re.compile(r"/signup/sent$"))
    _fits_the_phone(page, "2b-check-email")
    page.goto(mailed_link(data_dir / "outbox", "amina@example.org", "/verify-email"))  # the link in the email
    page.wait_for_url(re.compile(r"/login\?m=verified$"))
    assert page.locator(".flash").inner_text() == "Your email address is confirmed. Thank you."
    page.fill("#email", "amina@example.org")
    page.fill("#password", "a long enough password")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/campaigns$"))
    assert page.locator("article.campaign").count() == 3
    _fits_the_phone(page, "3-tasks")

    page.get_by_role("link", name="Fold a T-shirt on a table").click()
    assert "Open Robotics Lab — humanoid manipulation team" in page.content()  # the buyer is shown
    assert page.locator("#claim").count() == 0
    _fits_the_phone(page, "4-campaign")

    page.click("#read-consent")
    page.wait_for_url(re.compile(r"/consent/egocrowd-worker-1\?next=/campaigns/\d+$"))
    assert "Withdrawal" in page.locator(".consent-text").inner_text()
    page.check("input[name=scopes][value=record_hands]")
    page.check("input[name=scopes][value=commercial_use]")  # the demo campaigns are commercial
    _fits_the_phone(page, "5-consent")
    page.click("#sign")
    page.wait_for_url(re.compile(r"/campaigns/\d+\?m=signed$"))
    assert page.locator(".flash").inner_text() == "Consent signed. Thank you."

    page.click("#claim")
    page.wait_for_url(re.compile(r"/assignments\?m=claimed$"))
    card = page.locator(".card.assignment")
    assert card.count() == 1
    assert "Fold a T-shirt on a table" in card.inner_text() and "active" in card.inner_text()
    assert page.get_by_role("link", name="My work").is_visible()
    _fits_the_phone(page, "6-my-work")

    page.goto("/consents")
    assert "active" in page.locator(".card").first.inner_text()
    _fits_the_phone(page, "7-consents")


def test_lab_pages_fit_a_phone(page):
    page.goto("/login")
    page.fill("#email", "lab@demo.egocrowd")
    page.fill("#password", "demo-lab-password")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/campaigns$"))
    _fits_the_phone(page, "lab-1-campaigns")
    page.get_by_role("link", name="Open a screw-top jar").click()
    assert page.get_by_role("heading", name="At a glance").is_visible()
    _fits_the_phone(page, "lab-2-campaign")
    page.goto("/campaigns/new")
    _fits_the_phone(page, "lab-3-new-campaign")
    page.fill("#title", "Wipe a table")
    page.fill("#instructions", "Wipe a table with a cloth, left to right.")
    page.fill("#buyer_name", "Open Robotics Lab")  # no verbs or nouns: only the server can tell
    page.get_by_role("button", name="Save").click()
    alert = page.locator("[role=alert]")
    assert "Actions (verbs): Give at least one action." in alert.inner_text()  # each problem named
    assert page.input_value("#title") == "Wipe a table"
    _fits_the_phone(page, "lab-4-form-error")
