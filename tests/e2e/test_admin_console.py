"""An admin on a phone-sized Chromium: finds a worker, suspends them (after the confirmation page),
the worker's open session stops working; the audit log filtered to that worker shows the
suspension; a failed pipeline job is retried from the health page. Every admin page is looked at
on a phone and a desktop (screenshots), fits the phone, and passes axe-core with no violations."""

from __future__ import annotations

import re

import pytest

from tests.platform.helpers import PASSWORD, make_user, open_campaign, publish_consent
from tests.platform.test_admin import failed_job
from tests.support.browser import ARTIFACTS, PHONE, look

pytestmark = pytest.mark.browser
DESKTOP = {"width": 1280, "height": 800}


def _log_in(page, email: str) -> None:
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.locator("main form button[type=submit]").click()  # in whatever language the page speaks
    page.wait_for_url(re.compile(r"/campaigns$"))


@pytest.fixture
def scene(client, db, settings, tmp_path):
    publish_consent(db)
    lab = make_user(db, "requester", org="Open Robotics Lab")
    worker = make_user(db, "worker", email="amina@example.org")
    job_id, _ = failed_job(db, settings, worker.id, open_campaign(client, lab)["id"], tmp_path)
    return {"admin": make_user(db, "admin", email="root@example.org"), "worker": worker, "job": job_id}


def test_admin_suspends_a_worker_reads_the_log_and_retries_a_job(live, chromium, scene):
    ARTIFACTS.mkdir(exist_ok=True)
    browser = chromium()
    phone = dict(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, base_url=live.base, bypass_csp=True
    )
    worker = browser.new_context(**phone).new_page()
    _log_in(worker, "amina@example.org")
    page = browser.new_context(**phone).new_page()
    page.set_default_timeout(20_000)
    _log_in(page, "root@example.org")

    page.get_by_role("link", name="Admin", exact=True).click()
    page.wait_for_url(re.compile(r"/admin$"))
    look(page, "admin-home")
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="People").click()
    page.fill("#q", "amina")
    page.get_by_role("button", name="Find").click()
    look(page, "admin-users")
    page.locator(".admin-user a").first.click()
    page.wait_for_url(re.compile(rf"/admin/users/{scene['worker'].id}$"))
    look(page, "admin-user")

    page.get_by_role("button", name="Suspend…").click()
    assert "cannot log in" in page.locator(".consequences").inner_text()
    look(page, "admin-confirm-suspend")
    page.get_by_role("button", name="Suspend the account").click()
    page.wait_for_url(re.compile(r"m=suspended$"))
    assert "Account suspended" in page.locator(".flash").inner_text()

    worker.goto("/assignments")  # the worker's session ended with the suspension
    worker.wait_for_url(re.compile(r"/login\?next=/assignments$"))

    page.get_by_role("link", name="Everything about this account").click()
    events = page.locator(".admin-event code").all_inner_texts()
    assert events[:2] == ["user.sessions_ended", "user.suspended"]
    look(page, "admin-audit")

    page.get_by_role("navigation", name="Admin").get_by_role("link", name="System health").click()
    assert page.locator(".admin-job").count() == 1
    look(page, "admin-health")
    page.get_by_role("button", name=f"Retry job {scene['job']}").click()
    page.wait_for_url(re.compile(r"m=retried$"))
    assert page.get_by_text("Nothing is stuck.").is_visible()

    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Organizations").click()
    look(page, "admin-orgs")
    page.get_by_role("link", name="Open Robotics Lab").click()
    look(page, "admin-org")

    # the same pages on a desktop
    desk = browser.new_context(viewport=DESKTOP, base_url=live.base, bypass_csp=True).new_page()
    _log_in(desk, "root@example.org")
    for name, path in [
        ("home", "/admin"),
        ("users", "/admin/users"),
        ("user", f"/admin/users/{scene['worker'].id}"),
        ("new-user", "/admin/users/new"),
        ("audit", "/admin/audit"),
        ("health", "/admin/health"),
        ("orgs", "/admin/organizations"),
    ]:
        desk.goto(path)
        look(desk, f"admin-{name}")


def test_admin_console_right_to_left_on_a_phone(live, chromium, scene):
    """The console in Arabic: the page is laid out right to left, fits a phone, passes axe-core."""
    ARTIFACTS.mkdir(exist_ok=True)
    browser = chromium()
    context = browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, base_url=live.base, bypass_csp=True
    )
    context.add_cookies([{"name": "lang", "value": "ar", "url": live.base}])
    page = context.new_page()
    page.set_default_timeout(20_000)
    _log_in(page, "root@example.org")
    for path, name in (
        ("/admin/health", "admin-health-ar"),
        (f"/admin/users/{scene['worker'].id}", "admin-user-ar"),
        ("/admin/organizations/999999", "admin-error-ar"),
    ):
        page.goto(path)
        assert page.evaluate("document.documentElement.dir") == "rtl"
        look(page, name)
    # the English detail of a problem reads left to right inside the right-to-left page
    assert page.locator("p.error").evaluate("e => getComputedStyle(e).direction") == "ltr"
