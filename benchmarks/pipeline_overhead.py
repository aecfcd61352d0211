"""Pipeline overhead: jobs per second through the runner with a no-op stage (leasing and applying
only), against a bare ``SELECT … FOR UPDATE SKIP LOCKED`` loop doing the same work on the same table.

    .venv/bin/python benchmarks/pipeline_overhead.py [--jobs 3000] [--rounds 5] [--batch 8] [--quick]

Database: EGOCROWD_TEST_DATABASE_URL, else postgresql+psycopg://postgres@127.0.0.1:5432/test. Everything
happens in a private schema that is created and dropped here. Each round queues ``--jobs`` jobs of a
no-op stage (registered with the real ``@stage`` decorator) and drains them with 1 and with 4
processes, twice: once with ``Runner.drain`` (inline executor), once with the bare loop, which in
each process does, until nothing is left:

    lease   UPDATE jobs SET status 'running', owner, expiry, attempts + 1
            WHERE id IN (SELECT … ready … ORDER BY run_after, id LIMIT batch FOR UPDATE SKIP LOCKED)
            RETURNING id, clip_id, stage                                   (one transaction per batch)
    apply   UPDATE jobs SET status 'done' … WHERE id = … AND still leased by us (one transaction per job)

psycopg directly, autocommit, statements prepared by the driver: the floor of what a leased queue
costs on this PostgreSQL. The order of the two alternates from round to round, processes are started
and connected before the clock starts, and the targets are the medians of the per-round ratios (the
machine is shared: the same load falls on both sides of a pair). Every run must end with each job
done exactly once (one attempt).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

import sqlalchemy as sa
from _common import (
    expect,  # benchmarks/_common.py: every target stated, measured or not
    private_schema,  # benchmarks/_common.py: a schema of its own, dropped after
    target,  # benchmarks/_common.py: the one format of target lines
)

from egocrowd.pipeline.stages import stage

STAGE = "bench_noop"


def _prepare_noop(session, clip, ctx) -> dict[str, Any]:
    return {}


def _apply_noop(session, clip, result) -> None:
    return None


# Registered at import, so the spawned processes (which import this module) know it too.
@stage(STAGE, "1", prepare=_prepare_noop, apply=_apply_noop)
def compute_noop(inputs: dict[str, Any]) -> dict[str, Any]:
    """Does nothing: what is measured is the runner around it."""
    return {}


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def seed(url: str, n_clips: int) -> None:
    """A lab, a worker, an open campaign and ``n_clips`` clips for the jobs to belong to."""
    from egocrowd import consent
    from egocrowd.accounts import service as accounts
    from egocrowd.campaigns import service as campaigns
    from egocrowd.campaigns.schema import CampaignIn
    from egocrowd.clock import utcnow
    from egocrowd.db import Database, upgrade
    from egocrowd.db.models import Clip, ClipStatus, OrgRole, Role, User
    from egocrowd.demo import CONSENT_TEXT, CONSENT_VERSION, KITCHEN_NOUNS, KITCHEN_VERBS, SCOPES

    upgrade(url)
    db = Database(url)
    with db.transaction() as s:
        org = accounts.get_or_create_organization(s, "Bench Lab")
        lab = User(
            email="lab@bench.example",
            display_name="lab",
            password_hash="-",
            role=Role.requester,
            organization=org,
            org_role=OrgRole.owner,
        )
        worker = User(email="w@bench.example", display_name="w", password_hash="-", role=Role.worker, country="KE")
        s.add_all([lab, worker])
        consent.create_document(s, version=CONSENT_VERSION, title="Recording consent", body=CONSENT_TEXT, scopes=SCOPES)
        c = campaigns.create_campaign(
            s,
            lab,
            CampaignIn(
                title="Pipeline overhead",
                instructions="Benchmark campaign, nothing to record.",
                target_clips=n_clips,
                taxonomy={"verbs": KITCHEN_VERBS, "nouns": KITCHEN_NOUNS},
                pay_cents=100,
                expected_minutes=3,
                buyer_name="Bench buyer",
                consent_version=CONSENT_VERSION,
            ),
        )
        s.flush()
        now = utcnow()
        s.execute(
            sa.insert(Clip),
            [
                {
                    "campaign_id": c.id,
                    "worker_id": worker.id,
                    "source_ref": f"bench:{i}",
                    "sha256": f"{i:064x}",
                    "size": 1,
                    "original_name": f"{i}.mp4",
                    "client_meta": {},
                    "status": ClipStatus.processing,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(n_clips)
            ],
        )
    db.dispose()


def queue_jobs(engine: sa.Engine) -> int:
    """A fresh table of pending no-op jobs, one per clip, vacuumed and analysed like a settled one."""
    with engine.begin() as c:
        c.execute(sa.text("TRUNCATE jobs"))
        n = c.execute(
            sa.text(
                "INSERT INTO jobs (clip_id, stage, status, attempts, run_after, created_at) "
                "SELECT id, :stage, 'pending', 0, now(), now() FROM clips ORDER BY id"
            ),
            {"stage": STAGE},
        ).rowcount
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(sa.text("VACUUM ANALYZE jobs"))
    return n


def check_all_done_once(engine: sa.Engine, n: int) -> None:
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT status, attempts, count(*) FROM jobs GROUP BY status, attempts")).all()
    assert [tuple(r) for r in rows] == [("done", 1, n)], rows


# --- the two contenders, each run in its own spawned process -------------------------------------
def _ours(url: str, batch: int, owner: str) -> tuple[Any, Any]:
    from egocrowd.blobs import BlobStore
    from egocrowd.db import Database
    from egocrowd.pipeline.executors import get_executor
    from egocrowd.pipeline.runner import Runner, RunnerConfig

    db = Database(url)
    runner = Runner(
        db,
        BlobStore(tempfile.mkdtemp(prefix="bench-blobs-")),
        get_executor("inline"),
        RunnerConfig(batch=batch),
        owner=owner,
    )
    with db.transaction() as s:  # connected (and the stage registry loaded) before the clock starts
        s.execute(sa.text("SELECT 1"))
    from egocrowd.pipeline.stages import STAGES

    STAGES.get(STAGE)
    return runner.drain, db.dispose


_LEASE = """
UPDATE jobs SET status = 'running', lease_owner = %(owner)s,
       lease_expires_at = now() + interval '600 seconds', attempts = attempts + 1
