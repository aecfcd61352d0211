"""static/idle.js in a real Chromium: quiet time beyond the threshold counts as idle, time while the
page is busy (recording, uploading, a video playing) does not, input restarts the quiet clock, and
the count survives a reload of the page (it is kept per task in localStorage)."""

from __future__ import annotations

import pytest

from tests.support.browser import PHONE, sqlite_db_url

pytestmark = pytest.mark.browser
db_url = sqlite_db_url


def test_idle_time_counts_quiet_not_busy_time(live, chromium):
    context = chromium().new_context(viewport=PHONE, base_url=live.base)
    page = context.new_page()
    page.goto("/login")
    page.add_script_tag(url="/static/idle.js")
    page.evaluate(
        """() => {
        window.quiet = egocrowdIdle.track("test:quiet", { quiet: 0.2 });
        window.busy = egocrowdIdle.track("test:busy", { quiet: 0.2, busy: () => true });
    }"""
    )
    page.wait_for_timeout(2200)
    quiet, busy = page.evaluate("() => [window.quiet.seconds(), window.busy.seconds()]")
    assert 1 <= quiet <= 3 and busy == 0
    page.mouse.click(5, 5)  # a touch: the quiet clock starts again, the count stays
    after = page.evaluate("() => window.quiet.seconds()")
    assert after == quiet
    page.reload()
    page.add_script_tag(url="/static/idle.js")
    kept = page.evaluate("() => egocrowdIdle.track('test:quiet', { quiet: 600 }).seconds()")
    assert kept >= quiet  # the same task after a reload keeps what was counted
    page.evaluate("() => egocrowdIdle.track('test:quiet').forget()")
    assert page.evaluate("() => egocrowdIdle.track('test:quiet', { quiet: 600 }).seconds()") == 0
    context.close()
