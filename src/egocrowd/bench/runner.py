"""Run a policy on a protocol for N episodes and write logs in the shared schema; resumable.

Layout of a run directory::

    run.json                 manifest (format_version, protocol digest, policy, env, seed, episodes)
    protocol.json            the exact protocol that ran (after overrides)
    episodes/ep-00000.jsonl  one session per episode, written to ``.part`` then renamed when done
    log.jsonl                all episodes in index order, written once every episode is done

Determinism: episode ``i`` of a run with seed ``S`` uses its own seed derived from ``(S, i)``, so
its log does not depend on which worker ran it or in which order; logs carry the simulated clock,
never the wall clock. Resuming: a finished episode file is never rewritten; a half-written
``.part`` file is thrown away and that episode runs again from its start. So a run killed at any
moment and started again ends with byte-identical logs.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np

from egocrowd.bench import schema as S
from egocrowd.bench.policies import is_remote, make_policy
from egocrowd.bench.protocols import Protocol, list_protocols, load_protocol
from egocrowd.bench.sim.env import ENV_VERSION, HouseholdEnv
from egocrowd.cli_types import RegistryChoice
from egocrowd.errors import Conflict, InvalidInput

RUN_FORMAT_VERSION = 1
RUN_FORMAT = "egocrowd.bench.run"


def episode_seed(seed: int, index: int) -> int:
    """Independent, order-free seed for episode ``index`` of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def episode_path(out: Path, index: int) -> Path:
    return out / "episodes" / f"ep-{index:05d}.jsonl"


@dataclass(frozen=True)
class EpisodeResult:
    index: int
    steps: int
    subtasks: int
    successes: int
    seconds: float  # wall clock (reported, never logged)


def run_episode(
    protocol: Protocol, policy_spec: str, seed: int, index: int, out: Path, policy_kwargs: dict[str, Any] | None = None
) -> EpisodeResult:
    """Play one session and write its log atomically (``.part`` then rename)."""
    t0 = time.perf_counter()
    ep_seed = episode_seed(seed, index)
    env = HouseholdEnv(protocol)
    obs, info = env.reset(seed=ep_seed)
    policy = make_policy(policy_spec, **(policy_kwargs or {}))
    try:
        policy.reset(obs, seed=ep_seed)
        name, version = policy.label
        header = env.session_header(
            policy=name,
            policy_version=version,
            session_id=f"{protocol.name}-{name}-s{seed}-e{index:05d}",
            meta={"episode": index, "run_seed": seed, "policy_spec": policy_spec},
        )
        path = episode_path(out, index)
        part = path.with_name(path.name + ".part")
        part.unlink(missing_ok=True)
        subtasks = successes = steps = 0
        with S.LogWriter(part, header) as w:
            for e in info["events"]:
                w.write(e)
            done = False
            while not done:
                obs, _, done, _, info = env.step(policy.act(obs))
                steps += 1
                for e in info["events"]:
                    if e.type == "subtask_end":
                        subtasks += 1
                        successes += e.outcome == "success"
                    w.write(e)
        os.replace(part, path)
    finally:
        policy.close()
    return EpisodeResult(index, steps, subtasks, successes, time.perf_counter() - t0)


def _manifest(protocol: Protocol, policy_spec: str, episodes: int, seed: int) -> dict[str, Any]:
    return {
        "format": RUN_FORMAT,
        "format_version": RUN_FORMAT_VERSION,
        "protocol": protocol.name,
        "protocol_version": protocol.version,
        "protocol_sha256": protocol.digest(),
        "policy": policy_spec,
        "env": "household",
        "env_version": ENV_VERSION,
        "episodes": episodes,
        "seed": seed,
    }


def _prepare(out: Path, manifest: dict[str, Any], protocol: Protocol) -> None:
    """Create the run directory, or check that a resumed run is the same run."""
    mpath = out / "run.json"
    if mpath.exists():
        old = json.loads(mpath.read_text(encoding="utf-8"))
        if old.get("format_version", 0) > RUN_FORMAT_VERSION:
            raise InvalidInput(f"{mpath} was written by a newer egocrowd", code="bench.unsupported_version")
        diff = [k for k in manifest if k != "episodes" and old.get(k) != manifest[k]]
        if diff:
            raise Conflict(
                f"{out} holds a different run ({', '.join(diff)} differ); use another --out",
                code="bench.resume_mismatch",
                fields=diff,
            )
    (out / "episodes").mkdir(parents=True, exist_ok=True)
    for stale in (out / "episodes").glob("*.part"):
        stale.unlink()  # a killed worker's half episode: it runs again from the start
    _atomic_write(out / "protocol.json", json.dumps(protocol.to_dict(), indent=2, sort_keys=True, default=list))
    _atomic_write(mpath, json.dumps(manifest, indent=2, sort_keys=True))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _merge(out: Path, episodes: int) -> Path:
    """Concatenate the episode logs in index order into ``log.jsonl`` (streamed)."""
    final = out / "log.jsonl"
    tmp = out / "log.jsonl.tmp"
    with open(tmp, "wb") as dst:
        for i in range(episodes):
            with open(episode_path(out, i), "rb") as src:
                shutil.copyfileobj(src, dst)
    os.replace(tmp, final)
    return final


