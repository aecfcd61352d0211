"""The campaign page's chart (pure: days in, SVG coordinates out)."""

from __future__ import annotations

from egocrowd.web.pages.campaigns import chart


def test_a_campaign_with_no_clips_says_none_came_and_draws_flat():
    ch = chart([{"day": f"2026-11-{d:02d}", "received": 0, "passed": 0} for d in range(1, 31)])
    assert ch["top"] == 0  # the caption read "most in one day: 1" before any clip arrived
    assert {b["h"] for b in ch["bars"]} == {0} and {p.split(",")[1] for p in ch["line"].split()} == {"160.0"}


def test_the_busiest_day_fills_the_chart():
    ch = chart([{"day": "a", "received": 4, "passed": 2}, {"day": "b", "received": 1, "passed": 1}])
    assert ch["top"] == 4 and [b["h"] for b in ch["bars"]] == [140, 35]
