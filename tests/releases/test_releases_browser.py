"""Cutting a release in a real Chromium on a 390 px phone: the live preview count follows the filters,
the cut, the build's page, the published release with its files."""

from __future__ import annotations

import re

import pytest

from egocrowd.releases import builder
from tests.support.browser import PHONE, log_in, look, sqlite_db_url, until

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("tiny_formats")]
db_url = sqlite_db_url  # SQLite only: the pages are the same on both backends


def test_cutting_a_release_on_a_phone(app, live, release_lab, chromium):
    lab = release_lab
    lab.clip(video=0, spans=[("open", "jar", 0, 600)])
    lab.clip(video=1, country="UG", spans=[("twist", "lid", 0, 800)])
    browser = chromium()
    page = log_in(browser, live.base, lab.owner.email, PHONE)
    page.goto("/releases")
    look(page, "releases-1-empty")
    page.get_by_role("link", name="Cut a release").click()
    assert page.locator("#preview-count").get_attribute("data-count") == "2"
    page.fill("#name", "jar-opening")
    page.fill("#title", "Jar opening, first cut")
    page.fill("#licence_name", "Research licence")
    page.fill("#countries", "UG")  # the live count follows the filters
    until(page, "document.querySelector('#preview-count').dataset.count === '1'")
    page.fill("#countries", "")
    page.fill("#labels", "open jar, close lid")
    until(page, "document.querySelector('#preview-count').dataset.count === '1'")
    look(page, "releases-2-form")
    page.get_by_role("button", name="Cut release").click()
    page.wait_for_url(re.compile(r"/releases/\d+\?m=release_cut$"))
    assert page.locator("#release-status").inner_text() == "building"
    builder.build_next(lab.db, lab.blobs, lab.settings)
    page.reload()
    assert page.locator("#release-status").inner_text() == "published"
    assert page.locator("#release-clips").inner_text() == "1"
    assert page.locator("#release-files li").count() == 4
    look(page, "releases-3-published")
