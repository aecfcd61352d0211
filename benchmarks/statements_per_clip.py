"""What one clip costs the database, counted: statements and row bytes from the worker's claim,
through the tus upload, to the end of the automatic pipeline (probe, QC, de-identification, …).
Counts, not times, so the shared machine's load does not matter; docs/capacity.md multiplies them.

    .venv/bin/python benchmarks/statements_per_clip.py [--clips 1]

Database: EGOCROWD_TEST_DATABASE_URL, else postgresql+psycopg://postgres@127.0.0.1:5432/test, in a
private schema created and dropped here. The app is the real one (FastAPI's test client, no
sockets); the world is the tests' (a consent, a lab, a funded campaign, one signed worker per clip);
the clip is the generated test clip ``good`` (352x288, 8 s). Statements are counted with an
SQLAlchemy ``before_cursor_execute`` listener on the app's engine; transaction control (BEGIN,
COMMIT) is not counted, as psycopg sends BEGIN itself. Row bytes are ``pg_column_size`` of every
row the clip added, per table (data only: tuple headers and indexes come on top, see capacity.md).

Prints per-step statements (the median over ``--clips`` clips) and the rows and bytes the clips
added, per clip: inputs to docs/capacity.md (tests/platform/test_claim_cost.py pins the claim's
count). Its one target is that budget: docs/capacity.md sizes the database for at most
``STATEMENT_BUDGET`` statements from claim to the end of the pipeline, so the line reads budget /
counted (goal >= 1; below 1, a change made a clip dearer than the plan).
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from _common import private_schema, target  # benchmarks/_common.py: a schema of its own, target lines
from sqlalchemy import event

REPO = Path(__file__).resolve().parents[1]
REQ = {"min_duration_s": 3, "max_duration_s": 60, "min_width": 240, "min_height": 240, "min_fps": 24}


#: statements from claim to the end of the pipeline that docs/capacity.md's database plan allows a clip
STATEMENT_BUDGET = 100


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--clips", type=int, default=1, help="clips walked through (the same footage: the 2nd on fail QC as duplicates)"
    )
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))  # the tests' world builders
    from fastapi.testclient import TestClient

    from egocrowd.blobs import BlobStore
    from egocrowd.db import Database
    from egocrowd.db.models import Job
    from egocrowd.media.testmedia import make_test_media
    from egocrowd.pipeline.executors import get_executor
    from egocrowd.pipeline.runner import Runner
    from egocrowd.settings import Settings
    from egocrowd.web import create_app
    from tests.platform.helpers import claim, make_user, open_campaign, publish_consent, sign

    with tempfile.TemporaryDirectory() as tmp, private_schema("stmts") as url:
        good = make_test_media(Path(tmp) / "media", include_real=False)["good"]
        body = good.read_bytes()
        settings = Settings(
            data_dir=Path(tmp) / "data", database_url=url, secret_key="b" * 48, run_pipeline_in_server=False
        )
        db = Database(url)
        db.upgrade()
        seen: list[str] = []

        def note(conn, cursor, statement, parameters, context, executemany) -> None:
            seen.append(statement)

        with TestClient(create_app(settings, db)) as client:
            publish_consent(db)
            lab = make_user(db, "requester", org="Lab A")
            campaign = open_campaign(client, lab, requirements=REQ, target_clips=args.clips)
            workers = []
            for _ in range(args.clips):
                w = make_user(db, "worker")
                sign(client, w)
                client.get("/api/v1/me", headers=w.headers)  # the token's "last used" stamp, once a minute
                workers.append(w)
            runner = Runner(db, BlobStore(settings.blobs_path), get_executor("inline"), settings=settings)
            before = _rows(db)
            steps: dict[str, list[int]] = {}

            def step(name: str, fn):
                seen.clear()
                out = fn()
                steps.setdefault(name, []).append(len(seen))
                return out

            event.listen(db.engine, "before_cursor_execute", note)
            for w in workers:
                a = step("claim (API)", lambda w=w: claim(client, w, campaign["id"]).json())
                meta = "assignment " + base64.b64encode(str(a["id"]).encode()).decode()
                r = step(
                    "upload: create + body + completion (tus, one request)",
                    lambda w=w, meta=meta: client.post(
                        "/api/v1/uploads",
                        content=body,
                        headers={
                            **w.headers,
                            "Tus-Resumable": "1.0.0",
                            "Upload-Length": str(len(body)),
                            "Upload-Metadata": meta,
                            "Content-Type": "application/offset+octet-stream",
                        },
                    ),
                )
                assert r.status_code == 201 and "Egocrowd-Clip-Id" in r.headers, (r.status_code, r.text)
                while True:
                    with db.transaction() as s:  # which stage comes next (not counted: not the pipeline's)
                        event.remove(db.engine, "before_cursor_execute", note)
                        stage = s.scalar(sa.select(Job.stage).where(Job.status == "pending").order_by(Job.id))
                        event.listen(db.engine, "before_cursor_execute", note)
                    if stage is None:
                        break
                    assert step(f"pipeline: {stage}", runner.run_once) == 1
            event.remove(db.engine, "before_cursor_execute", note)
            after = _rows(db)
        db.dispose()

    n = args.clips
    print(f"statements per step, median of {n} clip(s), PostgreSQL (BEGIN/COMMIT not counted):")
    pipeline = 0.0
    for name, counts in steps.items():
        med = statistics.median(counts)
        pipeline += med if name.startswith("pipeline") else 0
        print(f"  {name:<58} {med:>5g}")
    total = sum(statistics.median(c) for c in steps.values())
    print(f"  {'pipeline, all stages':<58} {pipeline:>5g}")
    print(f"  {'claim to end of pipeline':<58} {total:>5g}")
    print("rows and row bytes (pg_column_size, data only) added per clip:")
    grown = Counter()
    for table in sorted(after):
        rows = (after[table][0] - before.get(table, (0, 0))[0]) / n
        size = (after[table][1] - before.get(table, (0, 0))[1]) / n
        if rows:
            grown["rows"] += rows
            grown["bytes"] += size
            print(f"  {table:<28} {rows:>6.1f} rows {size:>9.0f} B")
    print(f"  {'all tables':<28} {grown['rows']:>6.1f} rows {grown['bytes']:>9.0f} B")
    target("statement_budget_vs_counted", STATEMENT_BUDGET / total, 1)


def _rows(db) -> dict[str, tuple[int, int]]:
    """Every table: (rows, sum of pg_column_size of its rows)."""
    out = {}
    with db.engine.connect() as c:
        for table in sa.inspect(c).get_table_names():
            n, size = c.execute(
                sa.text(f'SELECT count(*), coalesce(sum(pg_column_size(t.*)), 0) FROM "{table}" t')
            ).one()
            out[table] = (int(n), int(size))
    return out


if __name__ == "__main__":
    main()
