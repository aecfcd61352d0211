"""What operators see (issue #20, operations): liveness and readiness, Prometheus metrics behind a
token, request ids in answers and logs, JSON logs."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from egocrowd.db.models import Clip, ClipStatus
from egocrowd.pipeline.runner import enqueue
from egocrowd.telemetry import configure_logging
from egocrowd.web import create_app
from tests.platform.helpers import API, assert_problem

TOKEN = "prometheus-scrape-token-0123456789"


def test_liveness_and_readiness(client, app):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json() == {
        "status": "ok",
        "checks": {"database": "ok", "blobs": "ok", "uploads": "ok"},
    }


def test_not_ready_says_which_check_failed(client, app, db):
    with db.transaction() as s:
        head = s.scalar(sa.text("SELECT version_num FROM alembic_version"))
        s.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "unavailable"
        assert r.json()["checks"]["database"] == f"schema at 0001, this code expects {head}"
    finally:
        with db.transaction() as s:
            s.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    shutil.rmtree(app.state.blobs.root)  # the blob store's disk went away
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["blobs"].endswith("is not writable")
    assert r.json()["checks"]["database"] == "ok"
    assert client.get("/healthz").status_code == 200  # alive all the same: do not restart it for this


@pytest.fixture
def metered(settings, db):
    with TestClient(create_app(settings.model_copy(update={"metrics_token": TOKEN}), db)) as c:
        yield c


def _scrape(client) -> dict[str, list]:
    r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=")
    return {f.name: f.samples for f in text_string_to_metric_families(r.text)}


def test_metrics_are_off_without_a_token_and_need_it(client, metered):
    assert_problem(client.get("/metrics"), 404, "http.not_found")
    assert_problem(metered.get("/metrics"), 401, "auth.required")
    r = metered.get("/metrics", headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"})
    assert_problem(r, 401, "auth.required")


def test_metrics_count_requests_by_route_and_jobs_by_stage(metered, world, db):
    campaign = world.open_campaign()
    for _ in range(3):
        assert metered.get(f"{API}/campaigns/{campaign['id']}", headers=world.lab.headers).status_code == 200
    with db.transaction() as s:
        clips = [
            Clip(
                campaign_id=campaign["id"],
                worker_id=world.worker.id,
                source_ref=f"test:{i}",
                sha256=f"{i:064x}",
                size=1,
                original_name="a.mp4",
                client_meta={},
                status=ClipStatus.processing,
            )
            for i in range(2)
        ]
        s.add_all(clips)
        s.flush()
        for clip in clips:
            enqueue(s, clip)
    samples = _scrape(metered)
    requests = {
        (x.labels["route"], x.labels["status"]): x.value
        for x in samples["egocrowd_http_request_duration_seconds"]
        if x.name.endswith("_count") and x.labels["method"] == "GET"
    }
    # route templates, never ids: the number of series stays bounded
    assert requests[("/api/v1/campaigns/{campaign_id}", "2xx")] >= 3
    assert not [route for route, _ in requests if re.search(r"/\d+(/|$)", route)]
    jobs = {(x.labels["stage"], x.labels["status"]): x.value for x in samples["egocrowd_pipeline_jobs"]}
    assert jobs[("probe", "pending")] == 2


def test_every_answer_has_a_request_id(client):
    r = client.get("/healthz")
    assert len(r.headers["x-request-id"]) == 32
    assert client.get("/healthz").headers["x-request-id"] != r.headers["x-request-id"]
    # a proxy's id is kept, so one request can be followed across hops
    assert client.get("/healthz", headers={"X-Request-ID": "lb-7f3a9c01"}).headers["x-request-id"] == "lb-7f3a9c01"
    for hostile in ("a b c d e f g h", "x" * 65, "short", "id\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"):
        got = client.get("/healthz", headers={"X-Request-ID": hostile.encode()})
        assert got.headers["x-request-id"] != hostile and len(got.headers["x-request-id"]) == 32


@pytest.fixture
def logs():
    """``logs(fmt)`` configures logging as `serve` does and returns the stream it writes to."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level

    def configure(fmt: str) -> io.StringIO:
        configure_logging(fmt, logging.INFO)
        stream = io.StringIO()
        root.handlers[0].setStream(stream)  # instead of stderr
        return stream

    yield configure
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_json_logs_carry_the_request_id(logs, client):
    stream = logs("json")
    rid = "lb-0123456789abcdef"
    client.get("/healthz?token=secret-do-not-log", headers={"X-Request-ID": rid})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [x for x in lines if x["logger"] == "egocrowd.access"]
    assert len(access) == 1
    (entry,) = access
    assert entry["request_id"] == rid and entry["level"] == "INFO" and "time" in entry
    assert entry["route"] == "/healthz" and entry["status"] == 200 and entry["method"] == "GET"
    assert entry["duration_ms"] >= 0 and entry["path"] == "/healthz"
    server_side = [x for x in lines if x["logger"].startswith(("egocrowd", "uvicorn"))]  # not the test's client
    assert "secret-do-not-log" not in json.dumps(server_side)  # queries may carry signed links' tokens


def test_text_logs_name_the_request_too(logs, client):
    stream = logs("text")
    client.get("/healthz", headers={"X-Request-ID": "lb-0123456789abcdef"})
    logging.getLogger("egocrowd.test").warning("outside any request")
    access, outside = stream.getvalue().splitlines()[-2:]
    assert "INFO egocrowd.access [lb-0123456789abcdef]: GET /healthz 200 " in access
    assert outside.endswith("WARNING egocrowd.test: outside any request")
