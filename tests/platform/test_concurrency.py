"""Claims racing for the last slots: each thread its own session and transaction through the service
layer, on SQLite and (when EGOCROWD_TEST_DATABASE_URL is set) PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from egocrowd import audit, consent
from egocrowd.campaigns import assignments
from egocrowd.clock import utcnow
from egocrowd.db import Database
from egocrowd.db.models import Assignment, AssignmentStatus, AuditEvent, Campaign, Role, User
from egocrowd.demo import CONSENT_VERSION
from egocrowd.errors import EgocrowdError
from tests.platform.helpers import make_user, open_campaign, password_hash, publish_consent

pytestmark = pytest.mark.slow
WORKERS, TARGET = 200, 120


def _consenting_workers(db, n: int) -> list[int]:
    with db.transaction() as s:
        users = [
            User(
                email=f"crowd-{i}@example.org",
                display_name=f"crowd {i}",
                password_hash=password_hash(),
                role=Role.worker,
                country="KE",
                email_verified_at=utcnow(),
            )
            for i in range(n)
        ]
        s.add_all(users)
        s.flush()
        for u in users:
            audit.record(s, None, "user.created", u, {"role": "worker"})
            consent.sign(s, u, CONSENT_VERSION, ["record_hands"])
        return [u.id for u in users]


def _race(url: str, calls: list[tuple[int, int]], *, max_open: int = 3) -> list[str]:
    """Run every (worker_id, campaign_id) claim at once; returns 'ok' or the error code of each."""
    db = Database(
        url, **({} if url.startswith("sqlite") else {"pool_size": 16, "max_overflow": 0, "pool_timeout": 120})
    )
    start = threading.Barrier(len(calls))

    def one(call):
        worker_id, campaign_id = call
        start.wait()
        try:
            with db.transaction() as s:
                assignments.claim(s, s.get(User, worker_id), campaign_id, max_open=max_open)
            return "ok"
        except EgocrowdError as e:
            return e.code

    try:
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            return list(pool.map(one, calls))
    finally:
        db.dispose()


def test_many_workers_race_for_the_last_slots(client, db, db_url):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    cid = open_campaign(client, lab, target_clips=TARGET)["id"]
    workers = _consenting_workers(db, WORKERS)

    outcomes = Counter(_race(db_url, [(w, cid) for w in workers]))
    assert outcomes == {"ok": TARGET, "assignment.no_slots": WORKERS - TARGET}

    with db.transaction() as s:
        c = s.get(Campaign, cid)
        active = list(
            s.scalars(
                sa.select(Assignment).where(Assignment.campaign_id == cid, Assignment.status == AssignmentStatus.active)
            )
        )
        claimed = s.scalar(
            sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.action == "assignment.claimed")
        )
    assert len(active) == c.slots_taken == c.target_clips == TARGET
    assert len({a.worker_id for a in active}) == TARGET  # no worker got two, no slot given twice
    assert claimed == TARGET  # one event per success, none for the refusals


def test_one_worker_racing_never_passes_the_cap(client, db, db_url):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    cids = [open_campaign(client, lab, target_clips=50)["id"] for _ in range(2)]
    (worker,) = _consenting_workers(db, 1)

    outcomes = Counter(_race(db_url, [(worker, cids[i % 2]) for i in range(24)], max_open=3))
    assert outcomes == {"ok": 3, "assignment.worker_cap": 21}
    with db.transaction() as s:
        assert (
            s.scalar(
                sa.select(sa.func.count())
                .select_from(Assignment)
                .where(Assignment.worker_id == worker, Assignment.status == AssignmentStatus.active)
            )
            == 3
        )
        assert sum(s.get(Campaign, c).slots_taken for c in cids) == 3
