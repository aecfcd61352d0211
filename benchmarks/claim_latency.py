"""Claim latency under load: 200 concurrent workers claim slots through the HTTP API of a real uvicorn
server (a subprocess running `egocrowd serve`) backed by PostgreSQL.

    .venv/bin/python benchmarks/claim_latency.py [--workers 200] [--claims-per-worker 3] [--server-workers 2]

Database: EGOCROWD_TEST_DATABASE_URL, else postgresql+psycopg://postgres@127.0.0.1:5432/test. Everything
happens in a private schema that is created and dropped here. Two phases:

  open     every worker claims --claims-per-worker slots one after another (all succeed: the cap)
  race     the same workers, all at once, race for the last --race-target slots of a new campaign

Prints p50/p99 latency and claims per second per phase, and checks the outcome (no slot given twice).

    .venv/bin/python benchmarks/claim_latency.py --mode churn [--churn-seconds 20] [--lease-seconds 1]

  churn    leases of about a second: for --churn-seconds every worker claims a slot of a small campaign
           (--race-target slots), gives half of them back and lets the rest run out, again and again.
           Refusals (no slots, the cap, not active) are expected; any other answer (a 5xx: a deadlock)
           is an error, and the run fails unless there are none and the slot books balance.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import sqlalchemy as sa
from _targets import target  # benchmarks/_targets.py: the one format of target lines

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(url: str, n_workers: int, target: int, race_target: int) -> tuple[list[str], str, int, int]:
    """Workers with consent and API tokens, a lab, and two open campaigns. Returns the worker tokens,
    the lab token and the two campaign ids."""
    from egocrowd import audit, consent
    from egocrowd.accounts import service as accounts
    from egocrowd.campaigns import service as campaigns
    from egocrowd.campaigns.schema import CampaignIn
    from egocrowd.clock import utcnow
    from egocrowd.db import Database, upgrade
    from egocrowd.db.models import OrgRole, Role, User
    from egocrowd.demo import CONSENT_TEXT, CONSENT_VERSION, KITCHEN_NOUNS, KITCHEN_VERBS, SCOPES

    upgrade(url)
    db = Database(url)
    pw = accounts.hash_password("benchmark password")
    with db.transaction() as s:
        org = accounts.get_or_create_organization(s, "Bench Lab")
        lab = User(
            email="lab@bench.example",
            display_name="lab",
            password_hash=pw,
            role=Role.requester,
            organization=org,
            org_role=OrgRole.owner,
        )
        s.add(lab)
        consent.create_document(s, version=CONSENT_VERSION, title="Recording consent", body=CONSENT_TEXT, scopes=SCOPES)
        lab_token = accounts.issue_token(s, lab, "bench")[1]
        ids = []
        for title, n in (("Open phase", target), ("Race phase", race_target)):
            c = campaigns.create_campaign(
                s,
                lab,
                CampaignIn(
                    title=title,
                    instructions="Benchmark campaign, nothing to record.",
                    target_clips=n,
                    taxonomy={"verbs": KITCHEN_VERBS, "nouns": KITCHEN_NOUNS},
                    pay_cents=100,
                    expected_minutes=3,
                    buyer_name="Bench buyer",
                    consent_version=CONSENT_VERSION,
                ),
            )
            campaigns.transition(s, lab, c.id, "open")
            ids.append(c.id)
        tokens = []
        for i in range(n_workers):
            u = User(
                email=f"w{i}@bench.example",
                display_name=f"w{i}",
                password_hash=pw,
                role=Role.worker,
                country="KE",
                email_verified_at=utcnow(),
            )
            s.add(u)
            audit.record(s, None, "user.created", u, {"role": "worker"})
            consent.sign(s, u, CONSENT_VERSION, ["record_hands"])
            tokens.append(accounts.issue_token(s, u, "bench")[1])
    db.dispose()
    return tokens, lab_token, ids[0], ids[1]


async def run_phase(base: str, tokens: list[str], campaign_id: int, claims_each: int):
    start = asyncio.Event()
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()

    async def worker(token: str):
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
        ) as client:
            await client.get("/api/v1/me")  # connect before the clock starts
            await start.wait()
            for _ in range(claims_each):
                t = time.perf_counter()
                r = await client.post(f"/api/v1/campaigns/{campaign_id}/claim")
                latencies.append(time.perf_counter() - t)
                outcomes["ok" if r.status_code == 201 else r.json().get("code", str(r.status_code))] += 1

    tasks = [asyncio.create_task(worker(t)) for t in tokens]
    await asyncio.sleep(1.0)  # let every client connect
    t0 = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    return latencies, outcomes, time.perf_counter() - t0


EXPECTED = {"assignment.no_slots", "assignment.worker_cap", "assignment.not_active"}


async def run_churn(base: str, tokens: list[str], campaign_id: int, seconds: float):
    start = asyncio.Event()
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()

    async def call(client, method: str, url: str):
        t = time.perf_counter()
        r = await client.request(method, url)
        latencies.append(time.perf_counter() - t)
        ok = r.status_code in (200, 201)
        code = "ok" if ok else r.json().get("code", str(r.status_code))
        outcomes[code if ok or code in EXPECTED else f"ERROR {r.status_code} {code}"] += 1
        return r.json() if ok else None

    async def worker(token: str, rng: random.Random):
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
        ) as client:
            await client.get("/api/v1/me")
            await start.wait()
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                a = await call(client, "POST", f"/api/v1/campaigns/{campaign_id}/claim")
                if a is not None and rng.random() < 0.5:
                    await call(client, "POST", f"/api/v1/assignments/{a['id']}/release")
                elif a is None:
                    await asyncio.sleep(rng.uniform(0, 0.2))

    rng = random.Random(0)
    tasks = [asyncio.create_task(worker(t, random.Random(rng.random()))) for t in tokens]
    await asyncio.sleep(1.0)
    t0 = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    return latencies, outcomes, time.perf_counter() - t0


def report(name: str, latencies: list[float], outcomes: Counter, wall: float) -> None:
    q = statistics.quantiles(latencies * 2 if len(latencies) < 2 else latencies, n=100, method="inclusive")
    print(f"{name:<5} requests={len(latencies):<5} outcomes={dict(outcomes)}")
    print(
        f"      latency p50={q[49] * 1000:7.1f} ms  p99={q[98] * 1000:7.1f} ms  "
        f"max={max(latencies) * 1000:7.1f} ms   throughput={outcomes['ok'] / wall:7.1f} claims/s "
        f"({len(latencies) / wall:.1f} requests/s over {wall:.2f} s)"
    )


def check(url: str, campaign_ids: list[int]) -> None:
    engine = sa.create_engine(url)
    with engine.connect() as c:
        for cid in campaign_ids:
            taken, target = c.execute(
                sa.text("SELECT slots_taken, target_clips FROM campaigns WHERE id = :i"), {"i": cid}
            ).one()
            active = c.scalar(
                sa.text(
                    "SELECT count(*) FROM assignments WHERE campaign_id = :i "
                    "AND status IN ('active', 'submitted', 'accepted')"
                ),
                {"i": cid},
            )
            assert active == taken <= target, (cid, active, taken, target)
    engine.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=200)
    ap.add_argument("--claims-per-worker", type=int, default=3)
    ap.add_argument("--race-target", type=int, default=120)
    ap.add_argument("--server-workers", type=int, default=2, help="uvicorn processes")
    ap.add_argument("--mode", choices=["race", "churn"], default="race")
    ap.add_argument("--churn-seconds", type=float, default=20)
    ap.add_argument("--lease-seconds", type=float, default=1.0, help="churn mode: the lease of every claim")
    args = ap.parse_args()

    base_url = os.environ.get("EGOCROWD_TEST_DATABASE_URL", DEFAULT_URL)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base_url)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{base_url}{'&' if '?' in base_url else '?'}options=-csearch_path%3D{schema}"
    proc = None
    try:
        tokens, _, open_id, race_id = seed(url, args.workers, args.workers * args.claims_per_worker, args.race_target)
        port = _free_port()
        data = Path(tempfile.mkdtemp(prefix="egocrowd-bench-"))
        env = {
            **os.environ,
            "EGOCROWD_DATABASE_URL": url,
            "EGOCROWD_DATA_DIR": str(data),
            "EGOCROWD_RUN_PIPELINE_IN_SERVER": "false",
            "EGOCROWD_MAX_OPEN_ASSIGNMENTS": "100",
        }
        if args.mode == "churn":
            env.update(EGOCROWD_LEASE_HOURS=str(args.lease_seconds / 3600), EGOCROWD_MAX_OPEN_ASSIGNMENTS="3")
        env.pop("EGOCROWD_CONFIG", None)
        log = open(data / "server.log", "w")  # noqa: SIM115 - the server writes to it until we stop it
        proc = subprocess.Popen(
            [sys.executable, "-m", "egocrowd.cli", "serve", "--port", str(port), "--workers", str(args.server_workers)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                print((data / "server.log").read_text())
                return 1
            time.sleep(0.2)

        print(
            f"egocrowd claim latency: {args.workers} concurrent workers, HTTP API, uvicorn x{args.server_workers}, "
            f"PostgreSQL, {os.cpu_count()} CPUs"
        )
        if args.mode == "churn":
            lat, out, wall = asyncio.run(run_churn(base, tokens, race_id, args.churn_seconds))
            report("churn", lat, out, wall)
            errors = sum(n for k, n in out.items() if k.startswith("ERROR"))
            check(url, [race_id])
            print(f"errors: {errors} of {len(lat)} requests")
            target("churn_answers_without_error", 1 - errors / max(len(lat), 1), 1, digits=4)
            return 1 if errors else 0
        lat, out, wall = asyncio.run(run_phase(base, tokens, open_id, args.claims_per_worker))
        report("open", lat, out, wall)
        ok_open = out["ok"] == args.workers * args.claims_per_worker
        lat, out, wall = asyncio.run(run_phase(base, tokens, race_id, 1))
        report("race", lat, out, wall)
        ok_race = out == Counter(
            {
                "ok": min(args.race_target, args.workers),
                **({"assignment.no_slots": args.workers - args.race_target} if args.workers > args.race_target else {}),
            }
        )
        check(url, [open_id, race_id])
        target("open_claims_all_granted", float(ok_open), 1, digits=0)
        target("race_every_slot_granted_once", float(ok_race), 1, digits=0)
        return 0 if ok_open and ok_race else 1
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        with admin.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
