"""Page weight and time to usable of the five busiest pages on a slow 3G phone, compression and
caching on versus off (or versus another server, e.g. an older checkout).

    .venv/bin/python benchmarks/page_weight.py                  # serves the demo twice: off, then on
    .venv/bin/python benchmarks/page_weight.py --before URL [--after URL]

Pages: the worker's task list (/campaigns), My work (/assignments), the capture page of a claimed
slot, /clips, and the lab's campaign page. Each is opened in Debian's chromium at 390×844 twice: a
first visit with an empty browser cache, then a repeat visit. Measured through the DevTools
protocol: bytes over the wire (the sum of ``encodedDataLength`` of every response, headers
included, as compressed on the wire; a file the cache answers costs 0), and the time from
navigation start to DOMContentLoaded and to the load event (the Navigation Timing entry).

The network is Chrome DevTools' "Slow 3G" preset (labelled "3G" since May 2024), sent with
``Network.emulateNetworkConditions``. Its numbers, from ChromeDevTools/devtools-frontend,
front_end/core/sdk/NetworkManager.ts (``Slow3GConditions``): download and upload
``500 * 1000 / 8 * .8`` = 50,000 bytes/s (~400 kbit/s), latency ``400 * 5`` = 2,000 ms (a 400 ms RTT
times 5, the factor DevTools applies to approximate a real network's round trips).

A server given by URL must hold the demo seed (``egocrowd demo --no-serve``): the script signs the
demo worker's consent and claims a slot through the API when the worker holds none. Without
--before, it seeds a temporary demo itself and serves it twice from this checkout: first with
EGOCROWD_COMPRESS_RESPONSES=false and EGOCROWD_CACHE_STATIC=false ("before"), then as configured
by default ("after"), so one run always yields the ratios side by side.
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
from _targets import target  # benchmarks/_targets.py: the one format of target lines

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.support.browser import CHROMIUM, LAUNCH_ARGS, PHONE  # noqa: E402
from tests.support.servers import ServerProcess  # noqa: E402

SLOW_3G = {"offline": False, "latency": 400 * 5, "downloadThroughput": 500 * 1000 / 8 * 0.8}
SLOW_3G["uploadThroughput"] = SLOW_3G["downloadThroughput"]
WORKER = ("worker@demo.egocrowd", "demo-worker-password")
LAB = ("lab@demo.egocrowd", "demo-lab-password")


@dataclass
class Visit:
    bytes: int
    requests: int
    dom_ms: float
    load_ms: float


@dataclass
class PageResult:
    name: str
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


def log_in(context, base: str, who: tuple[str, str]) -> None:
    page = context.new_page()
    page.goto(base + "/login")
    page.fill("#email", who[0])
    page.fill("#password", who[1])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    if "/login" in page.url:
        raise SystemExit(f"could not log in as {who[0]} at {base}")
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


def measure(base: str) -> list[PageResult]:
    from playwright.sync_api import sync_playwright

    assignment, campaign = prepare(base)
    pages = [
        ("worker: task list", WORKER, "/campaigns"),
        ("worker: my work", WORKER, "/assignments"),
        ("worker: capture", WORKER, f"/assignments/{assignment}/capture"),
        ("worker: clips", WORKER, "/clips"),
        ("lab: campaign", LAB, f"/campaigns/{campaign}"),
    ]
    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        for name, who, path in pages:
            context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
            log_in(context, base, who)
            page = context.new_page()
            cdp = context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send("Network.clearBrowserCache")
            cdp.send("Network.emulateNetworkConditions", SLOW_3G)
            first = visit(page, cdp, base + path)
            repeat = visit(page, cdp, base + path)
            results.append(PageResult(name, first, repeat))
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
        f"{'page':<20} {'first KB':>9} {'req':>4} {'DCL s':>6} {'load s':>7} {'repeat KB':>10} {'req':>4} {'load s':>7}"
    )
    for r in results:
        f, s = r.first, r.repeat
        print(
            f"{r.name:<20} {f.bytes / 1000:>9.1f} {f.requests:>4} {f.dom_ms / 1000:>6.1f} {f.load_ms / 1000:>7.1f}"
            f" {s.bytes / 1000:>10.1f} {s.requests:>4} {s.load_ms / 1000:>7.1f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", help="URL of a demo-seeded server to compare with (default: this one, off)")
    ap.add_argument("--after", help="URL of a demo-seeded server to measure (default: served from this checkout)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="egocrowd-page-weight-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()

        def measure_served(name: str, env_extra: dict[str, str]) -> list[PageResult]:
            srv = serve_demo(data, name, env_extra)
            try:
                return measure(srv.base)
            finally:
                srv.stop()

        if args.before:
            before = measure(args.before)
            before_label = f"before: {args.before}"
        else:
            before = measure_served("off", {"EGOCROWD_COMPRESS_RESPONSES": "false", "EGOCROWD_CACHE_STATIC": "false"})
            before_label = "before: this checkout, compression and static caching off"
        after = measure(args.after) if args.after else measure_served("on", {})

    print(f"Slow 3G: {SLOW_3G['downloadThroughput']:.0f} bytes/s each way, {SLOW_3G['latency']} ms latency")
    table(before_label, before)
    table(f"after: {args.after or 'this checkout, as configured by default'}", after)

    def ratio(pick) -> tuple[float, float, float]:
        b, a = sum(pick(r) for r in before), sum(pick(r) for r in after)
        return b, a, b / max(a, 1)

    first = ratio(lambda r: r.first.bytes)
    repeat = ratio(lambda r: r.repeat.bytes)
    first_load = ratio(lambda r: r.first.load_ms)
    repeat_load = ratio(lambda r: r.repeat.load_ms)
    print("\ntotals over the five pages, before -> after:")
    print(f"  bytes, first visit   {first[0] / 1000:7.1f} KB -> {first[1] / 1000:7.1f} KB")
    print(f"  bytes, repeat visit  {repeat[0] / 1000:7.1f} KB -> {repeat[1] / 1000:7.1f} KB")
    print(f"  load, first visit    {first_load[0] / 1000:7.1f} s  -> {first_load[1] / 1000:7.1f} s")
    print(f"  load, repeat visit   {repeat_load[0] / 1000:7.1f} s  -> {repeat_load[1] / 1000:7.1f} s")
    print("  (a first visit costs two 2 s round trips at least: the page, then its stylesheet)\n")
    target("first_visit_bytes_before_over_after", first[2], 1.5)
    target("repeat_visit_bytes_before_over_after", repeat[2], 1.5)
    target("slow3g_time_to_usable_first_visit_before_over_after", first_load[2], 1.2)
    target("slow3g_time_to_usable_repeat_visit_before_over_after", repeat_load[2], 1.5)


if __name__ == "__main__":
    main()
