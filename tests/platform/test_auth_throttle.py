"""Log-in throttling: per account and per client address, counted in the database (so several app
processes agree), refused before any password hashing, answered with 429 ``auth.throttled`` and a
Retry-After header, on the API and the log-in page alike."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from egocrowd.accounts import login
from egocrowd.accounts import service as accounts
from egocrowd.db import Database
from egocrowd.db.models import utcnow
from egocrowd.errors import TooManyRequests, Unauthenticated
from egocrowd.web import create_app
from tests.platform.helpers import API, PASSWORD, assert_problem, make_user

WRONG = "not the password"


@pytest.fixture
def hashes(monkeypatch):
    """Counts Argon2 verifications (the expensive step) while still doing them."""
    calls = []

    class CountingHasher(PasswordHasher):
        def verify(self, stored, password):
            calls.append(1)
            return super().verify(stored, password)

    monkeypatch.setattr(accounts, "_hasher", CountingHasher())
    return calls


def _token(client, email, password):
    return client.post(f"{API}/auth/token", json={"email": email, "password": password})


def test_an_account_is_throttled_before_hashing(client, db, settings, hashes):
    w = make_user(db, "worker", token=False)
    limit = settings.login_attempts_per_account
    for _ in range(limit):
        assert_problem(_token(client, w.email, WRONG), 401, "auth.bad_credentials")
    assert len(hashes) == limit
    for password in (WRONG, PASSWORD):  # now even the right password waits
        r = _token(client, w.email, password)
        body = assert_problem(r, 429, "auth.throttled")
        assert 0 < int(r.headers["retry-after"]) <= settings.login_window_minutes * 60
        assert body["retry_after"] == int(r.headers["retry-after"])
    assert len(hashes) == limit  # refused without hashing
    # other accounts are not affected
    other = make_user(db, "worker", token=False)
    assert _token(client, other.email, PASSWORD).status_code == 201


def test_a_success_restarts_the_accounts_count(client, db, settings):
    w = make_user(db, "worker", token=False)
    limit = settings.login_attempts_per_account
    for _ in range(limit - 1):
        assert _token(client, w.email, WRONG).status_code == 401
    assert _token(client, w.email, PASSWORD).status_code == 201
    for _ in range(limit):
        assert_problem(_token(client, w.email, WRONG), 401, "auth.bad_credentials")
    assert_problem(_token(client, w.email, PASSWORD), 429, "auth.throttled")


def test_unknown_accounts_are_throttled_too(client, settings):
    for _ in range(settings.login_attempts_per_account):
        assert_problem(_token(client, "nobody@example.org", WRONG), 401, "auth.bad_credentials")
    assert_problem(_token(client, " Nobody@EXAMPLE.org ", WRONG), 429, "auth.throttled")  # same account


def test_a_client_address_is_throttled_across_accounts(tmp_path, db, db_url, hashes):
    from egocrowd.settings import Settings

    settings = Settings(
        data_dir=tmp_path / "d",
        database_url=db_url,
        secret_key="k" * 40,
        run_pipeline_in_server=False,
        login_attempts_per_address=3,
    )
    users = [make_user(db, "worker", token=False) for _ in range(4)]
    with TestClient(create_app(settings, db)) as c:
        for u in users[:3]:
            assert_problem(_token(c, u.email, WRONG), 401, "auth.bad_credentials")
        assert_problem(_token(c, users[3].email, PASSWORD), 429, "auth.throttled")
    assert len(hashes) == 3


def test_app_processes_share_the_counts(settings, db_url, db):
    """Two apps with their own engines (as two server processes would have) on one database."""
    w = make_user(db, "worker", token=False)
    other_db = Database(db_url)
    try:
        with TestClient(create_app(settings, db)) as one, TestClient(create_app(settings, other_db)) as two:
            for i in range(settings.login_attempts_per_account):
                assert _token(one if i % 2 else two, w.email, WRONG).status_code == 401
            assert_problem(_token(one, w.email, PASSWORD), 429, "auth.throttled")
            assert_problem(_token(two, w.email, PASSWORD), 429, "auth.throttled")
    finally:
        other_db.dispose()


def test_a_concurrent_flood_hashes_only_up_to_the_limit(db, hashes):
    w = make_user(db, "worker", token=False)
    limits = login.Limits(per_account=5)
    outcomes: list[str] = []
    barrier = threading.Barrier(16)

    def attempt():
        barrier.wait()
        try:
            login.log_in(db, w.email, WRONG, address="10.0.0.1", limits=limits)
        except (Unauthenticated, TooManyRequests) as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["auth.bad_credentials"] * 5 + ["auth.throttled"] * 11
    assert len(hashes) == 5


def test_the_window_passes(db):
    w = make_user(db, "worker", token=False)
    limits = login.Limits(window=timedelta(minutes=15), per_account=2)
    t0 = utcnow()
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            login.log_in(db, w.email, WRONG, address=None, limits=limits, now=t0)
    with pytest.raises(TooManyRequests) as refused:
        login.log_in(db, w.email, PASSWORD, address=None, limits=limits, now=t0 + timedelta(minutes=5))
    assert refused.value.code == "auth.throttled" and refused.value.extra["retry_after"] == 600
    later = t0 + timedelta(minutes=15, seconds=1)
    assert login.log_in(db, w.email, PASSWORD, address=None, limits=limits, now=later) == w.id
    with db.transaction() as s:
        assert login.sweep(s, limits.window, now=later + timedelta(minutes=16)) == 1


def test_a_sweep_between_the_insert_and_the_lock_is_survived(db, db_url):
    # PostgreSQL's INSERT ... ON CONFLICT DO NOTHING does not lock the existing row, so housekeeping
    # could delete an expired counter just before log-in locked it: log-in then crashed on None.
    # (SQLite serialises writers: there the sweep cannot come in between.)
    if db.is_sqlite:
        pytest.skip("SQLite serialises writers")
    w = make_user(db, "worker", token=False)
    limits = login.Limits(window=timedelta(minutes=15), per_account=5)
    t0 = utcnow()
    with pytest.raises(Unauthenticated):
        login.log_in(db, w.email, WRONG, address=None, limits=limits, now=t0)
    later = t0 + timedelta(minutes=16)
    housekeeping = Database(db_url)
    swept = []

    def sweep_first(conn, cursor, statement, parameters, context, executemany):
        if not swept and "FROM login_throttles" in statement and "FOR UPDATE" in statement:
            with housekeeping.transaction() as s:
                swept.append(login.sweep(s, limits.window, now=later))

    sa.event.listen(db.engine, "before_cursor_execute", sweep_first)
    try:
        assert login.log_in(db, w.email, PASSWORD, address=None, limits=limits, now=later) == w.id
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", sweep_first)
        housekeeping.dispose()
    assert swept == [1]


def _csrf(client) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/login").text).group(1)


def test_the_login_page_shows_the_same_refusal(client, db, settings):
    w = make_user(db, "worker", token=False)
    for _ in range(settings.login_attempts_per_account):
        r = client.post("/login", data={"email": w.email, "password": WRONG, "csrf_token": _csrf(client)})
        assert r.status_code == 401 and 'data-code="auth.bad_credentials"' in r.text
    r = client.post(
        "/login", data={"email": w.email, "password": PASSWORD, "csrf_token": _csrf(client)}, follow_redirects=False
    )
    assert r.status_code == 429 and 'data-code="auth.throttled"' in r.text
    assert "Too many log-in attempts" in r.text and int(r.headers["retry-after"]) > 0
