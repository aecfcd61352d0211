"""The withdrawal pages in a real Chromium on a 390 px phone: a buyer lab's owner reads a notice (each
file by path and sha256) and acknowledges it, a viewer reads without the button; the admin reads
every withdrawal with the time each notice took, and removes a clip for cause with the form."""

from __future__ import annotations

import re

import pytest

from tests.platform.helpers import API
from tests.releases.withdraw_world import build
from tests.support.browser import PHONE, log_in, look, sqlite_db_url

pytestmark = pytest.mark.browser
db_url = sqlite_db_url  # SQLite only: the pages are the same on both backends


def test_a_buyer_acknowledges_and_the_admin_removes_a_clip_on_a_phone(app, live, db, world, chromium, tmp_path):
    ww = build(world, db, app.state.blobs, tmp_path)
    campaign = world.open_campaign()["id"]
    gone, unreleased = ww.clip(campaign), ww.clip(campaign)
    rid = ww.release([gone])
    ww.download(rid, ww.buyer)
    r = world.client.post(f"{API}/consents/{ww.consent_id}/withdraw", headers=world.worker.headers)
    assert r.status_code == 200, r.text
    # the second clip was covered by the same signature: withdrawn too, but in no release
    shard = ww.file_sha(rid, "webdataset/shard-000000.tar")
    browser = chromium()

    viewer = log_in(browser, live.base, ww.buyer.viewer.email, PHONE)
    viewer.get_by_role("link", name="Withdrawals").click()
    assert viewer.get_by_role("heading", name="Withdrawals", level=1).is_visible()
    assert viewer.locator(".withdrawal-notice").count() == 1
    assert viewer.get_by_role("button", name=re.compile("Acknowledge")).count() == 0
    assert "An owner or editor of your lab acknowledges it." in viewer.locator(".withdrawal-notice").inner_text()

    owner = log_in(browser, live.base, ww.buyer.owner.email, PHONE)
    owner.goto("/withdrawals")
    notice = owner.locator(".withdrawal-notice")
    text = notice.inner_text()
    assert "webdataset/shard-000000.tar" in text and shard in text and "to do" in text
    look(owner, "withdrawals-buyer")
    owner.get_by_role("button", name=re.compile("Acknowledge")).click()
    owner.wait_for_url(re.compile(r"/withdrawals\?m=acknowledged"))
    assert "acknowledged" in owner.locator(".withdrawal-notice").inner_text()
    assert owner.get_by_role("button", name=re.compile("Acknowledge")).count() == 0
    look(owner, "withdrawals-buyer-acknowledged")

    # a lab that never downloaded the release has nothing to do
    other = log_in(browser, live.base, ww.bystander.owner.email, PHONE)
    other.goto("/withdrawals")
    assert "No withdrawal notices" in other.locator("main").inner_text()

    admin = log_in(browser, live.base, ww.admin.email, PHONE)
    admin.goto("/admin/withdrawals")
    row = admin.locator(f'.admin-withdrawal[data-clip="{gone}"]')
    assert "1 notice sent · 1 acknowledged" in row.inner_text()
    assert admin.locator('[data-figure="max"]').inner_text() != "–"
    admin.locator(f'.admin-withdrawal[data-clip="{gone}"] summary').click()
    assert ww.buyer.owner.email not in row.inner_text()  # labs by name
    assert re.search(r"\d+ s", row.locator("td[data-delay]").inner_text())
    look(admin, "withdrawals-admin")

    # the removal form: a short reason is refused next to the form, then the clip is removed
    third = ww.clip(campaign, consent_id=_fresh_signature(world))
    admin.fill("#clip_id", str(third))
    admin.fill("#comment", "too short")
    admin.evaluate("document.querySelector('#comment').removeAttribute('minlength')")
    admin.get_by_role("button", name="Remove the clip").click()
    assert admin.locator('[data-code="withdrawal.comment_required"]').is_visible()
    assert admin.input_value("#clip_id") == str(third)
    admin.fill("#comment", "Filmed inside a stranger's home without asking them.")
    admin.get_by_role("button", name="Remove the clip").click()
    admin.wait_for_load_state()
    assert admin.get_by_role("heading", name=f"Remove clip {third} for cause?").is_visible()  # it asks first
    look(admin, "withdrawals-admin-confirm")
    admin.get_by_role("button", name="Remove the clip").click()
    admin.wait_for_url(re.compile(r"/admin/withdrawals\?m=removed"))
    assert "removed" in admin.locator(f'.admin-withdrawal[data-clip="{third}"]').inner_text()
    look(admin, "withdrawals-admin-removed")
    assert "0 notices sent" in admin.locator(f'.admin-withdrawal[data-clip="{unreleased}"]').inner_text()


def _fresh_signature(world) -> int:
    """The worker signs again after withdrawing (a new record covers new clips)."""
    from tests.platform.helpers import sign

    return sign(world.client, world.worker)["id"]
