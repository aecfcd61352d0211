"""axe-core on every page: each GET page route of the app (found in ``app.routes``, so pages added
later are checked too), as every role, on a 390×844 phone, must have no WCAG 2.1 A/AA violation.

Path parameters come from a small world seeded through the real API: a campaign, a claimed slot, the
consent version and the worker's signature. A new parameter name fails the test with a message
saying where to add a value for it.
"""

from __future__ import annotations

import re

import pytest
from fastapi.routing import iter_route_contexts
from tusclient import client as tus

from egocrowd.db.models import Clip, DeidStatus, ReviewKind, User
from egocrowd.labels import review
from tests.platform.helpers import PASSWORD, make_user
from tests.support import axe
from tests.support.browser import ARTIFACTS, PHONE
from tests.support.deid import attach_derivative, make_video

pytestmark = pytest.mark.browser

ROLES = ("anonymous", "worker", "requester", "reviewer", "admin")
NOT_PAGES = ("/api/", "/static/", "/vendor/", "/favicon.ico")
#: GET routes that answer a file (the <video> tag's source) or a machine (probes, Prometheus), not a page
NOT_PAGE_ROUTES = {
    "/clips/{clip_id}/video",
    "/campaigns/{campaign_id}/session/sw.js",
    "/admin/payouts/{batch_id}/file",
    "/healthz",
    "/readyz",
    "/metrics",
    "/campaigns/{campaign_id}/evaluation/ranking",  # a fragment the campaign page fetches into itself
}

# TEMPORARY, for the lead to empty at merge: (route, axe rule) pairs found in templates that the
# accessibility work (part 6 of #14) may not edit. Each entry names its fix in the report of that
# work; once a template is fixed its entry goes, and this set must end up empty.
KNOWN_VIOLATIONS_TO_FIX: set[tuple[str, str]] = set()

# Pages no GET route names: the error page, and the confirmation a destructive form answers first
# ((role, page to start from, button to press)).
NOT_FOUND = "/no-such-page"
BEHIND_A_BUTTON = [("worker", "/assignments", "Give back")]


@pytest.fixture
def db_url(tmp_path, sqlite_template):
    """SQLite only: the pages are the same on both backends, and a browser run costs a minute."""
    import shutil

    path = tmp_path / "egocrowd.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


def page_routes(app) -> list[str]:
    """Every GET route that answers a page (not the API, not files)."""
    paths = {
        ctx.path
        for ctx in iter_route_contexts(app.routes)
        if ctx.path
        and "GET" in (ctx.methods or ())
        and not ctx.path.startswith(NOT_PAGES)
        and ctx.path not in NOT_PAGE_ROUTES
    }
    return sorted(paths)


def fill(path: str, values: dict[str, object]) -> str:
    def one(m: re.Match) -> str:
        name = m.group(1).split(":")[0]
        if name not in values:
            pytest.fail(f"{path}: no value for {{{name}}}; add one to the world in {__file__}")
        return str(values[name])

    return re.sub(r"\{([^}]+)\}", one, path)


def test_axe_reports_what_is_wrong(chromium):
    """The checker itself: a page with known faults is not passed."""
    page = chromium().new_page()
    page.set_content('<html><body><img src="x.png"><input type="text"><a href="/"></a></body></html>')
    found = {v["id"] for v in axe.check(page)}
    assert {"html-has-lang", "image-alt", "label", "link-name", "document-title", "region"} <= found
    assert "image-alt: Images must have alternative text" in axe.report(axe.check(page))


def test_page_routes_are_found(app):
    routes = page_routes(app)
    for expected in ("/", "/login", "/campaigns", "/campaigns/{campaign_id}", "/assignments/{assignment_id}/capture"):
        assert expected in routes
    assert not any(r.startswith("/api/") for r in routes)


