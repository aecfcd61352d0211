"""The capture page on an older Android browser: its scripts parse as ES2017 (a Chrome 70-era
WebView: no optional chaining, no ``??``, no class fields), a browser without MediaRecorder records
with the phone's camera app through a file input and uploads the same way (tus), and "upload only on
Wi-Fi" holds the upload on mobile data, across a reload, until the connection changes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from egocrowd.db.models import Clip
from tests.pipeline.test_clip_flow import REQ
from tests.platform.helpers import PASSWORD
from tests.support.browser import ARTIFACTS, PHONE

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "src" / "egocrowd" / "web" / "static"
ACORN = REPO / "node_modules" / "acorn"
#: What the capture page runs on an old phone: its own scripts and the tus client it loads.
OLD_PHONE_SCRIPTS = [
    STATIC / "capture.js",
    STATIC / "idle.js",
    STATIC / "locale.js",
    REPO / "node_modules" / "tus-js-client" / "dist" / "tus.min.js",
]
# Built-ins newer than Chrome 70 that ES2017 parsing cannot see (they are plain method calls).
NEWER_BUILTINS = re.compile(
    r"\.replaceAll\(|\.flatMap\(|\.flat\(|Object\.fromEntries|Promise\.allSettled|Promise\.any\("
    r"|globalThis|structuredClone|\.at\(-|queueMicrotask|\bAbortSignal\.timeout"
)


def _need_acorn() -> str:
    node = shutil.which("node")
    problem = None
    if node is None:
        problem = "node is not installed"
    elif not (ACORN / "package.json").exists():
        problem = "node_modules/acorn missing (npm ci installs the devDependencies)"
    if problem:
        if os.environ.get("EGOCROWD_REQUIRE_BROWSER") == "1":
            pytest.fail(problem + " and EGOCROWD_REQUIRE_BROWSER=1")
        pytest.skip(problem)
    return str(node)


def _es2017_errors(sources: list[Path]) -> dict[str, str]:
    """Parse each file with acorn at ecmaVersion 2017; the parse errors by file name."""
    script = (
        "const acorn = require(process.argv[1]); const fs = require('fs'); const out = {};"
        "for (const f of process.argv.slice(2)) {"
        "  try { acorn.parse(fs.readFileSync(f, 'utf8'), {ecmaVersion: 2017, sourceType: 'script'}); }"
        "  catch (e) { out[f] = e.message; } }"
        "console.log(JSON.stringify(out));"
    )
    node = _need_acorn()
    run = subprocess.run(
        [node, "-e", script, str(ACORN), *map(str, sources)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_the_capture_scripts_parse_as_es2017():
    assert _es2017_errors(OLD_PHONE_SCRIPTS) == {}
    for path in OLD_PHONE_SCRIPTS[:3]:
        assert not NEWER_BUILTINS.search(path.read_text()), path.name


def test_the_es2017_check_catches_newer_syntax(tmp_path):
    """The check above can fail: each of these is what a Chrome 70 WebView would refuse to parse."""
    samples = {
        "optional.js": "var a = {}; var b = a?.b;",
        "nullish.js": "var a = null; var b = a ?? 1;",
        "fields.js": "class A { x = 1; }",
        "catch.js": "try { f(); } catch { }",
    }
    for name, text in samples.items():
        (tmp_path / name).write_text(text)
    errors = _es2017_errors([tmp_path / name for name in samples])
    assert sorted(Path(f).name for f in errors) == sorted(samples)


# ---- in the browser ---------------------------------------------------------------------------

NO_MEDIARECORDER = "delete window.MediaRecorder;"
# A phone on mobile data, as Android's Network Information API reports it. Chromium on Linux has no
# connection `type`, and this machine cannot change networks: the one stand-in is the browser's own
# edge, and the page's reaction (waiting, then uploading by itself) is what the test checks.
CELLULAR = """
(function () {
  var net = new EventTarget();
  net.type = "cellular";
  Object.defineProperty(Navigator.prototype, "connection", { get: function () { return net; }, configurable: true });
  window.testNetwork = net;
})();
"""


def _log_in(browser, base, actor, init_scripts):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    for script in init_scripts:
        context.add_init_script(script)
    page = context.new_page()
    page.goto(base + "/login")
    page.fill("#email", actor.email)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def _clip_of(db, assignment_id):
    with db.transaction() as s:
        return s.scalar(sa.select(Clip).where(Clip.assignment_id == assignment_id))


def _campaign(world):
    return world.open_campaign(requirements={**REQ, "hands_in_view": False, "camera_placement": "any"})


@pytest.mark.browser
@pytest.mark.slow
def test_without_mediarecorder_the_camera_app_records_and_the_clip_uploads(live, db, world, chromium, qc_media):
    c = _campaign(world)
    a = world.claim(c["id"])
    page = _log_in(chromium(), live.base, world.worker, [NO_MEDIARECORDER])
    page.goto(f"{live.base}/assignments/{a['id']}/capture")
    assert page.evaluate("typeof window.MediaRecorder") == "undefined"
    # Record gives way to the phone's camera app: a file input that opens the rear camera.
    assert page.get_by_role("button", name="Record", exact=True).is_hidden()
    camera = page.locator("[data-role=camera]")
    assert camera.get_attribute("accept") == "video/*" and camera.get_attribute("capture") == "environment"
    label = page.locator("[data-role=camera-label]")
    assert label.is_visible() and label.inner_text().strip() == "Record with the camera app"
    assert "camera app" in page.inner_text("[data-role=status]")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "capture-old-phone.png"), full_page=True)

    camera.set_input_files(str(qc_media["good"]))
    page.wait_for_selector("#capture[data-state=ready]", timeout=20000)
    assert page.locator("[data-role=checks] li[data-level=fail]").count() == 0
    assert _clip_of(db, a["id"]) is None  # checked in the page: nothing sent yet
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url("**/clips?m=uploaded", timeout=60000)
    clip = _clip_of(db, a["id"])
    assert clip.sha256 == hashlib.sha256(qc_media["good"].read_bytes()).hexdigest()


@pytest.mark.browser
@pytest.mark.slow
def test_upload_only_on_wifi_waits_on_mobile_data_and_goes_when_the_connection_changes(
    live, db, world, chromium, qc_media
):
    c = _campaign(world)
    a = world.claim(c["id"])
    page = _log_in(chromium(), live.base, world.worker, [NO_MEDIARECORDER, CELLULAR])
    url = f"{live.base}/assignments/{a['id']}/capture"
    page.goto(url)
    page.get_by_label("Upload only on Wi-Fi").check()
    assert page.locator("[data-role=wifi-note]").is_hidden()  # this browser (so it says) knows its network
    page.locator("[data-role=camera]").set_input_files(str(qc_media["good"]))
    page.wait_for_selector("#capture[data-state=ready]", timeout=20000)
    assert "when you are on Wi-Fi" in page.inner_text("[data-role=status]")
    page.get_by_role("button", name="Upload").click()
    page.wait_for_selector("#capture[data-state=waiting-wifi]", timeout=5000)
    assert "Waiting for Wi-Fi" in page.inner_text("[data-role=status]")

    # A reload keeps the choice (localStorage) and the recording (IndexedDB); still nothing sent.
    page.reload()
    page.wait_for_selector("#capture[data-state=ready]", timeout=20000)
    assert page.get_by_label("Upload only on Wi-Fi").is_checked()
    page.get_by_role("button", name="Upload").click()
    page.wait_for_selector("#capture[data-state=waiting-wifi]", timeout=5000)
    page.wait_for_timeout(1000)
    assert page.evaluate("window.egocrowdCapture.state.upload") is None
    assert _clip_of(db, a["id"]) is None
    page.screenshot(path=str(ARTIFACTS / "capture-waiting-wifi.png"), full_page=True)

    # The phone joins a Wi-Fi network: the upload starts by itself.
    page.evaluate("testNetwork.type = 'wifi'; testNetwork.dispatchEvent(new Event('change'))")
    page.wait_for_url("**/clips?m=uploaded", timeout=60000)
    assert _clip_of(db, a["id"]).sha256 == hashlib.sha256(qc_media["good"].read_bytes()).hexdigest()


@pytest.mark.browser
@pytest.mark.slow
def test_a_browser_that_cannot_tell_wifi_says_so_and_uploads(live, db, world, chromium, qc_media):
    c = _campaign(world)
    a = world.claim(c["id"])
    # Desktop Chromium: navigator.connection has no `type`.
    page = _log_in(chromium(), live.base, world.worker, [])
    page.goto(f"{live.base}/assignments/{a['id']}/capture")
    assert page.evaluate("navigator.connection ? typeof navigator.connection.type : 'none'") != "string"
    page.get_by_label("Upload only on Wi-Fi").check()
    note = page.locator("[data-role=wifi-note]")
    assert note.is_visible() and "cannot tell Wi-Fi from mobile data" in note.inner_text()
    page.locator("[data-role=file]").set_input_files(str(qc_media["good"]))
    page.wait_for_selector("#capture[data-state=ready]", timeout=20000)
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url("**/clips?m=uploaded", timeout=60000)
    assert _clip_of(db, a["id"]) is not None


@pytest.mark.browser
@pytest.mark.slow
def test_the_capture_page_in_arabic_reads_right_to_left_on_a_phone(live, world, chromium):
    c = _campaign(world)
    a = world.claim(c["id"])
    page = _log_in(chromium(), live.base, world.worker, [NO_MEDIARECORDER])
    page.context.add_cookies([{"name": "lang", "value": "ar", "url": live.base}])
    page.goto(f"{live.base}/assignments/{a['id']}/capture")
    assert page.evaluate("[document.documentElement.lang, document.documentElement.dir]") == ["ar", "rtl"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # The timer sits at the start edge of the picture: its right side in Arabic.
    stage = page.locator(".capture-stage").bounding_box()
    timer = page.locator("[data-role=elapsed]").bounding_box()
    assert stage["x"] + stage["width"] - (timer["x"] + timer["width"]) < 20 < timer["x"] - stage["x"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "capture-old-phone-ar.png"), full_page=True)
