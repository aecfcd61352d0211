"""The capture page follows the campaign's requirements in Chromium on a phone-sized screen: the
checklist names the campaign's mount, a portrait picture on a landscape campaign is called out while
recording and before upload; and the clips page turns from "being checked" to the verdict by itself."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import sqlalchemy as sa
from tusclient import client as tus

from egocrowd.db.models import Clip
from tests.pipeline.test_clip_flow import REQ, drain
from tests.platform.helpers import PASSWORD
from tests.support.browser import ARTIFACTS, FAKE_CAMERA, PHONE

pytestmark = [pytest.mark.browser, pytest.mark.slow]
LANDSCAPE_CHEST = {**REQ, "orientation": "landscape", "camera_placement": "chest_mounted", "hands_in_view": False}


def portrait_y4m(path, seconds=4, fps=15):
    """A phone held upright, as Chromium's fake camera: 480x640."""
    with av.open(str(path), "w", format="yuv4mpegpipe") as c:
        s = c.add_stream("rawvideo", rate=fps)
        s.width, s.height, s.pix_fmt = 480, 640, "yuv420p"
        for i in range(seconds * fps):
            a = np.full((640, 480, 3), (170, 150, 120), np.uint8)
            a[200:400, (i * 12) % 400 :][:, :80] = 250
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


def log_in(browser, base, actor):
    # bypass_csp: only so the test can inject axe-core; the app's own scripts run under its CSP.
    page = browser.new_context(viewport=PHONE, bypass_csp=True).new_page()
    page.goto(base + "/login")
    page.fill("#email", actor.email)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def axe_violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        "axe.run().then(r => ({passes: r.passes.length,"
        " violations: r.violations.map(v => v.id + ': ' + v.nodes.map(n => n.target).join(' '))}))"
    )
    assert found["passes"] > 10  # axe really ran
    return found["violations"]


def checks_text(page):
    return page.locator("[data-role=checks]").inner_text()


def test_a_chest_landscape_campaign_on_an_upright_phone(live, world, chromium, qc_media, tmp_path):
    c = world.open_campaign(requirements=LANDSCAPE_CHEST)
    a = world.claim(c["id"])
    cam = tmp_path / "upright.y4m"
    portrait_y4m(cam)
    page = log_in(chromium(*FAKE_CAMERA, f"--use-file-for-fake-video-capture={cam}"), live.base, world.worker)
    page.goto(f"{live.base}/assignments/{a['id']}/capture")
    checklist = page.locator("ul.checklist").inner_text()
    assert "chest harness at sternum height" in checklist and "forehead" not in checklist
    assert "Phone turned sideways (landscape)" in checklist
    assert axe_violations(page) == []
    # While recording upright, the preview says to turn the phone.
    page.get_by_role("button", name="Record").click()
    turn = page.locator("[data-role=turn]")
    turn.wait_for(state="visible", timeout=10000)
    assert turn.inner_text() == "This campaign needs landscape: turn your phone sideways."
    page.screenshot(path=str(_artifacts() / "capture-turn-phone.png"))
    page.get_by_role("button", name="Stop").click()
    page.wait_for_selector("#capture[data-state=rejected]", timeout=20000)
    assert "This campaign needs landscape: turn your phone sideways and record again." in checks_text(page)
    assert page.get_by_role("button", name="Upload").is_disabled()
    # A picked file stored landscape with a phone's 90° rotation is portrait too, as the browser shows it.
    page.locator("[data-role=file]").set_input_files(str(qc_media["portrait_rotated"]))
    page.wait_for_selector("#capture[data-state=rejected] [data-role=checks] li", timeout=20000)
    assert "Resolution 288×352" in checks_text(page) and "turn your phone sideways" in checks_text(page)
    page.screenshot(path=str(_artifacts() / "capture-portrait-file.png"), full_page=True)
    # The good (landscape) clip passes; the mount must still be confirmed before uploading.
    page.locator("[data-role=file]").set_input_files(str(qc_media["good"]))
    page.wait_for_selector("#capture[data-state=confirm]", timeout=20000)
    assert "Orientation: landscape" in checks_text(page)
    page.get_by_label("I recorded with the phone in a chest harness at sternum height.").check()
    page.wait_for_selector("#capture[data-state=ready]", timeout=5000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert axe_violations(page) == []
    page.screenshot(path=str(_artifacts() / "capture-chest-ready.png"), full_page=True)


def test_the_clips_pages_show_the_verdict_without_a_reload(app, db, live, world, chromium, qc_media):
    c = world.open_campaign(requirements={**REQ, "hands_in_view": False, "camera_placement": "any"})
    a = world.claim(c["id"])
    up = tus.TusClient(live.base + "/api/v1/uploads/", headers=world.worker.headers)
    up.uploader(str(qc_media["dark"]), chunk_size=256 * 1024, metadata={"assignment": str(a["id"])}).upload()
    with db.transaction() as s:
        clip_id = s.scalar(sa.select(Clip.id))
    page = log_in(chromium(), live.base, world.worker)
    detail = page.context.new_page()
    page.goto(live.base + "/clips")
    detail.goto(f"{live.base}/clips/{clip_id}")
    card = page.locator(f".clip[data-id='{clip_id}']")
    assert card.get_attribute("data-status") == "processing" and "being checked" in card.inner_text()
    page.screenshot(path=str(_artifacts() / "clips-processing.png"), full_page=True)
    page.evaluate("window.notReloaded = true")
    drain(app, db)  # the worker checks the clip; nobody touches the pages
    page.wait_for_selector(f".clip[data-id='{clip_id}'][data-status=qc_failed]", timeout=15000)
    assert page.evaluate("window.notReloaded") is True
    text = page.locator(f".clip[data-id='{clip_id}']").inner_text()
    assert "needs another take" in text and "too dark" in text and "Record again" in text
    page.screenshot(path=str(_artifacts() / "clips-checked.png"), full_page=True)
    assert axe_violations(page) == []
    detail.wait_for_selector(".clip[data-status=qc_failed]", timeout=15000)
    report = detail.locator("#clip-report + ul").inner_text()
    assert "Too dark: failed" in report and "Duration: OK" in report
    detail.set_viewport_size(PHONE)
    detail.screenshot(path=str(_artifacts() / "clip-detail.png"), full_page=True)
    assert axe_violations(detail) == []


def _artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
