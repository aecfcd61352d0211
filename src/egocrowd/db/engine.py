"""One door to the database: a URL gives an engine (SQLite or PostgreSQL), sessions and migrations."""

from __future__ import annotations

import fcntl
import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from egocrowd.errors import EgocrowdError, InvalidInput

_MIGRATIONS = Path(__file__).with_name("migrations")
READ_ONLY = "egocrowd_read_only"
_INT64 = 2**63


def make_engine(url: str, **kwargs) -> Engine:
    """An engine that refuses, as bad input (422), values no column can hold, whichever route sent them."""
    kwargs.setdefault("json_serializer", _json_dumps)
    engine = _make_engine(url, **kwargs)
    event.listen(engine, "before_cursor_execute", _refuse_unstorable)
    event.listen(engine, "handle_error", _as_invalid_input)
    return engine


# Bad input is refused where values meet the database rather than route by route, so every route,
# present and future, answers a problem document instead of a driver error (a 500):
# - a NUL character: PostgreSQL text cannot hold one (SQLite can; refused on both, one behaviour);
# - an integer beyond 64 bits: neither driver can send it;
# - an integer that fits 64 bits but not its (32-bit) column: PostgreSQL answers 22003, see below;
# - NaN or infinity in a JSON column: not JSON (PostgreSQL refuses it, SQLite stored it as is).
def _refuse_unstorable(conn, cursor, statement, parameters, context, executemany):
    for value in _values(parameters):
        if isinstance(value, str):
            if "\x00" in value:
                raise InvalidInput("Text may not contain a NUL character.", code="input.nul_character")
        elif isinstance(value, int) and not -_INT64 <= value < _INT64:
            raise InvalidInput("A number is out of range.", code="input.out_of_range")


def _values(parameters):
    if isinstance(parameters, dict):
        yield from parameters.values()
    elif isinstance(parameters, (list, tuple)):
        for p in parameters:
            if isinstance(p, (dict, list, tuple)):
                yield from _values(p)
            else:
                yield p


def _as_invalid_input(ctx):
    if isinstance(ctx.original_exception, EgocrowdError):
        raise ctx.original_exception  # ours, raised while binding (e.g. _json_dumps): not a driver error
    if getattr(ctx.original_exception, "sqlstate", None) == "22003":  # numeric_value_out_of_range
        raise InvalidInput("A number is out of range.", code="input.out_of_range") from ctx.original_exception


def _json_dumps(value) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        raise InvalidInput("Numbers must be finite (no NaN or infinity).", code="input.non_finite_number") from None


