"""Pages: long sessions logged on the phone (#19, egocrowd.evaluations.sessions). The worker's page
keeps everything tapped in the browser's storage and uploads each finished log with tus when the
network allows; a service worker of its own keeps the page itself for a reload without network."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from egocrowd import consent, evaluations
from egocrowd.accounts import policy
from egocrowd.web.pages.render import page_unit, render
from egocrowd.web.routers.api import Id

router = APIRouter(include_in_schema=False)

_WORKER_JS = Path(__file__).resolve().parents[1] / "static" / "field_session_sw.js"
#: pseudonymous household labels the page offers (never names)
PEOPLE = tuple(f"P{i}" for i in range(1, 7))


@router.get("/campaigns/{campaign_id}/session/", response_class=HTMLResponse)
def session_page(request: Request, campaign_id: Id):
    """The worker's phone page: start a session, tap what happens, end it; uploads wait for a network."""
    with page_unit(request) as ctx:
        user = ctx.require_user()
        policy.require(user, "evaluation.take")
        ev = evaluations.of_campaign(ctx.session, user, campaign_id)
        c = ev.campaign
        return render(
            request,
            "field_session.html",
            user,
            c=c,
            ev=ev,
            robots=[p.name for p in evaluations.policies(ctx.session, ev, live_only=True)],
            people=PEOPLE,
            has_consent=consent.active_consent(ctx.session, user, c.consent_version) is not None,
        )


@router.get("/campaigns/{campaign_id}/session/sw.js")
def session_service_worker(campaign_id: Id) -> Response:
    """The page's service worker, served under the page's path so its scope is that page alone."""
    return Response(
        _WORKER_JS.read_bytes(),
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache"},  # a new version reaches phones at their next visit
    )