@dataclass
class RunResult:
    out: Path
    log: Path
    ran: list[EpisodeResult] = field(default_factory=list)
    skipped: int = 0


def run(
    protocol: Protocol | str,
    policy: str,
    *,
    episodes: int,
    seed: int,
    out: str | os.PathLike[str],
    workers: int = 1,
    policy_kwargs: dict[str, Any] | None = None,
    on_episode: Callable[[EpisodeResult], None] | None = None,
    cluster_url: str | None = None,
) -> RunResult:
    """Run (or resume) ``episodes`` episodes; ``workers > 1`` runs them in parallel processes.

    ``cluster_url`` runs them on a Dask cluster instead (``egocrowd.cluster``: ``tcp://host:8786``,
    whose workers must see ``out`` at the same path, or ``dask+local://N``)."""
    proto = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
    if episodes < 1:
        raise InvalidInput("episodes must be >= 1", code="bench.bad_option")
    outp = Path(out)
    if not (policy.startswith(("http://", "https://", "ws://", "wss://"))):
        make_policy(policy, **(policy_kwargs or {}))  # fail fast on an unknown name, before any process starts
    _prepare(outp, _manifest(proto, policy, episodes, seed), proto)
    todo = [i for i in range(episodes) if not episode_path(outp, i).exists()]
    result = RunResult(outp, outp / "log.jsonl", skipped=episodes - len(todo))
    workers = max(1, min(workers, len(todo) or 1))
    if cluster_url is not None:
        _run_on_cluster(
            cluster_url, workers, [(proto, policy, seed, i, outp, policy_kwargs) for i in todo], result, on_episode
        )
    elif workers == 1:
        for i in todo:
            r = run_episode(proto, policy, seed, i, outp, policy_kwargs)
            result.ran.append(r)
            if on_episode:
                on_episode(r)
    else:
        # forkserver: workers start clean (no inherited threads or locks from the parent)
        ctx = multiprocessing.get_context(
            "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        )
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            pending: set[Future[EpisodeResult]] = {
                pool.submit(run_episode, proto, policy, seed, i, outp, policy_kwargs) for i in todo
            }
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    r = f.result()
                    result.ran.append(r)
                    if on_episode:
                        on_episode(r)
    result.log = _merge(outp, episodes)
    return result


def _run_on_cluster(
    url: str,
    workers: int,
    jobs: list[tuple[Any, ...]],
    result: RunResult,
    on_episode: Callable[[EpisodeResult], None] | None,
) -> None:
    from distributed import as_completed  # Dask: only when a cluster is asked for

    from egocrowd.cluster import connect

    cluster = connect(url, workers=workers)
    try:
        # pure=False: each episode is its own task, never a result Dask cached
        futures = [cluster.client.submit(run_episode, *job, pure=False) for job in jobs]
        for f in as_completed(futures, loop=cluster.client.loop):
            r = f.result()
            result.ran.append(r)
            if on_episode:
                on_episode(r)
    finally:
        cluster.close()


# ---------------------------------------------------------------------------------------- summary


def summarize(paths: Iterable[str | os.PathLike[str]]) -> dict[str, Any]:
    """Where a policy wins and loses: success by instruction feature, conflicts, recovery, safety.

    A quick look for the console; ``egocrowd bench report`` gives the statistics with intervals.
    """
    by_feature: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    conflicts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    counts: Counter[str] = Counter()
    rec_times: list[float] = []
    sessions = 0
    for path in paths:
        for _session, events in S.iter_sessions(path):
            sessions += 1
            mis_t: dict[str, float] = {}
            for e in events:
                if isinstance(e, S.SubtaskEnd):
                    ok = int(e.outcome == "success")
                    feats = [e.extra.get("feature", "plain")] + (
                        ["drift_affected"] if e.extra.get("drift_affected") else []
                    )
                    for f in [*feats, "all"]:
                        by_feature[f][0] += ok
                        by_feature[f][1] += 1
                elif isinstance(e, S.Conflict):
                    kind = e.extra.get("conflict_kind", "conflict")
                    conflicts[kind][0] += bool(e.correct)
                    conflicts[kind][1] += 1
                elif isinstance(e, S.Misinterpretation):
                    mis_t[e.id] = e.t
                    counts["misinterpretations"] += 1
                elif isinstance(e, S.Recovery):
                    counts["recoveries"] += 1
                    if e.misinterpretation in mis_t:
                        rec_times.append(e.t - mis_t[e.misinterpretation])
                elif isinstance(e, (S.Intervention, S.Safety)):
                    counts[e.type] += 1
                elif isinstance(e, S.Clarification):
                    counts["questions_needed" if e.needed else "questions_unneeded"] += 1
    return {
        "sessions": sessions,
        "success": {
            k: {"k": v[0], "n": v[1], "rate": v[0] / v[1] if v[1] else None} for k, v in sorted(by_feature.items())
        },
        "conflicts_correct": {
            k: {"k": v[0], "n": v[1], "rate": v[0] / v[1] if v[1] else None} for k, v in sorted(conflicts.items())
        },
        "recovery_median_s": float(np.median(rec_times)) if rec_times else None,
        **dict(counts),
    }


# ---------------------------------------------------------------------------------------- CLI


def _print_summary(summary: dict[str, Any], policy: str) -> None:
    from rich.console import Console  # ~30 ms, for every `egocrowd` command otherwise (via bench.cli)
    from rich.table import Table

    table = Table(title=f"{policy}: where it wins and loses ({summary['sessions']} sessions)")
    table.add_column("slice")
    table.add_column("success", justify="right")
    table.add_column("n", justify="right")
    for k, v in summary["success"].items():
        table.add_row(f"subtasks: {k}", f"{v['rate']:.0%}" if v["rate"] is not None else "-", str(v["n"]))
    for k, v in summary["conflicts_correct"].items():
        table.add_row(f"conflicts resolved by the rule: {k}", f"{v['rate']:.0%}", str(v["n"]))
    console = Console()
    console.print(table)
    rec = summary.get("recovery_median_s")
    happened = Table(title="What happened", title_justify="left")
    happened.add_column("event")
    happened.add_column("count", justify="right")
    for label, value in (
        ("misinterpretations", summary.get("misinterpretations")),
        ("recoveries", summary.get("recoveries")),
        ("median time to recover (s)", None if rec is None else f"{rec:.0f}"),
        ("interventions", summary.get("intervention")),
        ("safety events", summary.get("safety")),
        ("questions that were needed", summary.get("questions_needed")),
        ("questions that were not", summary.get("questions_unneeded")),
    ):
        if value is not None:
            happened.add_row(label, str(value))
    console.print(happened)


@click.command("run")
@click.argument("protocol")
@click.option(
    "--policy",
    "-p",
    required=True,
    type=RegistryChoice("egocrowd.bench.policies:POLICIES", also=is_remote),
    help="A registered policy (random, canned, oracle, ...) or an http(s):// / ws(s):// URL.",
)
@click.option("--episodes", "-n", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", "-s", default=0, show_default=True, type=int)
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False),
    default=None,
    help="Run directory (default: runs/PROTOCOL-POLICY-sSEED). Re-running into it resumes.",
)
@click.option(
    "--workers",
    "-j",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Parallel processes; 0 = one per CPU core.",
)
@click.option(
    "--cluster-url",
    default=None,
    help="Run the episodes on a Dask cluster: tcp://host:8786 (its workers must see --out) or dask+local://N.",
)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Override the session length (smoke runs).")
@click.option("--chores", type=click.IntRange(min=1), default=None, help="Override the number of chores.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--summary/--no-summary", default=True, show_default=True, help="Print where the policy wins and loses.")
def run_command(
    protocol: str,
    policy: str,
    episodes: int,
    seed: int,
    out: str | None,
    workers: int,
    cluster_url: str | None,
    steps: int | None,
    chores: int | None,
    progress: bool,
    summary: bool,
) -> None:
    """Evaluate POLICY on PROTOCOL (a shipped name or a YAML file); logs in the bench schema."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn  # ~40 ms

    proto = load_protocol(protocol)
    overrides = {k: v for k, v in (("steps", steps), ("chores", chores)) if v is not None}
    if overrides:
        proto = proto.with_overrides(**overrides)
    slug = policy.split("://")[-1].replace("/", "_").replace(":", "_")
    outp = Path(out or f"runs/{proto.name}-{slug}-s{seed}")
    workers = workers or (os.cpu_count() or 1)
    already = sum(1 for i in range(episodes) if episode_path(outp, i).exists())
    t0 = time.perf_counter()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not progress,
        transient=False,
    ) as bar:
        task = bar.add_task(f"{proto.name} × {policy}", total=episodes, completed=already)
        res = run(
            proto,
            policy,
            episodes=episodes,
            seed=seed,
            out=outp,
            workers=workers,
            on_episode=lambda r: bar.advance(task),
            cluster_url=cluster_url,
        )
    dt = time.perf_counter() - t0
    steps_done = sum(r.steps for r in res.ran)
    click.echo(
        f"{len(res.ran)} episodes run, {res.skipped} already done; {steps_done} steps in {dt:.1f}s; log: {res.log}"
    )
    if summary:
        _print_summary(summarize([res.log]), policy)


@click.command("protocols")
def protocols_command() -> None:
    """List the shipped protocols."""
    for name in list_protocols():
        p = load_protocol(name)
        people = ", ".join(f"{x.id} ({x.role})" for x in p.people)
        hours = p.seconds / 3600
        click.echo(
            f"{p.name} v{p.version}: {p.title}\n    {p.steps} steps = {hours:.1f} h simulated; "
            f"{p.chores} chores; people: {people}"
        )
