"""Debian's chromium driven by playwright (``playwright install`` cannot download a browser here)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# A camera without a person to allow it: add "--use-file-for-fake-video-capture=<file.y4m>" for a picture.
FAKE_CAMERA = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
PHONE = {"width": 390, "height": 844}
SMALL_PHONE = {"width": 360, "height": 740}  # the narrowest screen the pages promise to fit
DESKTOP = {"width": 1280, "height": 900}
ARTIFACTS = Path(__file__).resolve().parents[1] / "e2e" / "artifacts"


def require_browser() -> None:
    """Skip without chromium or playwright; fail instead when EGOCROWD_REQUIRE_BROWSER=1 (CI)."""
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    elif importlib.util.find_spec("playwright") is None:
        problem = "python playwright is not installed"
    if problem:
        if os.environ.get("EGOCROWD_REQUIRE_BROWSER") == "1":
            pytest.fail(problem + " and EGOCROWD_REQUIRE_BROWSER=1")
        pytest.skip(problem)


def look(page, name: str) -> None:
    """What every browser test checks on a page it walks through: a full-page screenshot to look at
    (``ARTIFACTS/<name>-<width>.png``), no sideways scrolling at this size, and no axe-core violation
    (the same WCAG 2.1 AA rules as tests/e2e/test_accessibility.py)."""
    from tests.support import axe

    width = page.viewport_size["width"]
    shot = ARTIFACTS / f"{name}-{width}.png"
    try:
        page.screenshot(path=str(shot), full_page=True)
    except Exception as exc:  # playwright's Error
        # Chromium now and then answers "Unable to capture screenshot" for a full page while a busy
        # machine is still laying it out (seen once in CI on /admin/*, never alone): one more try.
        if "Unable to capture screenshot" not in str(exc):
            raise
        page.wait_for_timeout(500)
        page.screenshot(path=str(shot), full_page=True)
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{name}: {scroll}px wide at {width}px"
    violations = axe.check(page)
    assert not violations, axe.report(violations, where=f"{name}: ")


@pytest.fixture
def sqlite_db_url(tmp_path, sqlite_template) -> str:
    """A page test's database on SQLite only: the pages are the same on both backends (the rooms'
    own tests run both), and a browser run costs a minute. Use it as ``db_url = sqlite_db_url``."""
    path = tmp_path / "egocrowd.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


def log_in(browser, base: str, email: str, viewport: dict, *, js: bool = True, **context):
    """A fresh browser context at ``viewport`` (a phone's touch screen below 600 px), logged in as
    ``email`` with the test password; ``context`` goes to ``new_context`` as is."""
    from tests.platform.helpers import PASSWORD

    ARTIFACTS.mkdir(exist_ok=True)
    if viewport["width"] < 600:
        context = {"device_scale_factor": 2, "is_mobile": True, "has_touch": True, **context}
    ctx = browser.new_context(viewport=viewport, base_url=base, java_script_enabled=js, **context)
    page = ctx.new_page()
    page.set_default_timeout(20_000)
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    assert "/login" not in page.url
    return page


def until(page, expression: str, timeout: float = 15.0) -> None:
    """Poll ``expression`` (page.wait_for_function evaluates a string, which the pages' CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(f"() => {expression}"):
        assert time.monotonic() < deadline, f"never true: {expression}"
        page.wait_for_timeout(50)


_SEEK = """async ({t, frame}) => {
  const v = document.querySelector('video');
  if (v.readyState < 1) await new Promise(r => v.addEventListener('loadedmetadata', r, {once: true}));
  const seeked = new Promise(r => v.addEventListener('seeked', r, {once: true}));
  v.currentTime = t;
  await seeked;
  if (frame && v.readyState < 2) await new Promise(r => v.addEventListener('loadeddata', r, {once: true}));
  return {time: v.currentTime, ready: v.readyState, width: v.videoWidth, error: v.error && v.error.code};
}"""


def seek(page, seconds: float, *, until_a_frame: bool = False) -> dict:
    """Seek the page's <video> to ``seconds`` and wait for it (and, with ``until_a_frame``, for a
    decoded picture there); its time, readyState, width and error code after."""
    return page.evaluate(_SEEK, {"t": seconds, "frame": until_a_frame})
