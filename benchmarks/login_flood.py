"""Page loads during a log-in flood: a real `egocrowd serve` (uvicorn subprocess, embedded SQLite)
answers GET /api/v1/campaigns for a logged-in user while --flood clients post wrong passwords.

    .venv/bin/python benchmarks/login_flood.py [--flood 32] [--seconds 6] [--accounts 1]

Runs twice: with the default throttling, and with the limits raised out of reach (what the server did
before throttling existed). Prints p50/p99 of the page loads at rest and during each flood, and how
the flood's attempts were answered (401: hashed and refused, 429: refused before hashing).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from _common import expect, listening_socket, target  # benchmarks/_common.py

PASSWORD = "benchmark passphrase"


def seed(data_dir: Path, accounts_n: int) -> str:
    from egocrowd.accounts import service as accounts
    from egocrowd.db import open_database
    from egocrowd.settings import Settings

    db = open_database(Settings(data_dir=data_dir))
    with db.transaction() as s:
        reader = accounts.create_user(
            s, email="reader@bench.example.org", password=PASSWORD, display_name="reader", role="worker"
        )
        for i in range(accounts_n):
            accounts.create_user(
                s, email=f"victim{i}@bench.example.org", password=PASSWORD, display_name="victim", role="worker"
            )
        token = accounts.issue_token(s, reader, "bench")[1]
    db.dispose()
    return token


async def _pages(base: str, token: str, stop: asyncio.Event) -> list[float]:
    out = []
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
        while not stop.is_set():
            t = time.perf_counter()
            r = await c.get("/api/v1/campaigns")
            r.raise_for_status()
            out.append(time.perf_counter() - t)
            await asyncio.sleep(0.05)
    return out


async def _flood(base: str, n: int, accounts_n: int, stop: asyncio.Event) -> Counter:
    answers: Counter = Counter()

    async def one(c: httpx.AsyncClient, i: int):
        while not stop.is_set():
            r = await c.post(
                "/api/v1/auth/token",
                json={"email": f"victim{i % accounts_n}@bench.example.org", "password": "wrong guess number"},
            )
            answers[r.status_code] += 1

    # One client with a connection per attacker: a client each would build n TLS contexts (tens of
    # ms of CPU each, even for http://) inside the measured window.
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as c:
        await asyncio.gather(*(one(c, i) for i in range(n)))
    return answers


async def measure(base: str, token: str, flood: int, accounts_n: int, seconds: float):
    stop = asyncio.Event()
    pages = asyncio.create_task(_pages(base, token, stop))
    flooding = asyncio.create_task(_flood(base, flood, accounts_n, stop)) if flood else None
    await asyncio.sleep(seconds)
    stop.set()
    return await pages, (await flooding if flooding else Counter())


def run(label: str, env_extra: dict, args) -> float:
    """Serve with ``env_extra``, flood the log-in; returns other users' p50 page time during the flood."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        token = seed(data, args.accounts)
        sock = listening_socket()
        port = sock.getsockname()[1]
        env = {**os.environ, "EGOCROWD_DATA_DIR": str(data), "EGOCROWD_RUN_PIPELINE_IN_SERVER": "false", **env_extra}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "egocrowd.web:create_app",
                "--factory",
                "--fd",
                str(sock.fileno()),
                "--log-level",
                "warning",
            ],
            env=env,
            pass_fds=(sock.fileno(),),
        )
        sock.close()  # the server holds its own copy
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    httpx.get(base + "/api/v1/health", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            rest, _ = asyncio.run(measure(base, token, 0, args.accounts, 2))
            busy, answers = asyncio.run(measure(base, token, args.flood, args.accounts, args.seconds))
        finally:
            server.terminate()
            server.wait()

    def q(xs, p):
        # a flood that starves the pages leaves few samples (each load waits its turn behind the
        # hashing): then p50 is their median and p99 the slowest, not "nan"
        if len(xs) < 3:
            return (statistics.median(xs) if p == 50 else max(xs)) * 1000 if xs else float("nan")
        return statistics.quantiles(xs, n=100)[p - 1] * 1000

    print(
        f"{label:>12}: at rest p50 {q(rest, 50):6.1f} ms  p99 {q(rest, 99):6.1f} ms | during the flood p50 "
        f"{q(busy, 50):6.1f} ms  p99 {q(busy, 99):6.1f} ms ({q(busy, 50) / q(rest, 50):.1f}x) | "
        f"attempts {dict(answers)}"
    )
    return q(busy, 50)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flood", type=int, default=32, help="clients posting wrong passwords (default 32)")
    ap.add_argument("--seconds", type=float, default=6, help="length of each flood (default 6: ~25 s in all)")
    ap.add_argument("--accounts", type=int, default=1, help="accounts the flood guesses at (default 1)")
    args = ap.parse_args()
    expect(flood_page_p50_unthrottled_over_throttled=2)
    throttled = run("throttled", {}, args)
    unthrottled = run(
        "unthrottled",
        {"EGOCROWD_LOGIN_ATTEMPTS_PER_ACCOUNT": "1000000", "EGOCROWD_LOGIN_ATTEMPTS_PER_ADDRESS": "1000000"},
        args,
    )
    # Throttling refuses the flood before hashing: other users' pages stay at least twice as fast.
    target("flood_page_p50_unthrottled_over_throttled", unthrottled / throttled, 2)


if __name__ == "__main__":
    main()
