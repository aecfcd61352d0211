"""Issue #14's acceptance walk: a FRESH install (an empty data directory, no `egocrowd demo`), the first
admin made with the real CLI, then every role's main path in a real Chromium on a 390×844 phone (the
lab also on a 1280×800 laptop): the admin makes a lab and writes and publishes the consent; the lab
owner makes a campaign (one mistake first), opens it and adds a viewer; a worker signs up, confirms the
address from the outbox, signs, claims, records and uploads on the capture page and sees QC's verdict
arrive by itself; a reviewer made by the admin sees the campaign; the lab closes it and the worker is
told. Every page visited is screenshotted, fits the phone and passes axe-core with no violations."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support import axe
from tests.support.browser import ARTIFACTS, FAKE_CAMERA, PHONE, require_browser
from tests.support.servers import ServerProcess
from tests.support.smtp import mailed_link
from tests.uploads.test_capture_browser import make_y4m, record

pytestmark = [pytest.mark.browser, pytest.mark.slow]
LAPTOP = {"width": 1280, "height": 800}
PASSWORD = "a long enough password"
CONSENT = """# Recording consent

1. **What you record.** Your own hands doing household tasks, with the phone on your forehead.
2. **Who uses it.** Robotics labs and the companies that buy the datasets.
3. **Withdrawal.** You may withdraw at any time; clips not yet released are deleted.
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fresh-data")


@pytest.fixture(scope="module")
def server(data_dir):
    """An empty data directory, the first admin from the CLI, then the app. QC runs from the CLI (`egocrowd
    worker --once`) while the worker's page is open, so the page must pick up the verdict by itself."""
    require_browser()
    env = {
        **os.environ,
        "EGOCROWD_DATA_DIR": str(data_dir),
        "EGOCROWD_RUN_PIPELINE_IN_SERVER": "false",
        "EGOCROWD_PIPELINE_EXECUTOR": "inline",
    }
    for k in ("EGOCROWD_DATABASE_URL", "EGOCROWD_CONFIG", "EGOCROWD_MAIL_URL"):
        env.pop(k, None)
    _cli(
        env,
        "user",
        "create",
        "--role",
        "admin",
        "--email",
        "root@example.org",
        "--name",
        "Root",
        "--password",
        PASSWORD,
    )
    srv = ServerProcess(
        "egocrowd.web.app:create_app", workdir=data_dir / "server", env=env, ready_path="/api/v1/health"
    )
    try:
        yield srv.start(timeout=90).base, env
    finally:
        srv.stop()


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "egocrowd.cli", *args], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def browser(chromium_module, tmp_path_factory):
    y4m = tmp_path_factory.mktemp("camera") / "camera.y4m"
    make_y4m(y4m, seconds=4)
    return chromium_module(*FAKE_CAMERA, f"--use-file-for-fake-video-capture={y4m}")


@pytest.fixture(scope="module")
def chromium_module():
    from playwright.sync_api import sync_playwright

    from tests.support.browser import CHROMIUM, LAUNCH_ARGS

    require_browser()
    with sync_playwright() as p:
        yield lambda *args: p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[*LAUNCH_ARGS, *args])


def _page(browser, base, viewport=PHONE):
    """A new person: their own cookies. bypass_csp only lets this test inject axe-core."""
    phone = viewport == PHONE
    ctx = browser.new_context(
        viewport=viewport, is_mobile=phone, has_touch=phone, device_scale_factor=1, base_url=base, bypass_csp=True
    )
    page = ctx.new_page()
    page.set_default_timeout(20_000)
    return page


def _look(page, name: str) -> None:
    """A screenshot to look at, no sideways scrolling, and no accessibility violation."""
    ARTIFACTS.mkdir(exist_ok=True)
    width = page.viewport_size["width"]
    page.screenshot(path=str(ARTIFACTS / f"fresh-{name}-{width}.png"), full_page=True)
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, f"{name}: the page is {wide}px wide on a {width}px screen"
    violations = axe.check(page)
    assert not violations, axe.report(violations, f"{name}: ")


