"""The label quality pages in a real Chromium, on a 360 px phone and on a desktop: the lab's
``/campaigns/{id}/labels`` (agreement, the clips agreeing least, the confusion heat map scrolling in
its own box, a label audit run and a flag resolved with plain forms, the exports downloading) and
the annotator's ``/labels/me`` (score, the flag, mistakes in plain words). Every action there is a
plain HTML form or link: the pages load no script of their own."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.labels.audit_world import labelled_campaign
from tests.support.browser import DESKTOP, SMALL_PHONE, log_in, look, sqlite_db_url

pytestmark = pytest.mark.browser
db_url = sqlite_db_url  # SQLite only: the pages are the same on both backends


def test_lab_runs_an_audit_and_resolves_a_flag_on_a_phone(live, world, db, chromium):
    st = labelled_campaign(world, clips=90, gold=10, seed=5)
    planted, expected, given = st.crowd.planted[0]
    browser = chromium()
    page = log_in(browser, live.base, world.lab.email, SMALL_PHONE, accept_downloads=True)
    page.goto(f"/campaigns/{st.campaign_id}/labels")
    assert page.locator("h1").inner_text().startswith("Label quality")
    alpha = float(page.locator("#labels-alpha").inner_text().split()[0])
    assert -1 <= alpha <= 1
    assert page.locator("table.labels-table tbody tr").count() > 0  # the clips agreeing least
    states = page.locator("table.labels-table tbody tr td:last-child").all_inner_texts()
    assert set(states) <= {"being labelled", "with a reviewer", "labelled", "–"}, states  # words, not codes
    # the table fits a small phone without a sideways scroll of its own
    worst = page.locator("section[aria-labelledby=labels-worst] .labels-scroll")
    assert worst.evaluate("e => e.scrollWidth <= e.clientWidth"), worst.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert page.get_by_text("No label audit has run yet.").is_visible()
    look(page, "labels-campaign-before")

    with page.expect_navigation():
        page.get_by_role("button", name="Run a label audit now").click()
    assert "m=audited" in page.url and page.get_by_text("Label audit done.").is_visible()
    cell = page.locator(
        f'section[aria-labelledby=labels-matrix] g[data-expected="{expected}"][data-given="{given}"]'
    ).first
    assert int(cell.get_attribute("data-count")) >= 3
    # the heat map is wider than the phone: its own box scrolls, the page does not (look() checks)
    box = page.locator(".labels-scroll:has(svg)").first
    assert box.evaluate("e => e.scrollWidth > e.clientWidth")
    flags = page.locator(".labels-flags li[data-state=open]")
    assert flags.count() >= 1
    first = flags.first
    assert f'"{expected}" labelled "{given}"' in first.inner_text()
    assert "re-annotating" in first.inner_text()
    look(page, "labels-campaign-audited")

    # the flag's annotator: their own confusion matrices, by id
    with page.expect_navigation():
        first.get_by_role("link", name=f"annotator #{st.user_of[planted]}").click()
    assert page.locator("h1").inner_text() == f"Annotator #{st.user_of[planted]}"
    assert page.locator(f'g[data-expected="{expected}"][data-given="{given}"]').count() >= 1
    look(page, "labels-annotator")
    page.go_back()
    first = page.locator(".labels-flags li[data-state=open]").first

    first.get_by_label("What was done (optional)").fill("instructions clarified")
    with page.expect_navigation():
        first.get_by_role("button", name="Mark resolved").click()
    assert page.get_by_text("Flag marked resolved.").is_visible()
    assert page.locator(".labels-flags li[data-state=resolved]").count() == 1

    # the exports download with the lab's session (GET links, no script)
    with page.expect_download() as d:
        page.get_by_role("link", name="Spans as JSONL").click()
    rows = [json.loads(line) for line in Path(d.value.path()).read_text(encoding="utf-8").splitlines()]
    assert rows and {"clip_sha256", "start_s", "verb", "noun", "kind"} <= set(rows[0])
    with page.expect_download() as d:
        page.get_by_role("link", name="Label Studio tasks").click()
    assert json.loads(Path(d.value.path()).read_text(encoding="utf-8"))[0]["data"]["fps"] > 0

    # on a desktop the same page, with room to spare
    wide = log_in(browser, live.base, world.lab.email, DESKTOP, accept_downloads=True)
    wide.goto(f"/campaigns/{st.campaign_id}/labels")
    look(wide, "labels-campaign")


def test_annotator_sees_their_quality_and_flag(live, world, db, chromium):
    st = labelled_campaign(world, clips=90, gold=10, seed=5)
    planted, expected, given = st.crowd.planted[0]
    from egocrowd.labels import audits

    with db.transaction() as s:
        audits.audit_campaign(s, st.campaign_id)
    browser = chromium()
    for viewport in (SMALL_PHONE, DESKTOP):
        page = log_in(browser, live.base, st.annotators[planted].email, viewport, accept_downloads=True)
        page.goto("/labels/me")
        assert page.locator("h1").inner_text() == "Your label quality"
        score = page.locator("#me-score-value").inner_text()
        assert re.fullmatch(r"\d{1,3}%", score) and 0 <= int(score[:-1]) <= 100, score  # |percent: "79%"
        flag = page.locator(".labels-flags li").first
        assert f'"{expected}"' in flag.inner_text() and f'"{given}"' in flag.inner_text()
        mistakes = page.locator(".labels-mistakes li")
        assert mistakes.count() > 0
        assert any(
            f'you labelled "{given}"' in t and f'the agreed label there is "{expected}"' in t
            for t in mistakes.all_inner_texts()
        )
        assert "gold" not in page.locator("main").inner_text().lower()
        look(page, "labels-me")
    # someone else's campaign page is not theirs to see
    page.goto(f"/campaigns/{st.campaign_id}/labels")
    assert page.locator("[data-code]").first.get_attribute("data-code") in ("auth.forbidden", "campaign.not_found")
