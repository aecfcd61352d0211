"""What operators see (issue #20, operations): liveness and readiness, Prometheus metrics behind a
token, request ids in answers and logs, JSON logs."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from egocrowd.blobs import BlobStore
from egocrowd.clock import utcnow
from egocrowd.db.models import Clip, ClipStatus
from egocrowd.pipeline.executors import Abandoned, get_executor
from egocrowd.pipeline.runner import Runner, RunnerConfig, enqueue
from egocrowd.pipeline.stages import stage
from egocrowd.telemetry import configure_logging, reset_multiprocess_dir
from egocrowd.web import create_app
from tests.platform.helpers import API, assert_problem, claim

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


# --- what the platform's work moves ---------------------------------------------------------------
def _values(client) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape by (sample name, labels): counters and histograms to compare."""
    return {(x.name, frozenset(x.labels.items())): x.value for samples in _scrape(client).values() for x in samples}


def _moved(before: dict, after: dict) -> dict[tuple[str, frozenset], float]:
    """What changed between two scrapes of this process's counters (other tests ran before)."""
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def _key(name: str, **labels: str) -> tuple[str, frozenset]:
    return name, frozenset(labels.items())


REQ = {"min_duration_s": 3, "max_duration_s": 60, "min_width": 240, "min_height": 240, "min_fps": 24}


def test_an_upload_a_claim_and_a_pipeline_run_move_their_metrics(metered, app, live, world, db, qc_media):
    from tusclient import client as tus

    from tests.pipeline.test_clip_flow import drain

    before = _values(metered)
    campaign = world.open_campaign(requirements=REQ, target_clips=1)
    assignment = world.claim(campaign["id"])
    assert claim(metered, world.signed_worker(), campaign["id"]).status_code == 409  # the one slot is taken
    # an annotation claim refused: the worker is not qualified to annotate
    assert metered.post(f"{API}/annotation-tasks/claim", headers=world.worker.headers).status_code == 403
    uploader = tus.TusClient(live.base + "/api/v1/uploads/", headers=world.worker.headers).uploader(
        str(qc_media["good"]), chunk_size=64 * 1024, metadata={"assignment": str(assignment["id"])}
    )
    uploader.upload()
    ran = drain(app, db)
    moved = _moved(before, _values(metered))

    assert moved[_key("egocrowd_claims_total", kind="assignment", outcome="ok")] == 1
    assert moved[_key("egocrowd_claims_total", kind="assignment", outcome="assignment.no_slots")] == 1
    assert moved[_key("egocrowd_claims_total", kind="annotation", outcome="annotation.not_qualified")] == 1
    assert moved[_key("egocrowd_upload_bytes_total")] == qc_media["good"].stat().st_size
    assert moved[_key("egocrowd_uploads_finished_total", outcome="completed")] == 1
    stages = {
        dict(labels)["stage"]: n
        for (name, labels), n in moved.items()
        if name == "egocrowd_pipeline_stage_duration_seconds_count"
    }
    assert sum(stages.values()) == ran and stages["probe"] == stages["qc"] == 1  # every stage once, each ok
    assert {dict(labels)["outcome"] for (name, labels) in moved if "stage_duration" in name} == {"ok"}
    assert moved[_key("egocrowd_pipeline_stage_duration_seconds_sum", stage="qc", outcome="ok")] > 0
    # the queue: every registered stage and unfinished status is a series, zeros included; finished
    # jobs are counted by the duration histogram, not by a scan of the whole jobs table
    samples = _scrape(metered)
    depth = {(x.labels["stage"], x.labels["status"]): x.value for x in samples["egocrowd_pipeline_jobs"]}
    assert depth[("probe", "pending")] == depth[("probe", "running")] == 0
    assert {stage for stage, _ in depth} >= {"probe", "qc", "deidentify"}
    assert {status for _, status in depth} == {"pending", "running", "error"}
    assert len(depth) == 3 * len({stage for stage, _ in depth})
    assert {x.labels["stage"]: x.value for x in samples["egocrowd_pipeline_oldest_ready_seconds"]}["probe"] == 0


def test_a_refused_upload_counts_by_its_code(metered, tmp_path):
    from egocrowd.errors import Gone
    from egocrowd.uploads import UploadStore, complete_upload

    def refuse(info, path):
        raise Gone("The lease ran out before the upload finished.", code="assignment.lease_expired")

    store = UploadStore(tmp_path / "uploads")
    info = store.create(length=3, owner="1")
    store.data_path(info.id).write_bytes(b"abc")
    before = _values(metered)
    with pytest.raises(Gone):
        complete_upload(store, info, refuse)
    moved = _moved(before, _values(metered))
    refused = _key("egocrowd_uploads_finished_total", outcome="assignment.lease_expired")
    assert {k for k in moved if k[0] == refused[0]} == {refused} and moved[refused] == 1


