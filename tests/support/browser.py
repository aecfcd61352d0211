"""Debian's chromium driven by playwright (``playwright install`` cannot download a browser here)."""

from __future__ import annotations

import importlib.util
import os
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
    page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{name}: {scroll}px wide at {width}px"
    violations = axe.check(page)
    assert not violations, axe.report(violations, where=f"{name}: ")
