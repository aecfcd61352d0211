"""Chromium with a fake camera records on the capture widget and uploads it with tus-js-client."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from egocrowd.web.pages.render import templates
from tests.support.browser import FAKE_CAMERA, PHONE
from tests.support.servers import LiveServer
from tests.uploads.tus_testapp import make_app

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "src" / "egocrowd" / "web"
VENDOR = REPO / "node_modules"

pytestmark = pytest.mark.browser


def _need_browser() -> None:
    if not (VENDOR / "tus-js-client" / "dist" / "tus.min.js").exists():
        pytest.skip("node_modules/tus-js-client missing (npm ci)")


def make_y4m(path: Path, *, seconds: int = 3, fps: int = 15, dark: bool = False) -> None:
    """A moving test picture for Chromium's fake camera (bright, or nearly black)."""
    with av.open(str(path), "w", format="yuv4mpegpipe") as c:
        s = c.add_stream("rawvideo", rate=fps)
        s.width, s.height, s.pix_fmt = 640, 480, "yuv420p"
        for i in range(seconds * fps):
            a = np.full((480, 640, 3), (8, 8, 10) if dark else (170, 150, 120), np.uint8)
            x = (i * 12) % 560
            a[150:300, x : x + 80] = (20, 20, 20) if dark else (250, 250, 250)
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def serve(root: Path, patch_delay_s: float = 0.0, **capture):
    asgi, app = make_app(root, patch_delay_s=patch_delay_s)

    @app.get("/capture", response_class=HTMLResponse)
    def page() -> str:
        # The app's own template environment (gettext, filters); asset() adds a content hash there,
        # plain URLs do here.
        widget = templates.get_template("_capture_widget.html").render(
            capture=capture, csrf="csrf-tok-alice", asset=lambda path: path
        )
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="stylesheet" href="/static/app.css"><title>Capture</title></head>'
            f"<body><main>{widget}</main></body></html>"
        )

    @app.get("/done", response_class=HTMLResponse)
    def done() -> str:
        return "<p id='done'>done</p>"

    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")
    app.mount("/vendor", StaticFiles(directory=VENDOR), name="vendor")
    live = LiveServer(asgi).start()
    return live.server, app, live.base


def record(page, seconds: float) -> None:
    page.get_by_role("button", name="Record").click()
    # Polled from here: wait_for_function evals its predicate in the page, which the app's CSP forbids.
    for _ in range(150):
        if float(page.evaluate("document.querySelector('[data-role=elapsed]').dataset.seconds || 0")) >= seconds:
            break
        page.wait_for_timeout(100)
    else:
        raise AssertionError(f"the recording never reached {seconds} s")
    page.get_by_role("button", name="Stop").click()


@pytest.mark.slow
def test_record_check_and_upload_on_a_phone_sized_page(tmp_path, chromium):
    _need_browser()

    y4m = tmp_path / "camera.y4m"
    make_y4m(y4m)
    server, app, base = serve(
        tmp_path / "srv",
        assignment="A1",
        min_duration=1,
        max_duration=30,
        min_width=320,
        min_height=240,
        chunk_size=64 * 1024,
        redirect="/done?clip={clip}&upload={upload}",
    )
    try:
        browser = chromium(*FAKE_CAMERA, f"--use-file-for-fake-video-capture={y4m}")
        ctx = browser.new_context(viewport=PHONE)
        ctx.add_cookies([{"name": "session", "value": "tok-alice", "url": base}])
        page = ctx.new_page()
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text))
        page.goto(base + "/capture")
        record(page, 2.5)
        page.wait_for_selector("#capture[data-state=ready]", timeout=20000)
        checks = page.locator("[data-role=checks] li")
        assert checks.count() >= 3
        failed = page.locator("[data-role=checks] li[data-level=fail]")
        assert failed.count() == 0, page.inner_text("[data-role=checks]")
        # the widget fits a 390 px phone screen without horizontal scrolling
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.get_by_role("button", name="Upload").click()
        page.wait_for_url("**/done?clip=*", timeout=60000)
        upload_id = page.url.rsplit("=", 1)[1]
        assert page.url.endswith(f"?clip={upload_id}&upload={upload_id}")  # the header reached the page
    finally:
        server.should_exit = True

    clip = json.loads((tmp_path / "srv" / "clips" / f"{upload_id}.json").read_text())
    assert clip["owner"] == "alice" and clip["assignment"] == "A1"
    meta = clip["metadata"]
    assert meta["filetype"].startswith("video/") and meta["filename"].startswith("capture-")
    assert "Chrome" in meta["device"] and meta["recorded_at"].endswith("Z")
    blob = app.state.hooks.blobs.path(clip["sha256"])
    with av.open(str(blob)) as c:
        frames = [f for _, f in zip(range(10), c.decode(video=0))]
        assert len(frames) >= 10, console
        assert (frames[0].width, frames[0].height) == (640, 480)
    assert list(app.state.store.dir.glob("*.part")) == []


