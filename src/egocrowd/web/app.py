"""The FastAPI application factory."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from itsdangerous import URLSafeTimedSerializer

from egocrowd import __version__
from egocrowd.db import Database
from egocrowd.settings import Settings
from egocrowd.web import problems

HERE = Path(__file__).parent
log = logging.getLogger("egocrowd.web")


def vendor_dir() -> Path:
    """Front-end libraries installed by npm from package.json (never committed)."""
    explicit = os.environ.get("EGOCROWD_VENDOR_DIR")
    return Path(explicit) if explicit else HERE.parents[2] / "node_modules"


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or Settings()
    db = db or Database(settings.db_url)
    if settings.is_embedded:
        db.upgrade()  # the embedded default keeps itself up to date

    app = FastAPI(title="egocrowd", version=__version__,
                  summary="Crowdsourced egocentric demonstrations for robot learning",
                  docs_url="/api/docs", redoc_url=None, openapi_url="/api/v1/openapi.json")
    app.state.settings = settings
    app.state.db = db
    app.state.cookie_signer = URLSafeTimedSerializer(settings.resolved_secret_key(), salt="egocrowd-session")
    problems.install(app)

    from egocrowd.web.routers import api, pages

    app.include_router(api.router)
    pages.install(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    vendor = vendor_dir()
    if vendor.is_dir():
        app.mount("/vendor", StaticFiles(directory=vendor), name="vendor")
    else:
        log.warning("front-end libraries missing at %s: run `npm ci` (make does it)", vendor)
    _install_extensions(app)
    return app


def _install_extensions(app: FastAPI) -> None:
    """Optional capabilities mount themselves here when their package is present."""
    try:
        from egocrowd.uploads.web import install as install_uploads
    except ImportError:
        return
    install_uploads(app)
