"""Page weight and time to usable of the worker's five main pages on a slow 3G phone, in English
and in Arabic (issue #15), cold cache and repeat visit.

    .venv/bin/python benchmarks/page_weight.py                 # seeds a demo, serves it, measures
    .venv/bin/python benchmarks/page_weight.py --compare-off   # also with compression and caching off
    .venv/bin/python benchmarks/page_weight.py --url URL       # a running demo-seeded server

Pages, as the demo worker: the task list (/campaigns), a campaign's page, the capture page of a
claimed slot, /clips and /earnings, each in English and in Arabic (chosen with the language switcher,
as a worker would). Each is opened in Debian's chromium at 390×844 (a phone: is_mobile, touch) in a
fresh browser context with its cache cleared (the first, cold visit), then once more (the repeat
visit). Measured through the DevTools protocol: bytes over the wire (the sum of
``encodedDataLength`` of every response, headers included, as compressed on the wire; a file the
cache answers costs 0), the number of requests that cost bytes, and the time from navigation start
to DOMContentLoaded and to the load event (the Navigation Timing entry).

The network is Chrome DevTools' "Slow 3G" preset (labelled "3G" since May 2024), sent with
``Network.emulateNetworkConditions``. Its numbers, from ChromeDevTools/devtools-frontend,
front_end/core/sdk/NetworkManager.ts (``Slow3GConditions``): download and upload
``500 * 1000 / 8 * .8`` = 50,000 bytes/s (400 kbit/s), latency ``400 * 5`` = 2,000 ms (a 400 ms RTT
times 5, the factor DevTools applies to approximate a real network's round trips). ``--latency-ms
400`` measures with the bare 400 ms RTT instead.

A server given by URL must hold the demo seed (``egocrowd demo --no-serve``): the script signs the
demo worker's consent and claims a slot through the API when the worker holds none. Without --url,
it seeds a temporary demo itself and serves it from this checkout as configured by default (and,
with --compare-off, a second time with EGOCROWD_COMPRESS_RESPONSES=false and
EGOCROWD_CACHE_STATIC=false, to show what compression and caching save).

The targets are budgets over what was measured (>= 1: within budget), per language: the capture
page's first visit within 200 KB, every page's first visit within 150 KB otherwise, and each page
usable (DOMContentLoaded) within 10 s on a cold cache. docs/low-bandwidth.md has the numbers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
from _common import target  # benchmarks/_common.py: the one format of target lines

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.support.browser import CHROMIUM, LAUNCH_ARGS, PHONE  # noqa: E402
from tests.support.servers import ServerProcess  # noqa: E402

SLOW_3G = {"offline": False, "latency": 400 * 5, "downloadThroughput": 500 * 1000 / 8 * 0.8}
SLOW_3G["uploadThroughput"] = SLOW_3G["downloadThroughput"]
WORKER = ("worker@demo.egocrowd", "demo-worker-password")
LANGUAGES = ("en", "ar")
#: Budgets (first visit, cold cache): bytes of the capture page, bytes of any other page, seconds
#: to DOMContentLoaded of any page.
CAPTURE_BUDGET_KB = 200
PAGE_BUDGET_KB = 150
USABLE_BUDGET_S = 10


@dataclass
class Visit:
    bytes: int
    requests: int
    dom_ms: float
    load_ms: float


@dataclass
class PageResult:
    name: str
    language: str
    first: Visit
    repeat: Visit


def prepare(base: str) -> tuple[int, int]:
    """The demo worker holds an active slot (signing the consent first if needed). Returns that
    assignment's id and the id of a campaign of the demo lab."""
    with httpx.Client(base_url=base, timeout=60) as http:
        token = http.post("/api/v1/auth/token", json={"email": WORKER[0], "password": WORKER[1]})
        token.raise_for_status()
        auth = {"Authorization": f"Bearer {token.json()['token']}"}
        mine = http.get("/api/v1/assignments", headers=auth).json()["items"]
        active = [a for a in mine if a["status"] == "active"]
        campaigns = http.get("/api/v1/campaigns", headers=auth).json()["items"]
        if not active:
            for doc in http.get("/api/v1/consent-documents").json()["items"]:
                scopes = [s["id"] for s in doc["scopes"]]
                http.post("/api/v1/consents", json={"version": doc["version"], "scopes": scopes}, headers=auth)
            claimed = http.post(f"/api/v1/campaigns/{campaigns[0]['id']}/claim", headers=auth)
            claimed.raise_for_status()
            active = [claimed.json()]
        return active[0]["id"], campaigns[0]["id"]


def log_in(context, base: str, who: tuple[str, str], language: str) -> None:
    """Log in, then pick ``language`` with the switcher (it is remembered on the account)."""
    page = context.new_page()
    page.goto(base + "/login")
    page.fill("#email", who[0])
    page.fill("#password", who[1])
    page.locator("form:has(#password) button[type=submit]").click()
    page.wait_for_load_state()
    if "/login" in page.url:
        raise SystemExit(f"could not log in as {who[0]} at {base}")
    page.locator(".lang-switch summary").click()
    page.locator(f".lang-switch button[value={language}]").click()
    page.wait_for_load_state()
    if page.evaluate("document.documentElement.lang") != language:
        raise SystemExit(f"the language switcher did not switch to {language}")
    page.close()


