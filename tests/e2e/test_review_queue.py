"""The review queue and item pages in a real Chromium: a reviewer on a desktop seeks and accepts
with the keyboard, rejects with a reason (typing in the comment fires no shortcut), the pages look
right on a phone, the forms work without JavaScript, and a worker appeals from the clip page."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from egocrowd.db.models import Clip, ClipStatus, ReviewItem, ReviewKind
from egocrowd.labels import review
from tests.platform.helpers import make_user
from tests.support.browser import DESKTOP, PHONE, log_in, look, seek, sqlite_db_url, until
from tests.support.deid import add_clip, make_video

pytestmark = pytest.mark.browser
db_url = sqlite_db_url  # SQLite only: the pages are the same on both backends


def _status(db, clip_id: int) -> tuple[ClipStatus, str | None]:
    with db.transaction() as s:
        c = s.get_one(Clip, clip_id)
        return c.status, c.reason_code


def test_reviewer_accepts_and_rejects_with_the_keyboard_and_a_phone_looks_right(
    app, live, db, world, chromium, tmp_path
):
    video = make_video(tmp_path / "clip.mp4", seconds=12)
    campaign = world.open_campaign(review={"reviewers": "platform", "sample_fraction": 1.0, "pay_cents": 25})
    ids = []
    for _ in range(3):
        cid = add_clip(
            db, app.state.blobs, campaign_id=campaign["id"], worker_id=world.worker.id, raw=video, derived=video
        )
        with db.transaction() as s:
            review.route_clip(s, s.get_one(Clip, cid))
        ids.append(cid)
    with db.transaction() as s:
        items = {i.clip_id: i.id for i in s.scalars(sa.select(ReviewItem))}
    reviewer = make_user(db, "reviewer")
    browser = chromium()

    # Desktop: the queue, then keys on the item page.
    page = log_in(browser, live.base, reviewer.email, DESKTOP)
    page.goto("/review")
    assert page.locator(".review-items li[data-item]").count() == 3
    assert page.locator("[data-pay]").first.inner_text() == "you earn USD\xa00.25"  # what each decision pays
    page.get_by_role("link", name=f"Accept or reject: clip {ids[0]}").click()
    page.wait_for_load_state()
    assert page.locator("#ri-keys").is_visible()  # the hint, on a desktop
    state = seek(page, 2.0)
    assert state["error"] is None and abs(state["time"] - 2.0) < 0.2  # Range requests: it seeks
    page.locator("h1").click()  # focus on the page, not on a control
    page.keyboard.press("k")
    until(page, "Math.abs(document.querySelector('video').currentTime - 7) < 0.3")
    page.keyboard.press("ArrowLeft")
    until(page, "Math.abs(document.querySelector('video').currentTime - 2) < 0.3")
    page.keyboard.press(" ")
    until(page, "!document.querySelector('video').paused")
    page.keyboard.press(" ")
    until(page, "document.querySelector('video').paused")
    look(page, "review-item")
    with page.expect_navigation():
        page.keyboard.press("a")
    assert "/review" in page.url and "Clip accepted." in page.content()
    assert _status(db, ids[0]) == (ClipStatus.accepted, None)

    # Reject: R goes to the reason; typing "a" in the comment accepts nothing.
    page.goto(f"/review/items/{items[ids[1]]}")
    page.locator("h1").click()
    page.keyboard.press("r")
    assert page.evaluate("document.activeElement.id") == "ri-reason"
    page.select_option("#ri-reason", "poor_quality")
    page.locator("#ri-comment").click()
    page.keyboard.type("a blurry take, sorry")
    assert page.url.endswith(f"/review/items/{items[ids[1]]}")
    assert _status(db, ids[1])[0] is ClipStatus.qc_passed
    with page.expect_navigation():
        page.get_by_role("button", name="Reject the clip").click()
    assert "Clip rejected" in page.content()
    assert _status(db, ids[1]) == (ClipStatus.declined, "review.poor_quality")
    page.context.close()

    # A phone: the queue and the item page fit 390 px, pass axe; no keyboard hint.
    page = log_in(browser, live.base, reviewer.email, PHONE)
    page.goto("/review")
    look(page, "review-queue")
    page.goto(f"/review/items/{items[ids[2]]}")
    assert not page.locator("#ri-keys").is_visible()
    look(page, "review-item-phone")
    # Each decision was paid: the reviewer's earnings list them.
    page.goto("/earnings")
    rows = page.locator("#review-table tr[data-review]")
    assert rows.count() == 2 and rows.first.get_attribute("data-state") == "approved"
    assert "USD\xa00.25" in rows.first.inner_text()
    look(page, "review-earnings")
    page.context.close()


def test_forms_work_without_javascript_and_the_worker_appeals(app, live, db, world, chromium, tmp_path):
    video = make_video(tmp_path / "clip.mp4", seconds=3)
    campaign = world.open_campaign(review={"reviewers": "platform", "sample_fraction": 1.0})
    cid = add_clip(db, app.state.blobs, campaign_id=campaign["id"], worker_id=world.worker.id, raw=video, derived=video)
    with db.transaction() as s:
        item = review.route_clip(s, s.get_one(Clip, cid)).id
    first, second = make_user(db, "reviewer"), make_user(db, "reviewer")
    browser = chromium()

    page = log_in(browser, live.base, first.email, DESKTOP, js=False)
    page.goto(f"/review/items/{item}")
    with page.expect_navigation():
        page.get_by_role("button", name="Reject the clip").click()  # no reason: the page says so
    assert page.locator("[data-code='review.bad_reason']").is_visible()
    page.select_option("#ri-reason", "other")
    page.fill("#ri-comment", "The task is never finished on camera.")
    with page.expect_navigation():
        page.get_by_role("button", name="Reject the clip").click()
    assert _status(db, cid) == (ClipStatus.declined, "review.other")
    page.context.close()

    # The worker reads why and appeals once (on a phone, no JS).
    page = log_in(browser, live.base, world.worker.email, PHONE, js=False)
    page.goto(f"/clips/{cid}")
    assert "The task is never finished on camera." in page.content()
    page.fill("#appeal-comment", "I finish folding at the very end, after 0:02.")
    with page.expect_navigation():
        page.get_by_role("button", name="Send the appeal").click()
    assert "Appeal sent" in page.content()
    assert page.locator("#appeal-comment").count() == 0  # once per clip
    page.context.close()
    with db.transaction() as s:
        appeal = s.scalar(sa.select(ReviewItem).where(ReviewItem.kind == ReviewKind.appeal))
        assert appeal.excluded_user_id == first.id
        appeal_id = appeal.id

    # The other reviewer grants it; the one who rejected does not see it in the queue.
    page = log_in(browser, live.base, first.email, DESKTOP)
    page.goto("/review")
    assert page.locator(f"[data-item='{appeal_id}']").count() == 0
    page.context.close()
    page = log_in(browser, live.base, second.email, DESKTOP)
    page.goto(f"/review/items/{appeal_id}")
    assert "I finish folding at the very end" in page.content()
    keys = page.locator("#ri-keys")  # A and R do nothing on an appeal: the hint names only the video's keys
    assert keys.is_visible() and "accept" not in keys.inner_text() and "Space" in keys.inner_text()
    look(page, "review-appeal")
    with page.expect_navigation():
        page.get_by_role("button", name="Grant: accept the clip").click()
    assert _status(db, cid) == (ClipStatus.accepted, None)
    page.context.close()


def test_review_item_in_arabic_keeps_the_player_left_to_right(app, live, db, world, chromium, tmp_path):
    """Issue #15: the item page in Arabic is right-to-left (the decision form, the reasons), but the
    player's time axis is not mirrored; a phone shows it without sideways scrolling."""
    video = make_video(tmp_path / "clip.mp4", seconds=4)
    campaign = world.open_campaign(review={"reviewers": "platform", "sample_fraction": 1.0})
    cid = add_clip(db, app.state.blobs, campaign_id=campaign["id"], worker_id=world.worker.id, raw=video, derived=video)
    with db.transaction() as s:
        review.route_clip(s, s.get_one(Clip, cid))
        item = s.scalars(sa.select(ReviewItem)).one().id
    page = log_in(chromium(), live.base, make_user(db, "reviewer").email, PHONE)
    page.context.add_cookies([{"name": "lang", "value": "ar", "url": live.base}])
    page.goto(f"/review/items/{item}")
    direction = "el => getComputedStyle(el).direction"
    assert page.evaluate("[document.documentElement.lang, document.documentElement.dir]") == ["ar", "rtl"]
    assert (
        page.locator("#ri-video").get_attribute("dir") == "ltr"
        and page.locator("#ri-video").evaluate(direction) == "ltr"
    )
    assert page.locator("#ri-decide").evaluate(direction) == "rtl"
    # the reasons' stored codes are unchanged whatever language shows their words
    codes = page.locator("#ri-reason option").evaluate_all("os => os.map(o => o.value)")
    assert codes == ["", *review.REJECT_REASONS]
    look(page, "review-item-ar")