def _make_engine(url: str, **kwargs) -> Engine:
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and not url.endswith(":memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # Let SQLAlchemy, not the driver, decide when transactions start (see _begin below).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            # IMMEDIATE takes the write lock up front: a read-then-write transaction (claiming a slot)
            # can never fail half-way with SQLITE_BUSY_SNAPSHOT, and writers simply queue. Read-only
            # transactions stay DEFERRED so that, with WAL, they never wait for a writer.
            if conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("BEGIN")
                conn.exec_driver_sql("PRAGMA query_only = 1")  # a write in it fails loudly
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        @event.listens_for(engine, "rollback")
        @event.listens_for(engine, "commit")
        def _end(conn):
            if conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("PRAGMA query_only = 0")

        return engine
    if "poolclass" not in kwargs:
        # As many kept connections as a server process runs request threads (Settings.request_threads,
        # which open_database passes): with fewer, every request past the pool's size opened a
        # connection and closed it again after (the overflow), a new PostgreSQL backend per claim
        # under load (#17). The overflow is for the odd request that needs a second connection.
        kwargs.setdefault("pool_size", 16)
        kwargs.setdefault("max_overflow", 4)
    if "pool_pre_ping" in kwargs:
        return create_engine(url, **kwargs)
    engine = create_engine(url, **kwargs)
    _ping_when_idle(engine)
    return engine


#: A pooled connection idle longer than this is pinged before use (see _ping_when_idle).
PING_AFTER_IDLE_S = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before handing it out only when it sat idle for a while (a database
    restart or a dropped idle connection shows there), instead of SQLAlchemy's ``pool_pre_ping``
    before every checkout: that was a round trip more on every request, a tenth of a claim's (#17).
    A connection that failed its ping is replaced by a new one before the request sees it."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _idle_from(dbapi_conn, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn, record, proxy):
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as e:
            raise sa.exc.DisconnectionError(f"stale pooled connection: {e}") from e


def alembic_config(url: str):
    from alembic.config import Config  # ~0.45 s, only when migrating (never in a PostgreSQL worker)

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head", *, app_role: str | None = None) -> None:
    """Apply Alembic migrations up to ``revision`` (idempotent).

    On PostgreSQL, ``url`` may connect as the tables' owner and ``app_role`` name the role the app
    runs as: that role is then granted what it needs and no more. On audit_events that is SELECT and
    INSERT, so the app cannot UPDATE, DELETE, TRUNCATE, DROP it or drop its triggers (an owner can).
    Grants are applied after every upgrade, so tables added by later migrations are covered."""
    from alembic import command  # see alembic_config

    command.upgrade(alembic_config(url), revision)
    if app_role is not None:
        _grant_app_role(url, app_role)


def _grant_app_role(url: str, role: str) -> None:
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    try:
        if engine.dialect.name != "postgresql":
            raise ValueError("a separate app role is a PostgreSQL feature")
        q = engine.dialect.identifier_preparer.quote
        with engine.begin() as c:
            if c.scalar(sa.text("SELECT current_user")) == role:
                return  # one role for both: it owns the tables, there is nothing to withhold
            schema = q(c.scalar(sa.text("SELECT current_schema()")))
            role = q(role)
            for stmt in (
                f"GRANT USAGE ON SCHEMA {schema} TO {role}",
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
                f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
                # append-only tables: the app may add rows and read them, never change or remove them
                f"REVOKE ALL ON audit_events, audit_checkpoints, ledger_transactions, ledger_entries, alembic_version FROM {role}",
                f"GRANT SELECT, INSERT ON audit_events, audit_checkpoints, ledger_transactions, ledger_entries TO {role}",
                f"GRANT SELECT ON alembic_version TO {role}",
            ):
                c.execute(sa.text(stmt))
    finally:
        engine.dispose()


class Database:
    """Engine + session factory. ``with db.transaction() as s:`` commits or rolls back as a whole."""

    def __init__(self, url: str, **engine_kwargs) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def upgrade(self) -> None:
        upgrade(self.url)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Try to become the one process doing ``name`` (housekeeping): yields whether we are.
        PostgreSQL: a session advisory lock, so it holds across hosts; SQLite (one host): an
        advisory file lock beside the database file. Released when the block ends (or we die)."""
        if self.is_sqlite:
            path = Path(self.engine.url.database or ":memory:")
            if str(path) == ":memory:":
                yield True
                return
            with open(path.with_name(f"{path.name}.{name}.lock"), "a+") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
                try:
                    yield True
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)
            return
        key = int.from_bytes(hashlib.sha256(f"egocrowd:{name}".encode()).digest()[:8], "big", signed=True)
        with self.engine.connect() as conn:
            got = bool(conn.scalar(sa.select(sa.func.pg_try_advisory_lock(key))))
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                    conn.commit()

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """One transaction, committed at the end unless it raises. ``write=False`` makes it
        read-only (on SQLite it then never queues behind writers); the database refuses writes in it."""
        with self.sessionmaker() as session:
            if write:
                with session.begin():
                    yield session
                return
            session.connection(execution_options={READ_ONLY: True})
            if not self.is_sqlite:
                session.execute(sa.text("SET TRANSACTION READ ONLY"))
            try:
                yield session
            finally:
                session.rollback()  # nothing to keep

    def session(self) -> Session:
        return self.sessionmaker()

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(settings) -> Database:
    """The database the settings name; the embedded default (SQLite) migrates itself on opening."""
    db = Database(settings.db_url, **({} if settings.is_embedded else {"pool_size": settings.request_threads}))
    if settings.is_embedded:
        db.upgrade()
    return db