def visit(page, cdp, url: str) -> Visit:
    sizes: dict[str, float] = {}

    def finished(event: dict) -> None:
        sizes[event["requestId"]] = event["encodedDataLength"]

    cdp.on("Network.loadingFinished", finished)
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")  # the favicon is asked for after the load event
    cdp.remove_listener("Network.loadingFinished", finished)
    nav = page.evaluate("JSON.parse(JSON.stringify(performance.getEntriesByType('navigation')[0]))")
    return Visit(
        bytes=int(sum(sizes.values())),
        requests=sum(1 for n in sizes.values() if n > 0),
        dom_ms=nav["domContentLoadedEventEnd"],
        load_ms=nav["loadEventEnd"],
    )


def measure(base: str, latency_ms: float) -> list[PageResult]:
    from playwright.sync_api import sync_playwright

    assignment, campaign = prepare(base)
    pages = [
        ("tasks", "/campaigns"),
        ("campaign", f"/campaigns/{campaign}"),
        ("capture", f"/assignments/{assignment}/capture"),
        ("clips", "/clips"),
        ("earnings", "/earnings"),
    ]
    network = {**SLOW_3G, "latency": latency_ms}
    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        for language in LANGUAGES:
            for name, path in pages:
                context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
                log_in(context, base, WORKER, language)
                page = context.new_page()
                cdp = context.new_cdp_session(page)
                cdp.send("Network.enable")
                cdp.send("Network.clearBrowserCache")
                cdp.send("Network.emulateNetworkConditions", network)
                first = visit(page, cdp, base + path)
                repeat = visit(page, cdp, base + path)
                results.append(PageResult(name, language, first, repeat))
                context.close()
        browser.close()
    return results


def serve_demo(data: Path, name: str, env_extra: dict[str, str]) -> ServerProcess:
    env = {**os.environ, "EGOCROWD_DATA_DIR": str(data), "EGOCROWD_RUN_PIPELINE_IN_SERVER": "false", **env_extra}
    for k in ("EGOCROWD_DATABASE_URL", "EGOCROWD_CONFIG"):
        env.pop(k, None)
    if not (data / "egocrowd.db").exists():
        subprocess.run([sys.executable, "-m", "egocrowd.cli", "demo", "--no-serve"], env=env, check=True, timeout=300)
    srv = ServerProcess("egocrowd.web.app:create_app", workdir=data / name, env=env)
    return srv.start(timeout=120)


def table(label: str, results: list[PageResult]) -> None:
    print(f"\n{label}")
    print(
        f"{'page':<10} {'lang':<4} {'first KB':>9} {'req':>4} {'DCL s':>6} {'load s':>7}"
        f" {'repeat KB':>10} {'req':>4} {'DCL s':>6} {'load s':>7}"
    )
    for r in results:
        f, s = r.first, r.repeat
        print(
            f"{r.name:<10} {r.language:<4} {f.bytes / 1000:>9.1f} {f.requests:>4} {f.dom_ms / 1000:>6.1f} {f.load_ms / 1000:>7.1f}"
            f" {s.bytes / 1000:>10.1f} {s.requests:>4} {s.dom_ms / 1000:>6.1f} {s.load_ms / 1000:>7.1f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="a running demo-seeded server to measure (default: served from this checkout)")
    ap.add_argument("--compare-off", action="store_true", help="also measure with compression and caching off")
    ap.add_argument(
        "--latency-ms", type=float, default=SLOW_3G["latency"], help="latency (default: 2000, DevTools' Slow 3G)"
    )
    args = ap.parse_args()

    off: list[PageResult] = []
    with tempfile.TemporaryDirectory(prefix="egocrowd-page-weight-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()

        def measure_served(name: str, env_extra: dict[str, str]) -> list[PageResult]:
            srv = serve_demo(data, name, env_extra)
            try:
                return measure(srv.base, args.latency_ms)
            finally:
                srv.stop()

        if args.url:
            results = measure(args.url, args.latency_ms)
        else:
            results = measure_served("on", {})
            if args.compare_off:
                off = measure_served("off", {"EGOCROWD_COMPRESS_RESPONSES": "false", "EGOCROWD_CACHE_STATIC": "false"})

    down = SLOW_3G["downloadThroughput"]
    print(f"Slow 3G: {down:.0f} bytes/s ({down * 8 / 1000:.0f} kbit/s) each way, {args.latency_ms:.0f} ms latency")
    table(f"{args.url or 'this checkout, as configured by default'}: first visit (cold cache), then repeat", results)
    if off:
        table("this checkout, compression and static caching off", off)
    print()
    for language in LANGUAGES:
        mine = [r for r in results if r.language == language]
        capture = next(r for r in mine if r.name == "capture")
        others = [r for r in mine if r.name != "capture"]
        heaviest = max(r.first.bytes for r in others)
        slowest = max(r.first.dom_ms for r in mine)
        target(
            f"capture_page_first_visit_kb_budget_over_actual_{language}",
            CAPTURE_BUDGET_KB * 1000 / capture.first.bytes,
            1,
        )
        target(f"heaviest_other_page_first_visit_kb_budget_over_actual_{language}", PAGE_BUDGET_KB * 1000 / heaviest, 1)
        target(f"slowest_page_dom_content_loaded_budget_over_actual_{language}", USABLE_BUDGET_S * 1000 / slowest, 1)


if __name__ == "__main__":
    main()
