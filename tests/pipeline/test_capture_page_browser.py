"""The real app in Chromium on a phone-sized screen: log in, claim, record with the (fake) rear
camera on the capture page, upload with tus-js-client, and find the checked clip under "My clips"."""

from __future__ import annotations

import av
import pytest
import sqlalchemy as sa

from egocrowd.blobs import BlobStore
from egocrowd.db.models import Clip
from tests.platform.helpers import PASSWORD
from tests.support.browser import ARTIFACTS, FAKE_CAMERA, PHONE
from tests.support.servers import LiveServer
from tests.support.world import World
from tests.uploads.test_capture_browser import make_y4m, record

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_worker_records_and_uploads_on_the_capture_page(tmp_path, db_url, db, chromium):

    from egocrowd.settings import Settings
    from egocrowd.web import create_app

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        secret_key="s" * 40,
        run_pipeline_in_server=True,
        pipeline_executor="inline",
    )
    app = create_app(settings, db)
    y4m = tmp_path / "camera.y4m"
    make_y4m(y4m, seconds=4)
    with LiveServer(app) as live, live.client() as http:
        world = World.build(http, db)
        worker = world.worker
        c = world.open_campaign(
            requirements={
                "min_duration_s": 2,
                "max_duration_s": 30,
                "min_width": 320,
                "min_height": 240,
                "min_fps": 10,
                "hands_in_view": False,
            }
        )
        browser = chromium(*FAKE_CAMERA, f"--use-file-for-fake-video-capture={y4m}")
        page = browser.new_context(viewport=PHONE).new_page()
        page.goto(live.base + "/login")
        page.fill("#email", worker.email)
        page.fill("#password", PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.goto(f"{live.base}/campaigns/{c['id']}")
        page.click("#claim")
        page.get_by_role("link", name="Record & upload").click()
        record(page, 3.0)
        # The campaign's mount (the default: head-mounted) is confirmed before uploading.
        page.wait_for_selector("#capture[data-state=confirm]", timeout=20000)
        assert page.get_by_role("button", name="Upload").is_disabled()
        page.get_by_label("I recorded with the phone on a forehead strap.").check()
        page.wait_for_selector("#capture[data-state=ready]", timeout=5000)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "capture-page.png"), full_page=True)
        page.get_by_role("button", name="Upload").click()
        page.wait_for_url("**/clips?m=uploaded", timeout=60000)
        for _ in range(60):  # the server's pipeline thread checks the clip within seconds
            page.reload()
            if page.locator(".clip[data-status=processing]").count() == 0:
                break
            page.wait_for_timeout(500)
        status = page.locator(".clip").first.get_attribute("data-status")
        page.screenshot(path=str(ARTIFACTS / "my-clips.png"), full_page=True)
        assert status in ("qc_passed", "qc_failed", "rejected")
        with db.transaction() as s:
            clip = s.scalar(sa.select(Clip))
        assert clip.client_meta["device"] and clip.assignment_id is not None
        assert clip.client_meta["mount"] == "head_mounted"
        with av.open(str(BlobStore(settings.blobs_path).path(clip.sha256))) as container:
            frames = [f for _, f in zip(range(10), container.decode(video=0))]
        assert len(frames) == 10 and (frames[0].width, frames[0].height) == (640, 480)
