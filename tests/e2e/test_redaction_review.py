"""The de-identified video and the redaction review in a real Chromium on a phone-sized screen: the
worker's <video> plays and seeks (Range requests through the page route), the reviewer's page
outlines the regions in step with the video, seeks to a track, and takes a box drawn by finger."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from egocrowd.db.models import DeidStatus, RedactionEdit
from tests.platform.helpers import make_user
from tests.support.browser import PHONE, log_in, look, seek, sqlite_db_url, until
from tests.support.deid import add_clip, make_video

pytestmark = pytest.mark.browser
db_url = sqlite_db_url  # SQLite only: the pages are the same on both backends


def test_worker_video_plays_and_seeks_and_reviewer_corrects_a_region(app, live, db, world, chromium, tmp_path):
    raw, derived = make_video(tmp_path / "raw.mp4", seconds=4), make_video(tmp_path / "d.mp4", seconds=4, shade=90)
    campaign = world.open_campaign()
    clean = add_clip(
        db,
        app.state.blobs,
        campaign_id=campaign["id"],
        worker_id=world.worker.id,
        raw=raw,
        derived=derived,
        frames=40,
        seconds=4.0,
    )
    review = add_clip(
        db,
        app.state.blobs,
        campaign_id=campaign["id"],
        worker_id=world.worker.id,
        raw=raw,
        derived=derived,
        deid=DeidStatus.review,
        reason="deid.low_confidence",
        frames=40,
        seconds=4.0,
    )
    browser = chromium()

    # The worker: the clip page's video plays and seeks on a phone.
    page = log_in(browser, live.base, world.worker.email, PHONE)
    page.goto(f"/clips/{clean}")
    state = seek(page, 2.5, until_a_frame=True)
    assert state["error"] is None and state["ready"] >= 2 and state["width"] == 320
    assert abs(state["time"] - 2.5) < 0.2
    assert page.evaluate("document.querySelector('video').play().then(() => true)")
    until(page, "document.querySelector('video').currentTime > 2.6")
    look(page, "clip-video")

    # The reviewer: the queue, then the clip's regions drawn over the video.
    reviewer = make_user(db, "reviewer")
    page = log_in(browser, live.base, reviewer.email, PHONE)
    page.goto("/review/redaction")
    page.get_by_role("link", name=f"Clip {review}").click()
    page.wait_for_selector("#rv-stage[data-ready=yes]")
    seek(page, 0.5)
    until(page, "document.querySelector('#rv-stage').dataset.frame === '5'")
    assert page.get_attribute("#rv-stage", "data-outlines") == "1"  # the face track
    page.get_by_role("button", name="Show track 2").click()  # the text track starts at frame 20
    until(page, "document.querySelector('#rv-stage').dataset.frame === '20'")
    box = page.locator("#rv-video").bounding_box()
    canvas = page.locator("#rv-canvas").bounding_box()
    assert abs(canvas["width"] - box["width"]) < 1 and abs(canvas["height"] - box["height"]) < 1  # scaled with it
    look(page, "redaction-review")

    # Draw a missed box with a finger (touch pointer events), on the paused frame.
    page.get_by_role("button", name="Draw a box").click()
    # The button sits below the video: pressing it brings the whole picture on screen to draw on.
    box = page.locator("#rv-canvas").bounding_box()  # where it is on the screen now
    assert box["y"] > -1 and box["y"] + box["height"] < PHONE["height"] + 1, box
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    cdp = page.context.new_cdp_session(page)

    def touch(kind, px, py):
        points = [] if kind == "touchEnd" else [{"x": px, "y": py}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", x + w * 0.25, y + h * 0.25)
    touch("touchMove", x + w * 0.4, y + h * 0.4)
    touch("touchMove", x + w * 0.5, y + h * 0.75)
    touch("touchEnd", 0, 0)
    assert abs(float(page.input_value("#rv-x0")) - 0.25) < 0.03
    assert abs(float(page.input_value("#rv-y1")) - 0.75) < 0.03
    assert page.input_value("#rv-start") == "20"
    page.fill("#rv-seconds", "1")
    page.get_by_role("button", name="From here").click()
    assert page.input_value("#rv-end") == "30"
    with page.expect_navigation():
        page.get_by_role("button", name="Add region").click()
    assert "Correction saved" in page.content()
    with db.transaction() as s:
        e = s.scalar(sa.select(RedactionEdit).where(RedactionEdit.clip_id == review))
        assert (e.kind.value, e.frame_start, e.frame_end) == ("add", 20, 30)
        assert abs(e.box[0] - 0.25) < 0.03 and abs(e.box[3] - 0.75) < 0.03
    page.wait_for_selector("#rv-stage[data-ready=yes]")
    look(page, "redaction-review-edited")
