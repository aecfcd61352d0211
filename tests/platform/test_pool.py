"""The connection pool pings only connections that sat idle (#17: a ping before every checkout was a
round trip more on every request), and still replaces one that died while it waited."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from egocrowd.db import engine as db_engine


@pytest.fixture
def pg(db):
    if db.is_sqlite:
        pytest.skip("SQLite: a file this process opened; no server to restart or drop it, no ping")
    return db


def _pings(db, monkeypatch) -> list[object]:
    seen: list[object] = []
    ping = db.engine.dialect.do_ping

    def counted(dbapi_conn):
        seen.append(dbapi_conn)
        return ping(dbapi_conn)

    monkeypatch.setattr(db.engine.dialect, "do_ping", counted)
    return seen


def test_a_busy_pool_sends_no_ping(db, monkeypatch):
    pings = _pings(db, monkeypatch)
    for _ in range(20):
        with db.engine.connect() as c:
            assert c.scalar(sa.select(1)) == 1
    assert pings == []


def test_a_connection_idle_past_the_limit_is_pinged_first(pg, monkeypatch):
    db = pg
    pings = _pings(db, monkeypatch)
    with db.engine.connect() as c:
        c.scalar(sa.select(1))
    monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_S", 0.0)  # every checked-in connection counts as idle
    with db.engine.connect() as c:
        assert c.scalar(sa.select(1)) == 1
    assert len(pings) == 1


def test_a_connection_that_died_while_idle_is_replaced_before_use(pg, monkeypatch):
    db = pg
    with db.engine.connect() as c:
        c.scalar(sa.select(1))
        dead = c.connection.dbapi_connection
    dead.close()  # behind the pool's back, as a database restart or a dropped idle connection would
    monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_S", 0.0)
    with db.engine.connect() as c:
        assert c.scalar(sa.select(1)) == 1
        assert c.connection.dbapi_connection is not dead


def test_a_server_process_runs_as_many_request_threads_as_its_pool_keeps_connections(settings):
    import anyio.to_thread
    from fastapi.testclient import TestClient

    from egocrowd.db import open_database
    from egocrowd.web.app import create_app

    settings = settings.model_copy(update={"request_threads": 5, "run_pipeline_in_server": False})
    db = open_database(settings)
    try:
        if not db.is_sqlite:  # SQLite: one writer at a time whatever the pool
            assert db.engine.pool.size() == 5
        with TestClient(create_app(settings, db)) as client:
            threads = client.portal.call(lambda: anyio.to_thread.current_default_thread_limiter().total_tokens)
            assert threads == 5
            assert client.get("/api/v1/health").status_code == 200
    finally:
        db.dispose()
