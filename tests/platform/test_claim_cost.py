"""What one claim costs the database, counted (deterministic, unlike a time): the statements of one
claim through the API, from the token lookup to the audit event, pinned so that a redundant read
cannot creep back into the hot path unnoticed (#17: it was 15 statements, now 8)."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event

from egocrowd.campaigns import assignments
from egocrowd.db.models import Assignment, User
from tests.platform.helpers import API, claim, make_user, open_campaign, publish_consent, sign

#: token + user, campaign, consent, worker lock with the database's time (PostgreSQL only: SQLite's
#: BEGIN IMMEDIATE serialises), both caps, the slot and the assignment (one statement on PostgreSQL,
#: two on SQLite), the audit chain's head, the event
STATEMENTS = {"sqlite": 8, "postgresql": 8}


@contextmanager
def counted(db):
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", note)


def _work(statements: list[str]) -> list[str]:
    # Transaction control is not work (SQLite's BEGIN IMMEDIATE is sent as a statement, psycopg's BEGIN
    # is not); the token's "last used" stamp is a separate write at most once a minute (web.auth.unit).
    return [s for s in statements if s != "BEGIN IMMEDIATE" and not s.startswith("UPDATE api_tokens")]


@pytest.fixture
def lab(db):
    publish_consent(db)
    return make_user(db, "requester", org="Lab A")


@pytest.mark.parametrize("per_worker_limit", [None, 5])
def test_one_claim_costs_a_pinned_number_of_statements(client, db, lab, per_worker_limit):
    over = {} if per_worker_limit is None else {"max_clips_per_worker": per_worker_limit}
    cid = open_campaign(client, lab, target_clips=10, **over)["id"]
    w = make_user(db, "worker")
    sign(client, w)
    assert claim(client, w, cid).status_code == 201  # the first one also stamps the token's use

    with counted(db) as seen:
        r = client.post(f"{API}/campaigns/{cid}/claim", headers=w.headers)
    assert r.status_code == 201, r.text
    work = _work(seen)
    backend = "sqlite" if db.is_sqlite else "postgresql"
    assert len(work) == STATEMENTS[backend], "\n".join(work)
    # no lease sweep on the hot path: the only assignment write is the new row
    writes = [s for s in work if "INSERT INTO assignments" in s or "UPDATE assignments" in s]
    assert len(writes) == 1 and "UPDATE assignments" not in writes[0], writes


def test_a_full_campaign_still_takes_back_a_stale_lease(client, db, lab):
    """The sweep left the hot path, not the claim: a claim that finds no slot expires the campaign's
    leases that ran out (housekeeping may not have run yet) and tries again."""
    cid = open_campaign(client, lab, target_clips=1)["id"]
    w1, w2 = make_user(db, "worker"), make_user(db, "worker")
    sign(client, w1)
    sign(client, w2)
    with db.transaction() as s:
        first = assignments.claim(s, s.get(User, w1.id), cid, lease=timedelta(seconds=-1)).id  # already ran out
    with counted(db) as seen:
        r = claim(client, w2, cid)
    assert r.status_code == 201, r.text
    with db.transaction() as s:
        assert s.get(Assignment, first).status.value == "expired"
    assert any(s.startswith("UPDATE assignments SET status") for s in seen)


def test_a_late_comer_to_a_full_campaign_is_refused_cheaply(client, db, lab):
    """A launch stampede: most claims find the campaign full. They are refused after the token, the
    campaign, the consent and one read for a stale lease: no lock, no counts, no UPDATE."""
    cid = open_campaign(client, lab, target_clips=1)["id"]
    w1, w2 = make_user(db, "worker"), make_user(db, "worker")
    sign(client, w1)
    sign(client, w2)
    assert claim(client, w1, cid).status_code == 201
    claim(client, w2, cid)  # stamps w2's token
    with counted(db) as seen:
        r = claim(client, w2, cid)
    assert r.status_code == 409 and r.json()["code"] == "assignment.no_slots"
    assert len(_work(seen)) == 4, "\n".join(seen)
