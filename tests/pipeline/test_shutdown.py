"""SIGTERM stops `egocrowd serve` and `egocrowd worker` within seconds, with no process left behind.

Each pipeline process kept a media sandbox pool (pebble, ``media.bounded``) that nothing stopped:
its sandbox processes are not daemons, so the executor's worker process, at its end, waited for
them forever (``multiprocessing``'s exit joins such children); the server then sat 30 s in
"Waiting for application shutdown" and left the worker and its sandboxes running, orphaned. A
stage in flight is abandoned: its lease runs out and another run takes it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from egocrowd.blobs import BlobStore
from egocrowd.db.models import Job, JobStatus
from egocrowd.media.bounded import call_bounded
from egocrowd.pipeline.executors import get_executor
from egocrowd.pipeline.runner import enqueue

ROOT = Path(__file__).resolve().parents[2]
STAGE = "test_sleep"  # tests/support/slow_stage.py, registered in the child process only


def _descendants(pid: int) -> dict[int, str]:
    """pid -> start time (to tell a reused pid) of every live process below ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        starts[int(entry)] = fields[19]
    out: dict[int, str] = {}
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out[p] = starts[p]
        todo += children.get(p, [])
    return out


def _alive(pid: int, start: str) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == start and fields[0] != "Z"  # a zombie has ended


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return "?"


@pytest.fixture
def sleeping_job(world, db, settings, tmp_path):
    """A clip whose only job is the never-ending ``test_sleep`` stage."""
    if not db.is_sqlite:  # ~10 s a test, and nothing here depends on the database
        pytest.skip("runs on SQLite only")
    campaign = world.open_campaign()
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"bytes the sleeping stage never reads")
    clip = world.upload_clip(BlobStore(settings.blobs_path), campaign["id"], raw, "test:shutdown")
    with db.transaction() as s:
        s.execute(sa.delete(Job).where(Job.clip_id == clip.id))
        enqueue(s, s.get_one(type(clip), clip.id), STAGE)
    return clip.id


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], db_url: str, settings, marker: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "EGOCROWD_DATABASE_URL": db_url,
        "EGOCROWD_DATA_DIR": str(settings.data_dir),
        "EGOCROWD_SECRET_KEY": "k" * 40,
        "EGOCROWD_PIPELINE_EXECUTOR": "process",
        "EGOCROWD_PIPELINE_WORKERS": "1",
        "EGOCROWD_TEST_MARKER": str(marker),
    }
    code = f"import tests.support.slow_stage; from egocrowd.cli import main; main({args!r})"
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _stop_and_check(proc: subprocess.Popen, marker: Path, db, job_clip: int) -> None:
    deadline = time.monotonic() + 90  # a cold start of the server and a stage on a busy machine
    while not marker.exists():  # the stage runs, down in its media sandbox
        assert proc.poll() is None, f"the process died (exit {proc.returncode})"
        assert time.monotonic() < deadline, "the stage never started"
        time.sleep(0.1)
    tree = _descendants(proc.pid)
    assert int(marker.read_text()) in tree  # the sandbox is a grandchild: executor worker, then sandbox
    assert len(tree) >= 2

    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        left = _descendants(proc.pid)
        proc.kill()
        proc.wait()
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        pytest.fail(f"still running 10 s after SIGTERM, with these below it: {[_cmdline(p) for p in left]}")
    took = time.monotonic() - started
    # multiprocessing's resource tracker ends by itself once the last process holding its pipe
    # has gone: a moment after the others.
    settle = time.monotonic() + 2
    while any(_alive(pid, start) for pid, start in tree.items()) and time.monotonic() < settle:
        time.sleep(0.05)
    left = {pid: _cmdline(pid) for pid, start in tree.items() if _alive(pid, start)}
    for pid in left:  # never leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left running after the exit: {left}"
    assert rc in (0, -signal.SIGTERM)  # uvicorn, done, raises the signal it caught again
    assert took < 5, took
    print(f"stopped {took:.2f} s after SIGTERM")
    with db.transaction() as s:  # abandoned, not failed: its lease runs out and another run takes it
        job = s.scalar(sa.select(Job).where(Job.clip_id == job_clip))
        assert job.status is JobStatus.running and job.last_error is None


def test_sigterm_stops_the_server_and_its_pipeline_processes(sleeping_job, db, db_url, settings, tmp_path):
    marker = tmp_path / "in-flight"
    proc = _start(["serve", "--port", str(_free_port())], db_url, settings, marker)
    _stop_and_check(proc, marker, db, sleeping_job)


def test_sigterm_stops_the_worker_and_its_pipeline_processes(sleeping_job, db, db_url, settings, tmp_path):
    marker = tmp_path / "in-flight"
    proc = _start(["worker"], db_url, settings, marker)
    _stop_and_check(proc, marker, db, sleeping_job)


def _sandbox_pid() -> int:
    return os.getpid()


def _pids_below() -> tuple[int, int]:
    """Runs in an executor worker: (its pid, its sandbox's pid)."""
    return os.getpid(), call_bounded(_sandbox_pid)


def test_an_executor_whose_workers_used_the_sandbox_shuts_down():
    """The root of the hang, without a server: ``shutdown()`` waited forever for a worker process
    that waited forever for its sandbox."""
    import threading

    ex = get_executor("process", max_workers=1)
    worker, sandbox = ex.submit(_pids_below).result(timeout=60)
    tree = _descendants(os.getpid())
    assert {worker, sandbox} <= set(tree)
    stopping = threading.Thread(target=ex.shutdown, daemon=True)
    stopping.start()
    stopping.join(10)
    left = [pid for pid in (worker, sandbox) if _alive(pid, tree[pid])]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not stopping.is_alive() and not left