def seed(world, db, tmp_path, base: str, blobs=None) -> dict[str, object]:
    """A value for every path parameter of the pages, made through the real API: two campaigns, a
    slot the worker holds, a clip uploaded on another slot (any bytes make a clip; QC comes later).
    With ``blobs``, the clip also gets a de-identified video waiting for review (its review page
    and video are then checked too)."""
    campaign = world.open_campaign()
    uploaded = world.claim(world.open_campaign(title="Open a jar")["id"])
    clip_file = tmp_path / "clip.mp4"
    clip_file.write_bytes(b"not really a video" * 100)
    uploader = tus.TusClient(base + "/api/v1/uploads/", headers=world.worker.headers).uploader(
        str(clip_file), metadata={"assignment": str(uploaded["id"])}
    )
    uploader.upload()
    clip = world.client.get("/api/v1/clips", headers=world.worker.headers).json()["items"][0]
    signature = world.client.get("/api/v1/consents", headers=world.worker.headers).json()["items"][0]
    with db.transaction(write=False) as s:
        org_id = s.get(User, world.lab.id).organization_id
    if blobs is not None:
        attach_derivative(db, blobs, clip["id"], make_video(tmp_path / "derived.mp4", seconds=2), DeidStatus.review)
    with db.transaction() as s:  # a review item (#10) that reviewers and the lab may decide
        item = review.open_item(s, s.get_one(Clip, clip["id"]), ReviewKind.acceptance, audience="both").id
    # releases (#12): a published release of the lab (its page: composition, changes, no files)
    from egocrowd.db.models import Release, ReleaseStatus

    with db.transaction() as s:
        release = Release(
            organization_id=org_id,
            name="seed-release",
            version=1,
            title="Seed release",
            licence={"name": "Research", "uses": ["training"]},
            status=ReleaseStatus.published,
            root_hash="0" * 64,
            manifest_sha256="0" * 64,
            stats={"clips": 0, "hours": 0.0, "countries": [], "labels": {"labels": {}}, "pay": []},
            changes={"added": [], "withdrawn": [], "removed": []},
        )
        s.add(release)
        s.flush()
        release_id = release.id
    # payouts (#11): the worker has a PayPal method and a batch pays them (its page: /admin/payouts/{id})
    with db.transaction() as s:
        batch_id = _payout_batch(s, world.worker.id, campaign["id"])
    return {
        "release_id": release_id,
        "batch_id": batch_id,
        "campaign_id": campaign["id"],
        "assignment_id": world.claim(campaign["id"])["id"],
        "version": campaign["consent_version"],
        "record_id": signature["id"],
        "clip_id": clip["id"],
        "user_id": world.worker.id,
        "org_id": org_id,
        # annotation pages (#10) with real tasks are checked in tests/e2e/test_annotate.py
        "task_id": 1,
        "item_id": item,
        "annotator_id": world.worker.id,  # labels: no answers yet, so the page says not found
        # training (#15): pages with real qualifications and attempts are checked in
        # tests/e2e/test_training.py; here their not-found answers are
        "attempt_id": 1,
        "slug": "no-such-qualification",
        # robot battles (#19): real battles and the lab's ranking are checked in tests/e2e/test_battles.py
        "battle_id": 1,
    }


def _payout_batch(s, worker_id: int, campaign_id: int) -> int:
    from egocrowd.db.models import Campaign
    from egocrowd.pay import ledger, payouts
    from egocrowd.pay.money import Money

    worker, campaign = s.get_one(User, worker_id), s.get_one(Campaign, campaign_id)
    money = Money(600, campaign.currency)
    ledger.post(
        s,
        ledger.TransactionKind.bonus,
        [
            ledger.Leg(ledger.campaign_account(s, campaign), -money),
            ledger.Leg(ledger.worker_account(s, worker, money.currency), money),
        ],
        idempotency_key="a11y:bonus",
        reason="a bonus to pay out",
        actor=None,
    )
    payouts.add_method(s, worker, provider="paypal", account_ref="worker@example.org", currency=money.currency)
    return payouts.create_batch(s, None, provider="paypal", currency=money.currency).id


def test_every_page_passes_axe_as_every_role(app, live, world, db, chromium, tmp_path):
    values = seed(world, db, tmp_path, live.base, app.state.blobs)
    people = {
        "worker": world.worker.email,
        "requester": world.lab.email,
        "reviewer": make_user(db, "reviewer").email,
        "admin": make_user(db, "admin").email,
    }
    urls = [(route, fill(route, values)) for route in [*page_routes(app), NOT_FOUND]]
    browser = chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    failures: list[str] = []
    for role in ROLES:
        context = browser.new_context(viewport=PHONE, base_url=live.base)
        page = context.new_page()
        page.set_default_timeout(20_000)
        if role != "anonymous":
            page.goto("/login")
            page.fill("#email", people[role])
            page.fill("#password", PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_load_state()
            assert "/login" not in page.url, f"{role} could not log in"
        failures += _visit_all(page, role, urls, live.base)
        context.close()
    assert not failures, "accessibility violations:\n" + "\n".join(failures)


def _visit_all(page, role: str, urls: list[tuple[str, str]], base: str) -> list[str]:
    failures: list[str] = []

    def check(route: str, name: str) -> None:
        found = [v for v in axe.check(page) if (route, v["id"]) not in KNOWN_VIOLATIONS_TO_FIX]
        slug = re.sub(r"\W+", "-", name).strip("-")
        page.screenshot(path=str(ARTIFACTS / f"a11y-{role}-{slug}.png"), full_page=True)
        if found:
            failures.append(axe.report(found, where=f"{route} as {role} ({page.url}): "))

    seen: set[str] = set()
    for route, url in urls:
        page.goto(url)
        landed = page.url.split("?")[0].removeprefix(base)
        if landed not in seen:  # e.g. every page that sends a visitor to /login: checked once
            seen.add(landed)
            check(route, landed if landed != "/" else "home")
    for who, start, button in BEHIND_A_BUTTON:
        if who == role:
            page.goto(start)
            page.get_by_role("button", name=button).first.click()
            page.wait_for_load_state()
            check(f"{start} → {button}", f"{start}-{button}")
    return failures
