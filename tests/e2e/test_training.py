"""The training pages in a real Chromium on a phone: a worker reads their levels, takes a
qualification's test (typed spans, no special input), passes, and the campaign page stops asking
for training; the same pages in Arabic, right to left."""

from __future__ import annotations

import pytest

from egocrowd.db.models import Campaign
from tests.support.browser import PHONE, log_in, look, sqlite_db_url
from tests.training.test_training import GOLD, _qualification

pytestmark = pytest.mark.browser
db_url = sqlite_db_url  # SQLite only: the pages are the same on both backends


def _fill(page, item: str, spans: list[dict]) -> None:
    for n, s in enumerate(spans, 1):
        page.fill(f"#tr-s_{item}-{n}", f"{s['start_ms'] / 1000:g}")
        page.fill(f"#tr-e_{item}-{n}", f"{s['end_ms'] / 1000:g}")
        page.select_option(f"#tr-v_{item}-{n}", s["verb"])
        page.select_option(f"#tr-n_{item}-{n}", s["noun"])


def test_a_worker_passes_a_test_on_a_phone_and_the_campaign_opens(live, app, client, world, db, chromium, tmp_path):
    q = _qualification(world, app, client, tmp_path, slug="kitchen-labels")
    cid = world.open_campaign(title="Better paid")["id"]
    with db.transaction() as s:
        s.get_one(Campaign, cid).required_qualification = q["slug"]
    page = log_in(chromium(), live.base, world.worker.email, PHONE)
    page.goto(f"/campaigns/{cid}")
    assert page.locator("#training-needs").get_attribute("data-ok") == "0"
    page.click("#training-practise")
    assert page.url.endswith("/training/q/kitchen-labels")
    look(page, "training-qualification")
    with page.expect_navigation():
        page.click("#tr-start")
    look(page, "training-test")
    items = page.locator(".tr-question").evaluate_all("els => els.map(e => e.dataset.item)")
    assert len(items) == 2
    for item in items:
        _fill(page, item, GOLD)
    with page.expect_navigation():
        page.click("#tr-hand-in")
    assert "Passed" in page.locator("#tr-score").inner_text()
    look(page, "training-result")
    page.goto(f"/campaigns/{cid}")
    assert page.locator("#training-needs").get_attribute("data-ok") == "1"
    assert page.locator("#claim").count() == 1
    page.goto("/training")
    look(page, "training-home")
    page.context.add_cookies([{"name": "lang", "value": "ar", "url": live.base}])
    page.goto("/training")
    assert page.evaluate("document.documentElement.dir") == "rtl"
    look(page, "training-home-ar")
