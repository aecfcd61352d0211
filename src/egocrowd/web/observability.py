"""What a load balancer, Prometheus and a log pipeline see of an app server (docs/operations.md):

- ``/healthz``: the process answers (liveness; touches nothing else, so a slow database never gets
  a healthy server restarted);
- ``/readyz``: it can do its work (readiness): the database answers at the schema this code expects,
  and the blob and upload stores are writable; 503 with the failing checks otherwise;
- ``/metrics``: Prometheus text format, for a scraper holding ``metrics_token`` (404 when unset:
  queue depths and traffic are nobody else's business); queue depths per stage are read from the
  database at scrape time, so every server reports the whole platform's queue;
- ``RequestContext``: every request gets an id (``X-Request-ID``, a proxy's kept), is timed into a
  histogram by route template, and logged once as ``egocrowd.access``."""

from __future__ import annotations

import hmac
import logging
import os
import time
from functools import cache

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from egocrowd import telemetry
from egocrowd.clock import utcnow
from egocrowd.db.engine import alembic_config
from egocrowd.db.models import JobStatus
from egocrowd.pipeline import jobs
from egocrowd.pipeline.stages import STAGES
from egocrowd.web.problems import problem

access_log = logging.getLogger("egocrowd.access")
router = APIRouter(tags=["meta"])


# --- request ids, timing, the access log ---------------------------------------------------------
class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        offered = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = telemetry.new_request_id(offered)
        # Not reset afterwards: each request runs in a task (and context) of its own, and the 500
        # handler, outside this middleware, still reads the id for the problem document.
        telemetry.request_id.set(rid)
        status = 500  # what a crash before the answer started amounts to
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or _mount_of(scope) or "unmatched"
            telemetry.HTTP_SECONDS.labels(scope["method"], route, f"{status // 100}xx").observe(seconds)
            # the path without its query: a query may carry a signed link's token
            access_log.info(
                "%s %s %s %.1f ms",
                scope["method"],
                scope["path"],
                status,
                seconds * 1000,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )


def _mount_of(scope: Scope) -> str | None:
    """The prefix of a mounted app (static files, tus) that matched, for its label."""
    root = scope.get("root_path") or ""
    return root or None


# --- health --------------------------------------------------------------------------------------
@router.get("/healthz", include_in_schema=False)
def healthz() -> dict:
    return {"status": "ok"}


@cache
def _schema_head(url: str) -> str | None:
    from alembic.script import ScriptDirectory  # once per process

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


@router.get("/readyz", include_in_schema=False)
def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    checks: dict[str, str] = {}
    try:
        with state.db.engine.connect() as conn:
            at = conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
        expected = _schema_head(state.db.url)
        checks["database"] = "ok" if at == expected else f"schema at {at}, this code expects {expected}"
    except sa.exc.SQLAlchemyError as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    checks["blobs"] = state.blobs.writable()
    checks["uploads"] = state.upload_store.writable()
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503
    )


# --- metrics -------------------------------------------------------------------------------------
@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    expected = request.app.state.settings.metrics_token
    if not expected:
        return problem(404, "http.not_found", "Metrics are off: set EGOCROWD_METRICS_TOKEN to turn them on.")
    offered = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(offered.encode(), expected.encode()):
        return problem(401, "auth.required", "Send the metrics token as a Bearer token.")
    return Response(_exposition(request.app.state.db), media_type=CONTENT_TYPE_LATEST)


def _exposition(db) -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # several server processes: gather all of them
        process = CollectorRegistry()
        MultiProcessCollector(process)
    else:
        process = REGISTRY
    now = CollectorRegistry()
    now.register(_QueueDepths(db))
    return generate_latest(process) + generate_latest(now)


class _QueueDepths:
    """Pipeline jobs per stage and state, from the database: the same answer from every server."""

    def __init__(self, db) -> None:
        self.db = db

    def collect(self):
        depth = GaugeMetricFamily(
            "egocrowd_pipeline_jobs", "Unfinished pipeline jobs by stage and status", labels=["stage", "status"]
        )
        waiting = GaugeMetricFamily(
            "egocrowd_pipeline_oldest_ready_seconds",
            "How long the oldest pending job of each stage has been ready to run (0: none waits)",
            labels=["stage"],
        )
        with self.db.transaction() as s:
            summary = jobs.queue_summary(s, statuses=jobs.UNFINISHED)
        # Every stage and status, zeros included: a series that vanishes when its queue empties
        # breaks rate() and alerts. This server's clock against run_after: an age, seconds of skew
        # do not matter, and it saves a query.
        now = utcnow()
        stages = sorted({*STAGES.names(), *(stage for stage, _ in summary)})
        for stage in stages:
            for status in jobs.UNFINISHED:
                depth.add_metric([stage, status.value], summary.get((stage, status.value), (0, now))[0])
            n, first = summary.get((stage, JobStatus.pending.value), (0, now))
            waiting.add_metric([stage], max((now - first).total_seconds(), 0.0) if n else 0.0)
        yield depth
        yield waiting
