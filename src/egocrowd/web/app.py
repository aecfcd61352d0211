"""The FastAPI application factory."""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from itsdangerous import URLSafeTimedSerializer
from starlette.types import ASGIApp

from egocrowd import __version__
from egocrowd.blobs import from_settings as blobs_from_settings
from egocrowd.clips.uploads import OpenUploadLimits
from egocrowd.db import Database, open_database
from egocrowd.settings import Settings
from egocrowd.uploads import open_upload_store, recover_completed
from egocrowd.web import assets, observability, problems, security
from egocrowd.web.letters import SendAfterResponse
from egocrowd.web.limits import BodyLimit
from egocrowd.web.locale import LocaleMiddleware
from egocrowd.web.locale import router as locale_router
from egocrowd.web.observability import RequestContext
from egocrowd.web.pages import accounts, assignments, campaigns, consent, lab, render
from egocrowd.web.pages import admin as admin_pages
from egocrowd.web.pages import annotate as annotate_pages
from egocrowd.web.pages import battles as battle_pages
from egocrowd.web.pages import catalog as catalog_pages
from egocrowd.web.pages import clips as clip_pages
from egocrowd.web.pages import field_sessions as field_session_pages
from egocrowd.web.pages import labels as label_pages
from egocrowd.web.pages import pay as pay_pages
from egocrowd.web.pages import payouts as payout_pages
from egocrowd.web.pages import rates as rate_pages
from egocrowd.web.pages import releases as release_pages
from egocrowd.web.pages import review as review_pages
from egocrowd.web.pages import training as training_pages
from egocrowd.web.pages import withdrawals as withdrawal_pages
from egocrowd.web.routers import account, api, reviews
from egocrowd.web.routers import admin as admin_api
from egocrowd.web.routers import annotations as annotations_api  # not `annotations`: the __future__ import's name
from egocrowd.web.routers import audit as audit_api
from egocrowd.web.routers import catalog as catalog_api
from egocrowd.web.routers import clips as clip_api
from egocrowd.web.routers import consent as consent_api
from egocrowd.web.routers import evaluations as evaluations_api
from egocrowd.web.routers import labels as labels_api
from egocrowd.web.routers import pay as pay_api
from egocrowd.web.routers import payouts as payouts_api
from egocrowd.web.routers import rates as rates_api
from egocrowd.web.routers import releases as releases_api
from egocrowd.web.routers import training as training_api
from egocrowd.web.routers import withdrawals as withdrawals_api
from egocrowd.web.routers.uploads import PlatformHooks
from egocrowd.worker import make_runner, run_pipeline, stop_pipeline

HERE = Path(__file__).parent
log = logging.getLogger("egocrowd.web")
#: Every route module's ``router``: the JSON API, then the pages (the tus endpoint is bound per app).
ROUTERS = [
    api.router,
    consent_api.router,
    account.router,
    clip_api.router,
    admin_api.router,
    audit_api.router,
    audit_api.credentials_router,
    reviews.router,
    annotations_api.router,
    evaluations_api.router,
    labels_api.router,
    pay_api.router,
    rates_api.router,
    payouts_api.router,
    releases_api.router,
    catalog_api.router,
    withdrawals_api.router,
    training_api.router,
    accounts.router,
    campaigns.router,
    consent.router,
    assignments.router,
    clip_pages.router,
    field_session_pages.router,
    admin_pages.router,
    lab.router,
    review_pages.router,
    annotate_pages.router,
    label_pages.router,
    pay_pages.router,
    rate_pages.router,
    payout_pages.router,
    release_pages.router,
    catalog_pages.router,
    withdrawal_pages.router,
    training_pages.router,
    battle_pages.router,
    locale_router,
]


class _App(FastAPI):
    """The app whose outermost layer adds the security headers: a 500 is answered by Starlette's
    ServerErrorMiddleware, outside every middleware added with ``add_middleware``, and must carry
    them too."""

    def build_middleware_stack(self) -> ASGIApp:
        return security.SecurityHeaders(super().build_middleware_stack())


def vendor_dir(settings: Settings) -> Path:
    """Front-end libraries installed by npm from package.json (never committed)."""
    return settings.vendor_dir or HERE.parents[2] / "node_modules"


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or Settings()
    if db is None:
        db = open_database(settings)  # the embedded default keeps itself up to date
    elif settings.is_embedded:
        db.upgrade()

    blobs = blobs_from_settings(settings)
    upload_store = open_upload_store(settings, db.engine, blobs)
    hooks = PlatformHooks(
        db,
        blobs,
        upload_store,
        OpenUploadLimits(
            per_assignment=settings.max_open_uploads_per_assignment, per_worker=settings.max_open_uploads_per_worker
        ),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Request threads (sync handlers run in anyio's pool, 40 by default), as many as the pool's
        # connections. Under a launch's load (#17) 40 threads a process on 2 cores only queued on
        # the GIL and on the audit chain's lock, holding 80 connections of PostgreSQL's default 100
        # for two processes; 16 answered more claims a second, with 32.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        await recover_completed(upload_store, hooks.on_complete)  # finish uploads a crash interrupted
        stop = threading.Event()
        runner = thread = None
        if settings.run_pipeline_in_server:
            runner = make_runner(settings, db, blobs)
            thread = threading.Thread(
                target=run_pipeline,
                args=(db, blobs, upload_store, runner, stop),
                name="egocrowd-pipeline",
                daemon=True,
            )
            thread.start()
        yield
        if runner is not None and thread is not None:
            stop_pipeline(runner, thread, stop)
        upload_store.close()

    app = _App(
        title="egocrowd",
        version=__version__,
        lifespan=lifespan,
        summary="Crowdsourced egocentric demonstrations for robot learning",
        docs_url=None,  # served below, from npm's swagger-ui-dist instead of a CDN
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.settings = settings
    app.state.db = db
    app.state.blobs = blobs
    app.state.upload_store = upload_store
    app.state.cookie_signer = URLSafeTimedSerializer(settings.resolved_secret_key(), salt="egocrowd-session")
    problems.install(app)
    render.templates.env.globals["asset"] = assets.asset  # {{ asset('/static/app.css') }}: the hashed URL
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_kb * 1024)
    app.add_middleware(SendAfterResponse, settings=settings)  # mail leaves after the answer
    app.add_middleware(LocaleMiddleware)  # error pages speak the visitor's language too
    app.add_middleware(RequestContext)  # outermost: an id, a time and a log line for everything

    for router in ROUTERS:
        app.include_router(router)
    app.include_router(observability.router)
    clip_api.install(app, upload_store, hooks)
    app.add_api_route("/api/docs", _api_docs, include_in_schema=False)
    vendor = vendor_dir(settings)
    if not vendor.is_dir():
        log.warning("front-end libraries missing at %s: run `npm ci` (make does it)", vendor)
    assets.install(app, HERE / "static", vendor, security.VENDOR_FILES, settings)
    return app


def _api_docs(request: Request) -> HTMLResponse:
    """Swagger UI, from npm (works offline), started by a script file of ours (the CSP allows no inline script)."""
    return render.templates.TemplateResponse(request, "api_docs.html", {"openapi_url": request.app.openapi_url})