WHERE id IN (
    SELECT id FROM jobs
    WHERE (status = 'pending' AND run_after <= now()) OR (status = 'running' AND lease_expires_at <= now())
    ORDER BY run_after, id LIMIT %(n)s FOR UPDATE SKIP LOCKED)
RETURNING id, clip_id, stage
"""
_DONE = """
UPDATE jobs SET status = 'done', finished_at = now(), stage_version = '1',
       lease_owner = NULL, lease_expires_at = NULL, last_error = NULL
WHERE id = %(id)s AND status = 'running' AND lease_owner = %(owner)s
"""


def _bare(url: str, batch: int, owner: str) -> tuple[Any, Any]:
    import psycopg

    u = sa.engine.make_url(url)
    conn = psycopg.connect(
        host=u.host,
        port=u.port or 5432,
        user=u.username,
        password=u.password,
        dbname=u.database,
        autocommit=True,
        **{k: v for k, v in u.query.items() if k == "options"},
    )
    conn.execute("SELECT 1")

    def drain() -> int:
        done = 0
        while True:
            taken = conn.execute(_LEASE, {"owner": owner, "n": batch}).fetchall()
            if not taken:
                return done
            for job_id, _clip_id, _stage in taken:
                conn.execute(_DONE, {"id": job_id, "owner": owner})
            done += len(taken)

    return drain, conn.close


def _child(kind: str, url: str, batch: int, owner: str, ready, go, results) -> None:
    drain, close = (_ours if kind == "ours" else _bare)(url, batch, owner)
    ready.put(owner)
    go.wait()
    try:
        results.put((owner, drain(), time.perf_counter()))
    except BaseException as exc:
        results.put((owner, repr(exc), time.perf_counter()))
        raise
    finally:
        close()


def run(ctx, kind: str, url: str, procs: int, batch: int) -> tuple[float, int]:
    """Drain the queue with ``procs`` processes; returns (seconds, jobs done)."""
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    ps = [
        ctx.Process(target=_child, args=(kind, url, batch, f"{kind}-{i}-{uuid.uuid4().hex[:6]}", ready, go, results))
        for i in range(procs)
    ]
    for p in ps:
        p.start()
    for _ in ps:
        ready.get(timeout=120)
    t0 = time.perf_counter()
    go.set()
    outs = [results.get(timeout=600) for _ in ps]
    for p in ps:
        p.join(30)
    bad = [o for o in outs if not isinstance(o[1], int)]
    assert not bad, bad
    # perf_counter is the system's monotonic clock on Linux: comparable across processes
    return max(o[2] for o in outs) - t0, sum(o[1] for o in outs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=3000, help="jobs queued per run")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each side per process count (default 3)")
    ap.add_argument("--batch", type=int, default=8, help="jobs leased at a time, both sides")
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--quick", action="store_true", help="800 jobs, 3 rounds: a smoke run")
    args = ap.parse_args(argv)
    expect(**{f"pipeline_vs_skip_locked_{procs}proc": 0.5 for procs in args.procs})
    if args.quick:
        args.jobs, args.rounds = 800, 3

    with private_schema("bench_pipe") as url:
        engine = None
        try:
            seed(url, args.jobs)
            engine = sa.create_engine(url)
            ctx = mp.get_context("spawn")
            rates: dict[tuple[str, int], list[float]] = {(k, p): [] for k in ("ours", "bare") for p in args.procs}
            ratios: dict[int, list[float]] = {p: [] for p in args.procs}
            print(
                f"egocrowd pipeline overhead: no-op stage, {args.jobs} jobs per run, batch {args.batch}, "
                f"PostgreSQL, {os.cpu_count()} CPUs, {args.rounds} rounds"
            )
            ok = True
            # one process count at a time, its target printed as soon as its rounds are done (a run
            # cut short keeps it); each round alternates which side goes first
            for procs in args.procs:
                for r in range(args.rounds):
                    order = ("ours", "bare") if (r + procs) % 2 == 0 else ("bare", "ours")
                    got = {}
                    for kind in order:
                        n = queue_jobs(engine)
                        dt, done = run(ctx, kind, url, procs, args.batch)
                        assert done == n, (kind, done, n)
                        check_all_done_once(engine, n)
                        got[kind] = n / dt
                        rates[kind, procs].append(n / dt)
                    ratios[procs].append(got["ours"] / got["bare"])
                    _progress(
                        f"  round {r + 1}/{args.rounds}, {procs} proc: runner {got['ours']:,.0f} jobs/s, "
                        f"bare loop {got['bare']:,.0f} jobs/s, ratio {ratios[procs][-1]:.2f}"
                    )
                ours, bare = statistics.median(rates["ours", procs]), statistics.median(rates["bare", procs])
                print(
                    f"{procs} process{'es' if procs > 1 else ''}: runner {ours:,.0f} jobs/s, bare SKIP LOCKED loop "
                    f"{bare:,.0f} jobs/s (medians); per-round ratios " + " ".join(f"{x:.2f}" for x in ratios[procs])
                )
                ok &= target(f"pipeline_vs_skip_locked_{procs}proc", statistics.median(ratios[procs]), 0.5)
            return 0 if ok else 1
        finally:
            if engine is not None:
                engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
