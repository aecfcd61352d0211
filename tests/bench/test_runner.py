"""The runner: deterministic logs, parallel == serial, resume after SIGKILL, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from egocrowd.bench import schema as S
from egocrowd.bench.cli import bench
from egocrowd.bench.protocols import load_protocol
from egocrowd.bench.runner import episode_path, episode_seed, protocols_command, run
from egocrowd.errors import Conflict

SHORT = load_protocol("family-evening").with_overrides(steps=300, chores=4)


def test_same_seed_identical_logs_and_valid_schema(tmp_path: Path) -> None:
    a = run(SHORT, "canned", episodes=3, seed=1, out=tmp_path / "a").log
    b = run(SHORT, "canned", episodes=3, seed=1, out=tmp_path / "b").log
    c = run(SHORT, "canned", episodes=3, seed=2, out=tmp_path / "c").log
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    sessions = list(S.iter_sessions(a))
    assert len(sessions) == 3
    seen = list(S.read_log(a))  # every line parses strictly with the shared schema
    assert sum(isinstance(o, S.Session) for o in seen) == 3
    first = seen[0]
    assert isinstance(first, S.Session) and first.policy == "canned" and first.policy_version == "1.0"
    assert first.meta["env_version"] and first.meta["protocol_sha256"] == SHORT.digest()
    assert first.seed == episode_seed(1, 0) and first.format_version == S.SCHEMA_VERSION
    manifest = json.loads((tmp_path / "a" / "run.json").read_text())
    assert manifest["format_version"] == 1 and manifest["protocol_sha256"] == SHORT.digest()


def test_parallel_equals_serial(tmp_path: Path) -> None:
    serial = run(SHORT, "oracle", episodes=4, seed=9, out=tmp_path / "s", workers=1).log
    parallel = run(SHORT, "oracle", episodes=4, seed=9, out=tmp_path / "p", workers=2).log
    assert serial.read_bytes() == parallel.read_bytes()


def test_episodes_on_a_dask_cluster_equal_serial(tmp_path: Path) -> None:
    serial = run(SHORT, "oracle", episodes=3, seed=5, out=tmp_path / "s", workers=1).log
    on_cluster = run(SHORT, "oracle", episodes=3, seed=5, out=tmp_path / "d", cluster_url="dask+local://2")
    assert len(on_cluster.ran) == 3 and serial.read_bytes() == on_cluster.log.read_bytes()


def test_resume_refuses_a_different_run(tmp_path: Path) -> None:
    run(SHORT, "random", episodes=1, seed=1, out=tmp_path)
    with pytest.raises(Conflict) as exc:
        run(SHORT, "random", episodes=1, seed=2, out=tmp_path)
    assert exc.value.code == "bench.resume_mismatch"
    # asking for more episodes of the same run is a resume, not a different run
    res = run(SHORT, "random", episodes=2, seed=1, out=tmp_path)
    assert res.skipped == 1 and len(res.ran) == 1


_CHILD = """
import sys
from egocrowd.bench.protocols import load_protocol
from egocrowd.bench.runner import run
p = load_protocol("one-week").with_overrides(steps=int(sys.argv[2]), chores=8)
run(p, "oracle", episodes=int(sys.argv[3]), seed=4, out=sys.argv[1], workers=1)
"""


def test_resume_after_sigkill_gives_the_same_logs(tmp_path: Path) -> None:
    steps, episodes = 1500, 8
    killed = tmp_path / "killed"
    # a fresh interpreter (its own hash seed): nothing may depend on set or hash order
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(killed), str(steps), str(episodes)])
    try:
        deadline = time.monotonic() + 60
        # kill it mid-run: after some episodes are done, while another is being written
        while time.monotonic() < deadline and not episode_path(killed, 1).exists():
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done_before = sum(episode_path(killed, i).exists() for i in range(episodes))
    assert 0 < done_before < episodes, "the kill must land mid-run for this test to mean anything"
    assert not (killed / "log.jsonl").exists()

    p = load_protocol("one-week").with_overrides(steps=steps, chores=8)
    resumed = run(p, "oracle", episodes=episodes, seed=4, out=killed)
    assert resumed.skipped == done_before and not list((killed / "episodes").glob("*.part"))
    clean = run(p, "oracle", episodes=episodes, seed=4, out=tmp_path / "clean")
    assert resumed.log.read_bytes() == clean.log.read_bytes()


def test_cli_run_and_protocols(tmp_path: Path) -> None:
    cli = CliRunner()  # through the `bench` group, as `egocrowd bench run` runs it (errors become one line there)
    args = ["run", "weekday-kitchen", "--policy", "canned", "-n", "2", "-s", "3", "--steps", "200", "--chores", "2"]
    args += ["-j", "1", "-o", str(tmp_path / "r"), "--no-progress"]
    res = cli.invoke(bench, args)
    assert res.exit_code == 0, res.output
    assert "2 episodes run" in res.output and "plain" in res.output
    again = cli.invoke(bench, [*args, "--no-summary"])
    assert again.exit_code == 0 and "0 episodes run, 2 already done" in again.output
    bad = cli.invoke(bench, ["run", "weekday-kitchen", "--policy", "nope", "-o", str(tmp_path / "x"), "--no-progress"])
    assert bad.exit_code == 2 and "bench.unknown_policy" in bad.output  # a usage error: checked before running
    remote = cli.invoke(
        bench,
        ["run", "weekday-kitchen", "--policy", "http://127.0.0.1:9", "-o", str(tmp_path / "y"), "--no-progress"]
        + ["--no-summary"],
    )
    assert "bench.policy_unreachable" in remote.output  # URLs still pass the name check
    listing = cli.invoke(protocols_command, [])
    assert listing.exit_code == 0 and "one-week" in listing.output and "family-evening" in listing.output
