"""A lab's data lead on a laptop and on a phone: fills the campaign form with three mistakes, sees all
three next to their fields (the rest of what they typed kept), fixes them, saves, clones, opens the
campaign and closes it after a confirmation. Real server, real Chromium; screenshots at 390×844 and
1280×800 under tests/e2e/artifacts/, and axe-core finds nothing on each page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from egocrowd.clock import utcnow
from egocrowd.db.models import Clip, ClipStatus
from tests.platform.helpers import PASSWORD, fund, make_user, publish_consent
from tests.support.browser import ARTIFACTS, PHONE, look

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1280, "height": 800}


@pytest.fixture
def lab_page(live, db, chromium):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    browser = chromium()
    ARTIFACTS.mkdir(exist_ok=True)

    def open_page(viewport):
        ctx = browser.new_context(viewport=viewport, base_url=live.base, bypass_csp=True)  # CSP: only to inject axe
        page = ctx.new_page()
        page.set_default_timeout(20_000)
        page.goto("/login")
        page.fill("#email", lab.email)
        page.fill("#password", PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(re.compile(r"/campaigns"))
        return page

    return lab, open_page


def test_lab_fixes_three_mistakes_saves_clones_and_closes(lab_page, db):
    lab, open_page = lab_page
    page = open_page(LAPTOP)
    page.goto("/campaigns/new")
    look(page, "lab-1-new")
    page.fill("#title", "Fo")  # too short
    page.fill("#instructions", "Fold a T-shirt on a table with both hands in view.")
    page.fill("#min_duration_s", "30")
    page.fill("#max_duration_s", "10")  # shorter than the shortest
    page.fill("#verbs", "take, put, Fold it!")  # not a word
    page.fill("#nouns", "shirt, table")
    page.fill("#buyer_name", "Lab A robotics")
    page.get_by_role("button", name="Save").click()

    summary = page.locator("#form-errors")
    assert "3 things need fixing" in summary.inner_text()
    errors = {e.get_attribute("id"): e.inner_text() for e in page.locator(".lab-error").all()}
    assert errors == {
        "title-error": "Must be at least 3 characters.",
        "max_duration_s-error": "The longest clip must be at least as long as the shortest.",
        "verbs-error": "Use lower-case words such as fold or open_lid; “it!” is not one.",
    }
    for field in ("title", "max_duration_s", "verbs"):
        box = page.locator(f"#{field}")
        assert box.get_attribute("aria-invalid") == "true"
        assert f"{field}-error" in box.get_attribute("aria-describedby")
    # what was typed is kept
    assert page.input_value("#instructions") == "Fold a T-shirt on a table with both hands in view."
    assert page.input_value("#nouns") == "shirt, table" and page.input_value("#min_duration_s") == "30"
    look(page, "lab-2-three-mistakes")
    phone = open_page(PHONE)  # the same mistakes, as seen on a phone
    phone.goto("/campaigns/new")
    phone.fill("#title", "Fo")
    phone.get_by_role("button", name="Save").click()
    assert phone.locator(".lab-error").count() >= 3  # also the fields a phone left empty
    look(phone, "lab-2-mistakes")

    page.click("#form-errors a[href='#title']")
    page.fill("#title", "Fold a T-shirt")
    page.fill("#max_duration_s", "90")
    page.fill("#verbs", "take, put, fold")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/campaigns/\d+\?m=saved$"))
    cid = int(re.search(r"/campaigns/(\d+)", page.url).group(1))
    _some_clips(db, cid, lab.id)
    page.reload()
    assert page.locator("svg.chart rect.chart-bar").count() == 30
    look(page, "lab-3-saved")
    phone.goto(f"/campaigns/{cid}")
    look(phone, "lab-3-saved")

    page.click("#clone")
    page.wait_for_url(re.compile(r"/campaigns/\d+/edit\?m=cloned$"))
    assert page.input_value("#title") == "Copy of Fold a T-shirt"
    assert page.input_value("#verbs") == "take, put, fold"
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/campaigns/\d+\?m=saved$"))
    assert int(re.search(r"/campaigns/(\d+)", page.url).group(1)) != cid

    fund(db, cid)  # an admin records the lab's deposit (tests/e2e/test_earnings.py does it on the page)
    page.goto(f"/campaigns/{cid}")
    page.click("button[data-status=open]")
    page.wait_for_url(re.compile(rf"/campaigns/{cid}\?m=status$"))
    page.click("button[data-status=closed]")
    assert "Close “Fold a T-shirt” for good?" in page.locator("h1").inner_text()
    assert "No worker holds an open slot now." in page.content()
    look(page, "lab-4-confirm-close")
    page.get_by_role("button", name="Close the campaign").click()
    page.wait_for_url(re.compile(rf"/campaigns/{cid}\?m=status$"))
    assert page.locator("h1 .pill").inner_text() == "closed"


def test_lab_team_and_tokens_on_a_phone(lab_page, db):
    _, open_page = lab_page
    phone = open_page(PHONE)
    phone.get_by_role("link", name="Lab").click()
    phone.wait_for_url(re.compile(r"/lab$"))
    phone.fill("#email", "colleague@example.org")
    phone.get_by_role("button", name="Add to the team").click()
    assert "There is no account with this email" in phone.locator("#email-error").inner_text()
    look(phone, "lab-5-team-mistake")
    phone.fill("#display_name", "Colleague")
    phone.fill("#password", "a long first password")
    phone.get_by_role("button", name="Add to the team").click()
    phone.wait_for_url(re.compile(r"/lab\?m=team_added$"))
    assert "Colleague" in phone.locator(".lab-members").inner_text()
    look(phone, "lab-5-team")
    phone.get_by_role("link", name="Your API tokens").click()
    phone.fill("#name", "upload script")
    phone.get_by_role("button", name="Make a token").click()
    assert phone.input_value("#new-token").startswith("egc_")
    look(phone, "lab-6-tokens")


def _some_clips(db, campaign_id: int, worker_id: int) -> None:
    """A few clips over the last days, for the chart and the QC figures."""
    now = utcnow()
    with db.transaction() as s:
        for i, (days_ago, status) in enumerate(
            [(0, ClipStatus.qc_passed), (0, ClipStatus.qc_failed), (1, ClipStatus.qc_passed), (3, ClipStatus.qc_passed)]
        ):
            at = now - timedelta(days=days_ago)
            s.add(
                Clip(
                    campaign_id=campaign_id,
                    worker_id=worker_id,
                    source_ref=f"test:{campaign_id}:{i}",
                    sha256=f"{i:064x}",
                    size=1000,
                    original_name="clip.mp4",
                    status=status,
                    created_at=at,
                    updated_at=at,
                )
            )
