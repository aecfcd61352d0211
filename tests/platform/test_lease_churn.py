"""Leases under churn: many workers claim and give back slots while leases run out and a sweeper
expires them, through the service layer with one session per thread (issue #16.5: PostgreSQL used to
answer deadlocks). And a churning process killed with SIGKILL leaves consistent books."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from egocrowd.campaigns import assignments
from egocrowd.db import Database
from egocrowd.db.models import (
    SLOT_HOLDING,
    Assignment,
    AssignmentStatus,
    AuditEvent,
    Campaign,
    User,
    utcnow,
)
from egocrowd.errors import EgocrowdError
from tests.platform.helpers import make_user, open_campaign, publish_consent
from tests.platform.test_concurrency import _consenting_workers

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
#: Refusals that are part of the game; anything else (a deadlock, a crash) is an error.
EXPECTED = {"assignment.no_slots", "assignment.worker_cap", "assignment.not_active"}


def churn(
    url: str, worker_ids: list[int], campaign_ids: list[int], *, rounds: int, seconds: float, seed: int = 0
) -> Counter:
    """Each worker (a thread) claims a random campaign with a lease of a few milliseconds, then gives
    it back or lets it run out; a sweeper thread expires leases all the while. Returns the outcomes:
    'ok', an expected refusal code, or 'error: <exception>'."""
    db = Database(
        url,
        **(
            {}
            if url.startswith("sqlite")
            else {"pool_size": len(worker_ids) + 2, "max_overflow": 0, "pool_timeout": 60}
        ),
    )
    outcomes: Counter = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    stop = threading.Event()

    def note(what: str) -> None:
        with lock:
            outcomes[what] += 1

    def attempt(fn) -> None:
        try:
            fn()
            note("ok")
        except EgocrowdError as e:
            note(e.code if e.code in EXPECTED else f"error: {e!r}")
        except Exception as e:  # noqa: BLE001 - counted, and the test asserts there are none
            note(f"error: {type(e).__name__}: {str(e).splitlines()[0]}")

    def worker(wid: int, rng: random.Random) -> None:
        mine: list[int] = []
        for _ in range(rounds):
            if time.monotonic() > deadline:
                break
            if mine and rng.random() < 0.5:
                aid = mine.pop(rng.randrange(len(mine)))

                def give_back(aid=aid):
                    with db.transaction() as s:
                        assignments.release(s, s.get(User, wid), s.get(Assignment, aid))

                attempt(give_back)
            else:

                def take():
                    with db.transaction() as s:
                        a = assignments.claim(
                            s,
                            s.get(User, wid),
                            rng.choice(campaign_ids),
                            lease=timedelta(milliseconds=rng.randrange(1, 40)),
                        )
                        mine.append(a.id)

                attempt(take)

    def sweeper() -> None:
        while not stop.is_set():

            def sweep():
                with db.transaction() as s:
                    assignments.expire_leases(s)

            attempt(sweep)
            stop.wait(0.005)

    rng = random.Random(seed)
    threads = [threading.Thread(target=worker, args=(w, random.Random(rng.random()))) for w in worker_ids]
    sweep_thread = threading.Thread(target=sweeper)
    sweep_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    sweep_thread.join()
    db.dispose()
    return outcomes


def assert_books_balance(db, campaign_ids: list[int]) -> dict[str, int]:
    """Every campaign's slot counter equals its slot-holding assignments, and every assignment's
    history is in the audit log exactly once: one claim each, one event per way it ended."""
    with db.transaction(write=False) as s:
        for cid in campaign_ids:
            holding = s.scalar(
                sa.select(sa.func.count())
                .select_from(Assignment)
                .where(Assignment.campaign_id == cid, Assignment.status.in_(SLOT_HOLDING))
            )
            c = s.get(Campaign, cid)
            assert c.slots_taken == holding <= c.target_clips, (cid, c.slots_taken, holding)
        by_status = Counter(s.scalars(sa.select(Assignment.status)).all())
        events = Counter(s.scalars(sa.select(AuditEvent.action).where(AuditEvent.action.like("assignment.%"))).all())
        per_assignment = s.execute(
            sa.select(AuditEvent.entity_id, AuditEvent.action, sa.func.count())
            .where(AuditEvent.action.like("assignment.%"))
            .group_by(AuditEvent.entity_id, AuditEvent.action)
            .having(sa.func.count() > 1)
        ).all()
    assert per_assignment == []  # no event twice for one assignment
    assert events["assignment.claimed"] == sum(by_status.values())
    assert events["assignment.expired"] == by_status[AssignmentStatus.expired]
    assert events["assignment.released"] == by_status[AssignmentStatus.released]
    return {k.value: v for k, v in by_status.items()}


@pytest.fixture
def scarce(client, db):
    """Twelve consenting workers and two small campaigns: more demand than slots."""
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    cids = [open_campaign(client, lab, target_clips=4)["id"] for _ in range(2)]
    return _consenting_workers(db, 12), cids


def test_claims_releases_and_expiry_churn_without_errors(db, db_url, scarce):
    workers, cids = scarce
    outcomes = churn(db_url, workers, cids, rounds=25, seconds=30)
    errors = {k: v for k, v in outcomes.items() if k.startswith("error")}
    assert errors == {}
    assert outcomes["ok"] > len(workers)  # it really churned
    assert_books_balance(db, cids)
    with db.transaction() as s:  # once every lease has run out, every slot is back
        assignments.expire_leases(s, now=utcnow() + timedelta(hours=1))
    assert_books_balance(db, cids)
    with db.transaction(write=False) as s:
        assert [s.get(Campaign, c).slots_taken for c in cids] == [0, 0]


def test_a_churning_process_killed_mid_way_leaves_consistent_books(db, db_url, scarce):
    workers, cids = scarce
    code = (
        "import sys; from tests.platform.test_lease_churn import churn; "
        f"churn({db_url!r}, {workers!r}, {cids!r}, rounds=10_000, seconds=120)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:  # kill it once it has done real work, in the middle of it
            with db.transaction(write=False) as s:
                done = s.scalar(
                    sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.action == "assignment.claimed")
                )
            if done >= 40 or time.monotonic() > deadline or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the churning process ended on its own"
        assert done >= 40
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    assert_books_balance(db, cids)
    with db.transaction() as s:  # what the killed process held comes back through expiry
        assignments.expire_leases(s, now=utcnow() + timedelta(hours=1))
    counts = assert_books_balance(db, cids)
    assert "active" not in counts
    with db.transaction(write=False) as s:
        assert [s.get(Campaign, c).slots_taken for c in cids] == [0, 0]
