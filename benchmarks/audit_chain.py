#!/usr/bin/env python
"""The audit hash chain on PostgreSQL: what chaining costs writers, and how fast verify reads.

    .venv/bin/python benchmarks/audit_chain.py [--events 100000] [--batch 10] [--rounds 10]
                                              [--checkpoint-every 10000] [--full] [--quick] [--sqlite]

The default run (100,000 events, a few minutes on a 2-core machine) prints each target line as soon
as it is measured; ``--full`` is the size the targets were set at (1,000,000 events, 20,000 in the
concurrent phase, a checkpoint every 100,000: tens of minutes), ``--quick`` a smoke run.

Database: EGOCROWD_TEST_DATABASE_URL, else postgresql+psycopg://postgres@127.0.0.1:5432/test. Two
private schemas are created and dropped here, one with the chain, one without (``--sqlite``: two
SQLite files in a temporary folder instead).

1. Appending: ``--events`` events in all, ``--batch`` per transaction (a transaction of the app
   writes one to a few), alternated in ``--rounds`` rounds between the chain on (``audit.record``:
   numbered and hashed at commit under the chain lock) and off (the same rows added as before the
   chain: ``session.add`` with the host's time). Events per second each way; target: on / off >= 0.7
   (printed here).
   A checkpoint is signed every ``--checkpoint-every`` events (when ``cryptography`` is installed).
   Then ``--writers`` threads append ``--concurrent`` events, one per transaction (the chain's lock
   serialises their commits): events per second on / off, for information.
2. Verifying: ``verify`` over the database (id order, 5,000 rows a chunk, every hash, link and
   checkpoint signature) and over an export file of the same log, against reading the same bytes
   and computing their sha256 only: the file line by line (sha256 of each line), and the database
   with the same query and chunks (sha256 of each row's canonical bytes as the export holds them,
   precomputed). Target: verify's events per second / sha256's >= 0.3, for the file (the same bytes
   exactly; ``--rounds`` alternated rounds, after the database's three rounds).
   Plain hashlib over bytes already in memory is printed for information.
Numbers are measured side by side in one run on this machine; compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from _common import (
    expect,  # benchmarks/_common.py: every target stated, measured or not
    private_schema,  # benchmarks/_common.py: a schema of its own, dropped after
    target,  # benchmarks/_common.py: the one format of target lines
)


def _progress(msg: str) -> None:
    print(msg, flush=True)


def _payload(k: int) -> dict:
    # The shape of a typical event's details: ids, a state change, a time, a reason.
    return {
        "campaign_id": k % 97,
        "worker_id": k % 5003,
        "before": {"status": "active"},
        "after": {"status": "submitted"},
        "lease_expires_at": "2026-12-01T10:00:00.000000+00:00",
        "reason": "clip uploaded from the phone",
    }


def append_round(db, first: int, n: int, batch: int, chained: bool) -> float:
    """Seconds to append events first..first+n, ``batch`` per transaction."""
    from egocrowd import audit
    from egocrowd.clock import utcnow
    from egocrowd.db.models import AuditEvent

    t0 = time.perf_counter()
    for start in range(first, first + n, batch):
        with db.transaction() as s:
            for k in range(start, min(first + n, start + batch)):
                if chained:
                    audit.record(s, None, "assignment.submitted", k, _payload(k), entity_type="assignment")
                else:  # what audit.record did before the chain
                    s.add(
                        AuditEvent(
                            actor_id=None,
                            action="assignment.submitted",
                            entity_type="assignment",
                            entity_id=str(k),
                            payload=audit._jsonable(_payload(k)),
                            at=utcnow(),
                        )
                    )
    return time.perf_counter() - t0


def concurrent_round(db, first: int, n: int, writers: int, chained: bool) -> float:
    """Seconds for ``writers`` threads to append n events, one per transaction."""
    import threading

    share = n // writers
    start = threading.Barrier(writers + 1)

    def work(w: int) -> None:
        start.wait()
        append_round(db, first + w * share, share, 1, chained)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    from egocrowd.audit import checkpoints, export, verify
    from egocrowd.db import Database, upgrade

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=100_000, help="events appended in all (half each way)")
    ap.add_argument("--batch", type=int, default=10, help="events per transaction")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--checkpoint-every", type=int, default=10_000)
    ap.add_argument("--writers", type=int, default=8, help="threads of the concurrent phase")
    ap.add_argument("--concurrent", type=int, default=4_000, help="events each way in the concurrent phase")
    ap.add_argument(
        "--full",
        action="store_true",
        help="the size the targets were set at: 1,000,000 events, 20,000 concurrent, a checkpoint every "
        "100,000 (tens of minutes; the default run takes a few)",
    )
    ap.add_argument("--quick", action="store_true", help="40,000 events, 4 rounds: a smoke run")
    ap.add_argument("--sqlite", action="store_true", help="SQLite files instead of PostgreSQL")
    args = ap.parse_args(argv)
    expect(append_chain_on_vs_off=0.7, verify_vs_sha256=0.3)
    if args.full:
        args.events, args.checkpoint_every, args.concurrent = 1_000_000, 100_000, 20_000
    if args.quick:
        args.events, args.rounds, args.checkpoint_every, args.concurrent = 40_000, 4, 10_000, 4_000

    tmp = Path(tempfile.mkdtemp(prefix="bench_audit_"))
    schemas = contextlib.ExitStack()  # the PostgreSQL schemas, dropped when it closes
    if args.sqlite:
        urls = [f"sqlite:///{tmp / 'chain.db'}", f"sqlite:///{tmp / 'plain.db'}"]
    else:
        urls = [schemas.enter_context(private_schema(prefix)) for prefix in ("bench_chain", "bench_plain")]
    dbs = []
    try:
        for url in urls:
            upgrade(url)
            dbs.append(Database(url))
        chained_db, plain_db = dbs
        try:
            key = checkpoints.generate_key(tmp / "audit.pem")
        except ImportError:
            key = None
            _progress("cryptography is not installed: no checkpoints are signed or checked")

        # 1. appending, alternated
        per_round = max(args.batch, args.events // 2 // args.rounds)
        on_s: list[float] = []
        off_s: list[float] = []
        done = 0
        for r in range(args.rounds):
            on_s.append(append_round(chained_db, done, per_round, args.batch, True))
            off_s.append(append_round(plain_db, done, per_round, args.batch, False))
            done += per_round
            if key is not None and done // args.checkpoint_every > (done - per_round) // args.checkpoint_every:
                with chained_db.transaction() as s:
                    checkpoints.write_checkpoint(s, key, "periodic")
            _progress(
                f"  round {r + 1}/{args.rounds}: chain on {per_round / on_s[-1]:,.0f} events/s, "
                f"off {per_round / off_s[-1]:,.0f} events/s"
            )
        on_rate = per_round / statistics.median(on_s)
        off_rate = per_round / statistics.median(off_s)
        print(
            f"appending ({done:,} events each way, {args.batch} per transaction): chain on {on_rate:,.0f} events/s, "
            f"off {off_rate:,.0f} events/s (medians of {args.rounds} rounds)"
        )
        ok = target("append_chain_on_vs_off", on_rate / off_rate, 0.7)
        n_conc = args.concurrent // args.writers * args.writers
        conc_on = concurrent_round(chained_db, done, n_conc, args.writers, True)
        conc_off = concurrent_round(plain_db, done, n_conc, args.writers, False)
        done += n_conc
        if key is not None:
            with chained_db.transaction() as s:
                checkpoints.write_checkpoint(s, key, "manual")
        print(
            f"concurrent ({args.writers} writers, one event per transaction, {n_conc:,} events each way): chain on "
            f"{n_conc / conc_on:,.0f} events/s, off {n_conc / conc_off:,.0f} events/s, ratio {conc_off / conc_on:.3f} (information)"
        )
        if not args.sqlite:
            with chained_db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(sa.text("VACUUM ANALYZE audit_events"))

        # 2. verifying
        keys = {key.key_id: key.public_raw} if key is not None else {}
        path = tmp / "log.jsonl"
        with chained_db.transaction(write=False) as s, open(path, "wb") as f:
            export.export_jsonl(s, f, [checkpoints.public_key_of(key)] if key is not None else [])
        with open(path, "rb") as f:
            lines = [line for line in f if line.startswith(b'{"action"')]
        n_bytes = sum(len(line) for line in lines)

        def file_sha256() -> int:
            n = 0
            with open(path, "rb") as f:
                for line in f:
                    hashlib.sha256(line).hexdigest()
                    n += 1
            return n

        def db_sha256() -> int:
            # the same read as verify (event_row_chunks), hashing each row's bytes (the export's line)
            n = 0
            with chained_db.transaction(write=False) as s:
                for rows in verify.event_row_chunks(s, 5000):
                    for _row in rows:
                        hashlib.sha256(lines[n]).hexdigest()
                        n += 1
            return n

        def db_verify():
            with chained_db.transaction(write=False) as s:
                return verify.verify_database(s, keys)

        # the database first (information)
        times: dict[str, list[float]] = {"db_verify": [], "db_sha256": []}
        for r in range(3):
            dt, report = timed(db_verify)
            assert report.ok and report.events == done, report
            times["db_verify"].append(dt)
            times["db_sha256"].append(timed(db_sha256)[0])
            _progress(
                f"  database verify round {r + 1}/3: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
            )
        db_rate = {k: done / statistics.median(v) for k, v in times.items()}
        print(
            f"database: verify {db_rate['db_verify']:,.0f} events/s, same query + sha256 {db_rate['db_sha256']:,.0f} "
            f"events/s, ratio {db_rate['db_verify'] / db_rate['db_sha256']:.3f} (information)"
        )
        # the file (the target, printed last), alternated
        times = {"file_verify": [], "file_sha256": []}
        for r in range(args.rounds):
            dt, report = timed(lambda: verify.verify_file(path, keys))
            assert report.ok and report.events == done, report
            times["file_verify"].append(dt)
            times["file_sha256"].append(timed(file_sha256)[0])
            _progress(
                f"  verify round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items())
            )
        file_rate = {k: done / statistics.median(v) for k, v in times.items()}
        t_mem, _ = timed(lambda: [hashlib.sha256(line).hexdigest() for line in lines])
        print(
            f"verifying the file, {done:,} events ({n_bytes / done:.0f} bytes each, {report.checkpoints} checkpoints): "
            + ", ".join(f"{k} {v:,.0f} events/s" for k, v in file_rate.items())
            + f" (medians of {args.rounds} rounds)"
        )
        print(
            f"plain hashlib over the same bytes in memory: {done / t_mem:,.0f} events/s "
            f"({n_bytes / t_mem / 1e6:,.0f} MB/s); verify --file / that = {file_rate['file_verify'] / (done / t_mem):.3f} "
            "(information)"
        )
        ok &= target("verify_vs_sha256", file_rate["file_verify"] / file_rate["file_sha256"], 0.3)

        return 0 if ok else 1
    finally:
        for db in dbs:
            db.dispose()
        schemas.close()
        for p in sorted(tmp.iterdir()) if tmp.exists() else []:
            p.unlink()
        tmp.rmdir()


if __name__ == "__main__":
    sys.exit(main())
