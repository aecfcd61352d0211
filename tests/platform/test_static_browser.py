"""/api/docs in a real browser with no way out to the internet: Swagger UI comes from our server."""

from __future__ import annotations

import pytest

from tests.support.browser import ARTIFACTS, PHONE

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("viewport", [PHONE, {"width": 1280, "height": 800}], ids=["phone", "desktop"])
def test_api_docs_work_offline(live, chromium, viewport):
    page = chromium().new_page(viewport=viewport)
    elsewhere: list[str] = []
    problems: list[str] = []

    def only_our_server(route):
        if route.request.url.startswith(live.base):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_our_server)
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(live.base + "/api/docs")
    page.locator(".opblock").first.wait_for(timeout=20_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"api-docs-{viewport['width']}.png"))

    # Swagger UI renders a long list of operations virtually (150 rows and more: only those near the
    # screen are in the page), so scroll down until the campaigns' operations come into view
    operations: list[str] = []
    for _ in range(200):
        operations = [op.replace("\u200b", "") for op in page.locator(".opblock-summary-path").all_inner_texts()]
        if "/api/v1/campaigns" in operations:
            break
        page.mouse.wheel(0, 600)
        page.wait_for_timeout(100)
    assert "/api/v1/campaigns" in operations
    assert page.get_by_role("heading", name="egocrowd").count() >= 1
    assert elsewhere == []  # nothing was even asked of another host
    assert problems == []  # no script refused by the Content-Security-Policy, no failed load