@pytest.mark.slow
def test_a_dark_or_short_clip_is_stopped_before_any_byte_is_sent(tmp_path, chromium):
    _need_browser()

    y4m = tmp_path / "dark.y4m"
    make_y4m(y4m, dark=True)
    server, app, base = serve(
        tmp_path / "srv", assignment="A1", min_duration=5, max_duration=30, min_width=320, min_height=240
    )
    try:
        browser = chromium(*FAKE_CAMERA, f"--use-file-for-fake-video-capture={y4m}")
        page = browser.new_context(viewport=PHONE).new_page()
        page.goto(base + "/capture")
        record(page, 1.5)
        page.wait_for_selector("#capture[data-state=rejected]", timeout=20000)
        failed = page.inner_text("[data-role=checks]")
        assert "Too dark" in failed and "needs 5" in failed
        assert page.get_by_role("button", name="Upload").is_disabled()
    finally:
        server.should_exit = True
    assert app.state.counter.counts == {"PATCH": 0, "POST": 0}


@pytest.mark.slow
def test_a_reload_mid_upload_resumes_instead_of_restarting(tmp_path, chromium):
    _need_browser()

    y4m = tmp_path / "camera.y4m"
    make_y4m(y4m)
    # Small chunks on a slow link, so the reload lands in the middle of the upload.
    server, app, base = serve(
        tmp_path / "srv",
        patch_delay_s=0.25,
        assignment="A1",
        min_duration=1,
        max_duration=30,
        min_width=320,
        min_height=240,
        chunk_size=32 * 1024,
        redirect="/done?upload={upload}",
    )
    try:
        browser = chromium(*FAKE_CAMERA, f"--use-file-for-fake-video-capture={y4m}")
        ctx = browser.new_context(viewport=PHONE)
        ctx.add_cookies([{"name": "session", "value": "tok-alice", "url": base}])
        page = ctx.new_page()
        page.goto(base + "/capture")
        record(page, 2.5)
        page.wait_for_selector("#capture[data-state=ready]", timeout=20000)
        page.get_by_role("button", name="Upload").click()
        page.wait_for_function("document.querySelector('[data-role=progress]').value >= 30", timeout=30000)
        page.reload()
        # The recording comes back from IndexedDB; tus-js-client finds the unfinished upload.
        page.wait_for_selector("#capture[data-state=ready]", timeout=20000)
        assert "not uploaded yet" in page.inner_text("[data-role=status]")
        page.get_by_role("button", name="Upload").click()
        page.wait_for_url("**/done?upload=*", timeout=60000)
        upload_id = page.url.rsplit("=", 1)[1]
    finally:
        server.should_exit = True
    clip = json.loads((tmp_path / "srv" / "clips" / f"{upload_id}.json").read_text())
    assert len(list(app.state.store.dir.glob("*.json"))) == 1  # one upload, resumed, not a second one
    # Every byte crossed the network once: the part sent before the reload was not sent again.
    assert app.state.counter.counts["PATCH"] == clip["size"]
