#!/usr/bin/env python
"""The pay ledger on PostgreSQL: posting throughput, every balance, one campaign's statement.

    .venv/bin/python benchmarks/ledger.py [--entries 300000] [--workers 20000] [--campaigns 30]
                                          [--post 1000] [--batch 200] [--rounds 5] [--full] [--quick]

The default run (300,000 entries, a couple of minutes on a 2-core machine) prints each target line as
soon as it is measured; ``--full`` is the size the targets were set at (1,000,000 entries, 50,000
workers, 100 campaigns, 5,000 postings), ``--quick`` a smoke run.

Database: EGOCROWD_TEST_DATABASE_URL, else postgresql+psycopg://postgres@127.0.0.1:5432/test. Everything
happens in a private schema that is created and dropped here.

1. Seed: ``--workers`` workers, ``--campaigns`` funded campaigns and ``--entries`` entries (a deposit
   per campaign, then accepted clips: budget -> worker + platform fee, three legs each) written with
   plain bulk INSERTs; each account's balance cache is then set from its entries (``verify`` checks).
2. Posting: ``--post`` clip payments through ``egocrowd.pay.ledger.post`` (``--batch`` per database
   transaction; each with its idempotency check, guarded balance updates and audit event), against
   a plain bulk INSERT of the same transaction and entry rows. Entries per second for both, and the
   ratio (information: no goal; post() does several statements per transaction by design).
3. Every balance: ``ledger.balances(session)`` (every account, zero included, as Money) against the
   plain ``SELECT account_id, SUM(amount) FROM ledger_entries GROUP BY account_id``. Alternated
   ``--rounds`` times, medians compared. Target: plain time / ours >= 0.5 (printed here).
4. One campaign's statement: every page of ``ledger.campaign_statement`` (1000 lines a page, each with
   its running balance) for the busiest campaign, against the same plain GROUP BY (the issue's
   yardstick), and against the plain SQL of the same lines (a window SUM over that account's entries
   joined to their transactions). Alternated ``--rounds`` times. Targets: plain time / ours >= 0.5
   for both.
Numbers are measured side by side in one run on this machine; compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import uuid

import sqlalchemy as sa
from _common import (
    expect,  # benchmarks/_common.py: every target stated, measured or not
    private_schema,  # benchmarks/_common.py: a schema of its own, dropped after
    target,  # benchmarks/_common.py: the one format of target lines
)

PAY, FEE = 150, 15  # cents: $1.50 a clip, a 10 % fee on top
CHUNK = 20_000


def _progress(msg: str) -> None:
    print(msg, flush=True)


def seed(db, n_workers: int, n_campaigns: int, n_entries: int) -> dict:
    """Bulk-written books; returns the ids the later phases need."""
    from egocrowd.db.models import Campaign, LedgerAccount, Organization, Role, User

    t0 = time.perf_counter()
    with db.transaction() as s:
        org = Organization(name="Bench lab")
        admin = User(email="admin@bench.example", display_name="admin", password_hash="-", role=Role.admin)
        s.add_all([org, admin])
        s.flush()
        campaigns = [
            Campaign(
                organization_id=org.id,
                created_by=admin.id,
                title=f"Campaign {i}",
                instructions="-",
                target_clips=1_000_000,
                pay_cents=PAY,
                currency="USD",
                expected_minutes=3.0,
                buyer_name="Bench buyer",
                consent_version="v1",
            )
            for i in range(n_campaigns)
        ]
        s.add_all(campaigns)
        s.flush()
        campaign_ids = [c.id for c in campaigns]
        org_id, admin_id = org.id, admin.id
        users = User.__table__
        for start in range(0, n_workers, CHUNK):
            s.execute(
                sa.insert(users),
                [
                    {"email": f"w{i}@bench.example", "display_name": f"w{i}", "password_hash": "-", "role": Role.worker}
                    for i in range(start, min(n_workers, start + CHUNK))
                ],
            )
        worker_ids = list(s.scalars(sa.select(User.id).where(User.role == Role.worker).order_by(User.id)))
        acc = LedgerAccount.__table__
        rows = [
            {"kind": "lab_funding", "currency": "USD", "owner_key": f"organization:{org_id}", "organization_id": org_id}
        ]
        rows.append({"kind": "platform_fees", "currency": "USD", "owner_key": "platform"})
        rows += [
            {"kind": "campaign_budget", "currency": "USD", "owner_key": f"campaign:{c}", "campaign_id": c}
            for c in campaign_ids
        ]
        rows += [
            {"kind": "worker_earnings", "currency": "USD", "owner_key": f"user:{u}", "user_id": u} for u in worker_ids
        ]
        for start in range(0, len(rows), CHUNK):
            blank = {"balance": 0, "user_id": None, "campaign_id": None, "organization_id": None}
            s.execute(sa.insert(acc), [{**blank, **r} for r in rows[start : start + CHUNK]])
        ids = dict(s.execute(sa.select(LedgerAccount.owner_key, LedgerAccount.id)).all())
    funding, fees = ids[f"organization:{org_id}"], ids["platform"]
    budgets = [ids[f"campaign:{c}"] for c in campaign_ids]
    earnings = [ids[f"user:{u}"] for u in worker_ids]
    _progress(f"seed: {n_workers} workers, {n_campaigns} campaigns, accounts made in {time.perf_counter() - t0:.1f} s")

    # Deposits, then clips spread over workers and campaigns (campaign i gets a share growing with i,
    # so one campaign is clearly the busiest).
    n_clips = max(0, (n_entries - 2 * n_campaigns) // 3)
    weights = [i + 1 for i in range(n_campaigns)]
    total_w = sum(weights)
    per_campaign = [n_clips * w // total_w for w in weights]
    per_campaign[-1] += n_clips - sum(per_campaign)
    clip_campaign = [ci for ci, n in enumerate(per_campaign) for _ in range(n)]

    def txns():
        for ci, b in enumerate(budgets):
            amount = (per_campaign[ci] + 1_000) * (PAY + FEE)  # enough for its clips and the posting phase
            yield "deposit", ((funding, -amount), (b, amount))
        for k, ci in enumerate(clip_campaign):
            yield "clip_accepted", ((budgets[ci], -(PAY + FEE)), (earnings[k % len(earnings)], PAY), (fees, FEE))

    t0 = time.perf_counter()
    written = bulk_insert(db, txns(), "seed", admin_id)
    set_balance_caches(db)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(sa.text("VACUUM ANALYZE"))
    dt = time.perf_counter() - t0
    _progress(f"seed: {written:,} entries bulk-written in {dt:.1f} s ({written / dt:,.0f} entries/s), vacuumed")
    return {
        "admin_id": admin_id,
        "budgets": budgets,
        "earnings": earnings,
        "fees": fees,
        "busiest": campaign_ids[-1],
        "campaign_ids": campaign_ids,
    }


def bulk_insert(db, txns, prefix: str, actor_id: int) -> int:
    """Plain bulk INSERTs of transaction rows and their entry rows (ids taken from the sequences)."""
    from egocrowd.clock import utcnow

    entries_written = 0
    batch: list = []

    def flush(batch):
        nonlocal entries_written
        with db.transaction() as s:
            c = s.connection()
            first = (
                c.execute(
                    sa.text(
                        "SELECT nextval(pg_get_serial_sequence('ledger_transactions', 'id')) FROM generate_series(1, :n)"
                    ),
                    {"n": len(batch)},
                )
                .scalars()
                .all()
            )
            now = utcnow()
            c.execute(
                sa.text(
                    "INSERT INTO ledger_transactions (id, kind, idempotency_key, content_sha256, reason, actor_id, at,"
                    " allow_negative, refs) VALUES (:id, :kind, :key, :h, :reason, :actor, :at, false, '{}')"
                ),
                [
                    {
                        "id": tid,
                        "kind": kind,
                        "key": f"{prefix}:{tid}",
                        "h": "-",
                        "reason": kind,
                        "actor": actor_id,
                        "at": now,
                    }
                    for tid, (kind, _legs) in zip(first, batch, strict=True)
                ],
            )
            entries = [
                {"t": tid, "a": a, "m": m} for tid, (_k, legs) in zip(first, batch, strict=True) for a, m in legs
            ]
            c.execute(
                sa.text("INSERT INTO ledger_entries (transaction_id, account_id, amount) VALUES (:t, :a, :m)"), entries
            )
            entries_written += len(entries)

    for t in txns:
        batch.append(t)
        if len(batch) >= CHUNK // 3:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    return entries_written


def posting(db, ids: dict, n_post: int, batch: int) -> tuple[float, float]:
    """Entries per second: through post() and by plain bulk INSERT of the same rows."""
    from egocrowd.db.models import LedgerAccount, User
    from egocrowd.pay import ledger
    from egocrowd.pay.ledger import Leg
    from egocrowd.pay.money import Money

    budgets, earnings = ids["budgets"], ids["earnings"]
    plan = [
        ((budgets[k % len(budgets)], -(PAY + FEE)), (earnings[(k * 7) % len(earnings)], PAY), (ids["fees"], FEE))
        for k in range(n_post)
    ]
    t0 = time.perf_counter()
    run = uuid.uuid4().hex[:6]
    for start in range(0, n_post, batch):
        with db.transaction() as s:
            actor = s.get(User, ids["admin_id"])
            wanted = {a for legs in plan[start : start + batch] for a, _ in legs}
            accounts = {a.id: a for a in s.scalars(sa.select(LedgerAccount).where(LedgerAccount.id.in_(wanted)))}
            for k in range(start, min(n_post, start + batch)):
                ledger.post(
                    s,
                    "clip_accepted",
                    [Leg(accounts[a], Money(m, "USD")) for a, m in plan[k]],
                    idempotency_key=f"bench:{run}:{k}",
                    reason="benchmark clip",
                    actor=actor,
                    refs={"clip_id": k},
                )
        done = min(n_post, start + batch)
        if done % max(batch, n_post // 5) < batch:
            _progress(f"  post(): {done}/{n_post} transactions")
    ours = 3 * n_post / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    bulk_insert(db, (("clip_accepted", legs) for legs in plan), f"plain{run}", ids["admin_id"])
    plain = 3 * n_post / (time.perf_counter() - t0)
    set_balance_caches(db)  # the plain rows bypassed post(), so the caches learn of them here
    return ours, plain


def set_balance_caches(db) -> None:
    """Benchmark bookkeeping only: set every account's balance cache from its entries after rows were
    written around post() (the seed, the plain baseline)."""
    with db.transaction() as s:
        s.execute(
            sa.text(
                "UPDATE ledger_accounts a SET balance = x.total FROM "
                "(SELECT account_id, SUM(amount) AS total FROM ledger_entries GROUP BY account_id) x "
                "WHERE a.id = x.account_id AND a.balance <> x.total"
            )
        )


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    from egocrowd.db import Database, upgrade
    from egocrowd.db.models import Campaign
    from egocrowd.pay import ledger

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=300_000)
    ap.add_argument("--workers", type=int, default=20_000)
    ap.add_argument("--campaigns", type=int, default=30)
    ap.add_argument("--post", type=int, default=1_000, help="transactions posted through post()")
    ap.add_argument("--batch", type=int, default=200, help="post() calls per database transaction")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--full",
        action="store_true",
        help="the size the targets were set at: 1,000,000 entries, 50,000 workers, 100 campaigns, 5,000 "
        "postings (several minutes; the default run is about a third of it)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="40,000 entries, 2,000 workers, 1,000 postings: a smoke run (fixed costs weigh more)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the schema (prints its name)")
    args = ap.parse_args(argv)
    expect(balances_vs_group_by=0.5, statement_vs_group_by=0.5, statement_vs_plain_sql=0.5)
    if args.full:
        args.entries, args.workers, args.campaigns, args.post = 1_000_000, 50_000, 100, 5_000
    if args.quick:
        args.entries, args.workers, args.campaigns, args.post, args.rounds = 40_000, 2_000, 20, 1_000, 5

    schema = contextlib.ExitStack()  # the PostgreSQL schema, dropped when it closes (unless --keep)
    url = schema.enter_context(private_schema("bench_ledger", keep=args.keep))
    db = None
    try:
        upgrade(url)
        db = Database(url)
        ids = seed(db, args.workers, args.campaigns, args.entries)

        _progress(f"posting {args.post} clip payments ({3 * args.post} entries), {args.batch} per transaction ...")
        ours_rate, plain_rate = posting(db, ids, args.post, args.batch)
        _progress(
            f"posting: post() {ours_rate:,.0f} entries/s, plain bulk INSERT {plain_rate:,.0f} entries/s, ratio {ours_rate / plain_rate:.3f}"
        )

        with db.transaction() as s:
            n_entries = s.scalar(sa.text("SELECT count(*) FROM ledger_entries"))
            n_accounts = s.scalar(sa.text("SELECT count(*) FROM ledger_accounts"))
            problems = ledger.verify(s)
        _progress(f"books: {n_entries:,} entries, {n_accounts:,} accounts, verify: {len(problems)} problems")
        if problems:
            print(problems[:5])
            return 1

        plain_sql = sa.text("SELECT account_id, SUM(amount) FROM ledger_entries GROUP BY account_id")
        window_sql = sa.text(
            "SELECT e.id, e.amount, SUM(e.amount) OVER (ORDER BY e.id), t.id, t.at, t.kind, t.reason, t.refs "
            "FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id "
            "WHERE e.account_id = :a ORDER BY e.id"
        )
        lines = 0
        with db.transaction(write=False) as s:
            times: dict[str, list[float]] = {"plain": [], "balances": []}
            for r in range(args.rounds):
                times["plain"].append(timed(lambda: s.execute(plain_sql).all()))
                times["balances"].append(timed(lambda: ledger.balances(s)))
                _progress(
                    f"  balances round {r + 1}/{args.rounds}: "
                    + ", ".join(f"{k} {v[-1] * 1000:.0f} ms" for k, v in times.items())
                )
            med = {k: statistics.median(v) for k, v in times.items()}
            print(
                f"every balance: plain GROUP BY {med['plain'] * 1000:.0f} ms, ledger.balances {med['balances'] * 1000:.0f} ms "
                f"({n_accounts:,} accounts)"
            )
            ok = target("balances_vs_group_by", med["plain"] / med["balances"], 0.5)

            campaign = s.get(Campaign, ids["busiest"])
            budget = ledger.campaign_account(s, campaign)

            def statement():
                nonlocal lines
                after, lines = 0, 0
                while True:
                    page = ledger.campaign_statement(s, campaign, after=after, limit=1000)
                    lines += len(page.lines)
                    if page.next_after is None:
                        return
                    after = page.next_after

            times = {"plain": [], "window": [], "statement": []}
            for r in range(args.rounds):
                times["plain"].append(timed(lambda: s.execute(plain_sql).all()))
                times["window"].append(timed(lambda: s.execute(window_sql, {"a": budget.id}).all()))
                times["statement"].append(timed(statement))
                _progress(
                    f"  statement round {r + 1}/{args.rounds}: "
                    + ", ".join(f"{k} {v[-1] * 1000:.0f} ms" for k, v in times.items())
                )
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"campaign statement ({lines:,} lines, 1000 a page): ours {med['statement'] * 1000:.0f} ms, "
            f"plain window SQL {med['window'] * 1000:.0f} ms, plain GROUP BY {med['plain'] * 1000:.0f} ms"
        )
        print(f"posting: post() / plain bulk INSERT = {ours_rate / plain_rate:.3f} (information, no goal)")
        ok &= target("statement_vs_group_by", med["plain"] / med["statement"], 0.5)
        ok &= target("statement_vs_plain_sql", med["window"] / med["statement"], 0.5)
        return 0 if ok else 1
    finally:
        if db is not None:
            db.dispose()
        schema.close()


if __name__ == "__main__":
    sys.exit(main())