def _log_in(page, email: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/campaigns$"))


def test_every_role_on_a_fresh_install(server, browser, data_dir):
    server, env = server
    # --- 1. the admin: a lab and its owner, then the consent text
    admin = _page(browser, server)
    _log_in(admin, "root@example.org")
    _look(admin, "1-admin-campaigns")
    admin.get_by_role("link", name="Admin", exact=True).click()
    _look(admin, "1-admin-home")
    admin.get_by_role("navigation", name="Admin").get_by_role("link", name="Organizations").click()
    _look(admin, "1-admin-orgs-empty")
    admin.fill("#name", "Open Robotics Lab")
    admin.get_by_role("button", name="Create").click()
    admin.wait_for_url(re.compile(r"/admin/organizations/\d+\?m=created$"))
    _look(admin, "1-admin-org")
    admin.get_by_role("link", name="or create a new account in this lab").click()
    admin.fill("#email", "lab@example.org")
    admin.fill("#display_name", "Lab Owner")
    admin.fill("#password", PASSWORD)
    admin.select_option("#role", "requester")
    admin.select_option("#organization_id", label="Open Robotics Lab")
    admin.select_option("#org_role", "owner")
    _look(admin, "1-admin-new-lab-owner")
    admin.get_by_role("button", name="Create the account").click()
    _look(admin, "1-admin-lab-owner-made")

    admin.locator("header nav").get_by_role("link", name="Consent documents").click()
    _look(admin, "1-admin-consent-empty")
    admin.click("#new-document")
    admin.fill("#family", "egocrowd-worker")
    admin.fill("#title", "Recording consent")
    admin.fill("#body", CONSENT)
    admin.fill("#scope_id_0", "record_hands")
    admin.fill("#scope_label_0", "Record my hands and what is around them")
    admin.check("input[name=scope_required_0]")
    admin.fill("#scope_id_1", "commercial_use")
    admin.fill("#scope_label_1", "Allow commercial use by buyers")
    _look(admin, "1-admin-consent-new")
    admin.click("#save")
    assert admin.locator(".consent-text h2").inner_text() == "Recording consent"
    _look(admin, "1-admin-consent-draft")
    admin.click("#publish")
    _look(admin, "1-admin-consent-confirm")
    admin.get_by_role("button", name="Publish").click()
    admin.wait_for_url("**/consent-documents?m=published")
    _look(admin, "1-admin-consent-published")

    # --- 2. the lab owner: a campaign through the form (one mistake first), opened; a viewer added
    lab = _page(browser, server, LAPTOP)
    _log_in(lab, "lab@example.org")
    _look(lab, "2-lab-campaigns-empty")
    lab.get_by_role("link", name="Create one").click()
    _look(lab, "2-lab-new")
    lab.fill("#title", "Fold a towel")
    lab.fill("#instructions", "Fold a towel on a table, both hands in view, phone on your forehead.")
    lab.fill("#min_duration_s", "2")
    lab.fill("#max_duration_s", "1")  # the mistake: shorter than the shortest
    lab.fill("#min_width", "320")
    lab.fill("#min_height", "240")
    lab.fill("#min_fps", "10")
    lab.uncheck("#hands_in_view")  # the test camera films a moving box, not hands
    lab.fill("#verbs", "take, fold, put")
    lab.fill("#nouns", "towel, table")
    lab.check("#use_commercial")
    lab.fill("#buyer_name", "Open Robotics Lab")
    lab.fill("#target_clips", "10")
    lab.get_by_role("button", name="Save").click()
    assert (
        lab.locator("#max_duration_s-error").inner_text()
        == "The longest clip must be at least as long as the shortest."
    )
    assert lab.locator(".lab-error").count() == 1
    assert lab.input_value("#title") == "Fold a towel" and lab.is_checked("#use_commercial")  # what was typed is kept
    _look(lab, "2-lab-mistake")
    lab.fill("#max_duration_s", "30")
    lab.get_by_role("button", name="Save").click()
    lab.wait_for_url(re.compile(r"/campaigns/\d+\?m=saved$"))
    campaign = re.search(r"/campaigns/\d+", lab.url).group(0)
    _look(lab, "2-lab-draft")
    lab.click("button[data-status=open]")  # nothing deposited yet: refused, saying how much is missing
    assert "Deposit 15.00 USD more to open it" in lab.locator("main").inner_text()
    admin.goto(campaign)  # the lab sent the money: the admin records it on the campaign page
    assert admin.input_value("#deposit-amount") == "15.00"
    admin.fill("#deposit-reason", "Wire OR-2026-001")
    _look(admin, "2-admin-deposit")
    admin.click("#deposit")
    admin.wait_for_url(re.compile(rf"{campaign}\?m=deposited$"))
    assert "nothing: the target is covered" in admin.locator("#budget-facts").inner_text()
    lab.goto(campaign)
    lab.click("button[data-status=open]")
    lab.wait_for_url(re.compile(rf"{campaign}\?m=status$"))
    assert lab.locator("h1 .pill").inner_text() == "open"
    _look(lab, "2-lab-open")

    team = _page(browser, server)  # the team, on the owner's phone
    _log_in(team, "lab@example.org")
    team.get_by_role("link", name="Lab").click()
    team.wait_for_url(re.compile(r"/lab$"))
    _look(team, "2-lab-team-empty")
    team.fill("#email", "viewer@example.org")
    team.fill("#display_name", "Vera Viewer")
    team.fill("#password", PASSWORD)
    team.select_option("#org_role", "viewer")
    team.get_by_role("button", name="Add to the team").click()
    team.wait_for_url(re.compile(r"/lab\?m=team_added$"))
    assert "Vera Viewer" in team.locator(".lab-members").inner_text()
    _look(team, "2-lab-team")
    team.goto(campaign)
    _look(team, "2-lab-campaign")
    team.goto("/campaigns")
    _look(team, "2-lab-campaigns")
    team.goto("/campaigns/new")
    _look(team, "2-lab-new")
    viewer = _page(browser, server)  # the viewer reads progress but cannot change the campaign
    _log_in(viewer, "viewer@example.org")
    viewer.goto(campaign)
    assert viewer.get_by_role("heading", name="At a glance").is_visible()
    assert viewer.locator("button[data-status], #clone").count() == 0
    assert viewer.get_by_role("link", name="Edit").count() == 0
    _look(viewer, "2-lab-viewer-campaign")

    # --- 3. a worker: signs up, confirms the address, signs, claims, records, uploads, sees QC's verdict
    worker = _page(browser, server)
    worker.goto("/")
    _look(worker, "3-worker-landing")
    worker.get_by_role("link", name="Sign up as a worker").click()
    worker.fill("#email", "amina@example.org")
    worker.fill("#display_name", "Amina")
    worker.select_option("#country", "KE")
    worker.fill("#password", PASSWORD)
    _look(worker, "3-worker-signup")
    worker.get_by_role("button", name="Sign up").click()
    worker.wait_for_url(re.compile(r"/signup/sent$"))
    _look(worker, "3-worker-check-email")
    worker.goto(mailed_link(data_dir / "outbox", "amina@example.org", "/verify-email"))
    worker.wait_for_url(re.compile(r"/login\?m=verified$"))
    _look(worker, "3-worker-confirmed")
    _log_in(worker, "amina@example.org")
    assert worker.locator("article.campaign").count() == 1
    _look(worker, "3-worker-campaigns")
    worker.get_by_role("link", name="Fold a towel").click()
    assert worker.locator("#claim").count() == 0  # not before the consent is signed
    _look(worker, "3-worker-campaign")
    worker.click("#read-consent")
    assert "Withdrawal" in worker.locator(".consent-text").inner_text()
    worker.check("input[name=scopes][value=record_hands]")
    worker.check("input[name=scopes][value=commercial_use]")  # the campaign is commercial
    _look(worker, "3-worker-consent")
    worker.click("#sign")
    worker.wait_for_url(re.compile(rf"{campaign}\?m=signed$"))
    _look(worker, "3-worker-signed")
    worker.click("#claim")
    worker.wait_for_url(re.compile(r"/assignments\?m=claimed$"))
    _look(worker, "3-worker-my-work")
    worker.get_by_role("link", name="Record & upload").click()
    _look(worker, "3-worker-capture")
    record(worker, 3.0)
    worker.wait_for_selector("#capture[data-state=confirm]", timeout=20_000)
    worker.get_by_label("I recorded with the phone on a forehead strap.").check()
    worker.wait_for_selector("#capture[data-state=ready]", timeout=5_000)
    _look(worker, "3-worker-checked")
    worker.get_by_role("button", name="Upload").click()
    worker.wait_for_url("**/clips?m=uploaded", timeout=60_000)
    assert worker.locator(".clip").first.get_attribute("data-status") == "processing"
    _look(worker, "3-worker-uploaded")
    _cli(env, "worker", "--once", "--executor", "inline")  # QC, while the page stays open: no reload below
    worker.wait_for_selector(".clip:not([data-status=processing]):not([data-status=uploaded])", timeout=60_000)
    status = worker.locator(".clip").first.get_attribute("data-status")
    assert status in ("qc_passed", "qc_failed", "rejected"), status
    _look(worker, "3-worker-qc")
    worker.get_by_role("link", name="Clip 1").click()
    _look(worker, "3-worker-clip")
    worker.get_by_role("link", name=re.compile(r"^Notices")).click()
    _look(worker, "3-worker-notices")

    # --- 4. a reviewer, made by the admin: the open campaign, its list and its page
    admin.get_by_role("link", name="Admin", exact=True).click()
    admin.goto("/admin/users/new")
    admin.fill("#email", "rita@example.org")
    admin.fill("#display_name", "Rita Reviewer")
    admin.fill("#password", PASSWORD)
    admin.select_option("#role", "reviewer")
    admin.get_by_role("button", name="Create the account").click()
    _look(admin, "4-admin-reviewer-made")
    reviewer = _page(browser, server)
    _log_in(reviewer, "rita@example.org")
    assert reviewer.locator("article.campaign").count() == 1
    _look(reviewer, "4-reviewer-campaigns")
    reviewer.get_by_role("link", name="Fold a towel").click()
    _look(reviewer, "4-reviewer-campaign")

    # --- 5. the worker holds a second slot; the lab closes the campaign; the worker is told
    worker.goto(campaign)
    worker.click("#claim")
    worker.wait_for_url(re.compile(r"/assignments\?m=claimed$"))
    lab.goto(campaign)
    _look(lab, "5-lab-progress")
    lab.click("button[data-status=closed]")
    assert "Close “Fold a towel” for good?" in lab.locator("h1").inner_text()
    _look(lab, "5-lab-confirm-close")
    lab.get_by_role("button", name="Close the campaign").click()
    lab.wait_for_url(re.compile(rf"{campaign}\?m=status$"))
    assert lab.locator("h1 .pill").inner_text() == "closed"
    _look(lab, "5-lab-closed")
    worker.goto("/notifications")
    notices = worker.locator("main").inner_text()
    assert "Fold a towel" in notices and "closed" in notices, notices
    _look(worker, "5-worker-notices")
    worker.goto("/consents")
    _look(worker, "5-worker-consents")
    worker.goto("/account")
    _look(worker, "5-worker-account")
    worker.goto("/assignments")
    assert worker.locator(".assignment .pill").all_inner_texts() == ["ended", "clip sent"]
    _look(worker, "5-worker-my-work")

    # --- the admin reads what happened
    admin.goto("/admin/audit")
    log = admin.locator("main").inner_text()  # newest first: the closing, then the slot it ended
    assert log.index("assignment.released") < log.index("campaign.closed") < log.index("user.created")
    _look(admin, "6-admin-audit")
    admin.goto("/admin/health")
    _look(admin, "6-admin-health")