# Stages registered for one test only (scratch_registries), their compute importable by a pool's process
_STARTED = "egocrowd-test-nap-started"


def _noop_prepare(session, clip, context):
    return {"mark": str(Path(context.settings.data_dir) / _STARTED)}


def _noop_apply(session, clip, result):
    return None


def _explode(inputs):
    raise RuntimeError("boom: the decoder fell over")


def _nap(inputs):
    Path(inputs["mark"]).touch()
    time.sleep(60)


def _clips(db, world, n: int) -> list[int]:
    campaign = world.open_campaign()
    with db.transaction() as s:
        made = [
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
            for i in range(n)
        ]
        s.add_all(made)
        s.flush()
        return [c.id for c in made]


def _arm(db, clip_id: int, stage_name: str, *, ready_for_s: float = 0.0) -> None:
    with db.transaction() as s:
        enqueue(s, s.get_one(Clip, clip_id), stage_name, now=utcnow() - timedelta(seconds=ready_for_s))


def test_stage_durations_count_failures_and_abandoned_stages(metered, world, db, settings, scratch_registries):
    stage("test_explode", "1", prepare=_noop_prepare, apply=_noop_apply)(_explode)
    stage("test_nap", "1", prepare=_noop_prepare, apply=_noop_apply)(_nap)
    exploding, napping = _clips(db, world, 2)
    _arm(db, exploding, "test_explode", ready_for_s=120)
    waiting = {x.labels["stage"]: x.value for x in _scrape(metered)["egocrowd_pipeline_oldest_ready_seconds"]}
    assert 120 <= waiting["test_explode"] < 600 and waiting["test_nap"] == 0
    blobs = BlobStore(settings.blobs_path)
    before = _values(metered)
    Runner(db, blobs, get_executor("inline"), RunnerConfig(max_attempts=1), settings=settings).run_once()

    # a stage cut short: the worker stops (executor shut down) while it runs in a pool's process
    _arm(db, napping, "test_nap")
    runner = Runner(db, blobs, get_executor("process", max_workers=1), settings=settings)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            runner.run_once()
        except BaseException as exc:  # noqa: BLE001 - Abandoned is what we wait for
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    mark = Path(settings.data_dir) / _STARTED
    deadline = time.monotonic() + 60
    while not mark.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    runner.executor.shutdown(wait=False)
    thread.join(30)
    assert [type(x) for x in outcome] == [Abandoned]

    moved = _moved(before, _values(metered))
    count = "egocrowd_pipeline_stage_duration_seconds_count"
    assert moved[_key(count, stage="test_explode", outcome="failed")] == 1
    assert moved[_key(count, stage="test_nap", outcome="abandoned")] == 1
    assert {k for k in moved if k[0] == count} == {
        _key(count, stage="test_explode", outcome="failed"),
        _key(count, stage="test_nap", outcome="abandoned"),
    }


def test_several_server_processes_report_together(metered, tmp_path, monkeypatch):
    """``serve --workers 2``: each process writes its samples to PROMETHEUS_MULTIPROC_DIR, and the one
    answering the scrape reports their sums."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    work = (
        "from egocrowd import telemetry as t\n"
        "t.CLAIMS.labels(kind='assignment', outcome='ok').inc()\n"
        "t.UPLOAD_BYTES.inc(1000)\n"
        "t.UPLOADS_FINISHED.labels('completed').inc()\n"
        "t.STAGE_SECONDS.labels('qc', 'ok').observe(3.0)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared), "PYTHONPATH": os.pathsep.join(sys.path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", work], env=env, check=True, timeout=60)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    got = _values(metered)  # this process's own samples are not in the directory: only the two others'
    assert got[_key("egocrowd_claims_total", kind="assignment", outcome="ok")] == 2
    assert got[_key("egocrowd_upload_bytes_total")] == 2000
    assert got[_key("egocrowd_uploads_finished_total", outcome="completed")] == 2
    assert got[_key("egocrowd_pipeline_stage_duration_seconds_count", stage="qc", outcome="ok")] == 2
    assert got[_key("egocrowd_pipeline_stage_duration_seconds_sum", stage="qc", outcome="ok")] == 6.0
    assert got[_key("egocrowd_pipeline_stage_duration_seconds_bucket", stage="qc", outcome="ok", le="5.0")] == 2

    # `serve` empties the directory before its processes start: the last run's samples are not
    # counted again (telemetry.reset_multiprocess_dir, called by the cli before uvicorn)
    (shared / "notes.txt").write_text("not ours")  # only the client library's files go
    reset_multiprocess_dir()
    assert sorted(p.name for p in shared.iterdir()) == ["notes.txt"]
    assert _key("egocrowd_claims_total", kind="assignment", outcome="ok") not in _values(metered)
