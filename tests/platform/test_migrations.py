"""The migration history builds exactly the schema the ORM describes, on every backend; the audit
table is append-only at the database level."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from egocrowd.db import upgrade
from egocrowd.db.engine import alembic_config
from egocrowd.db.models import Base
from tests.conftest import BACKENDS, PG_URL


@pytest.fixture(params=BACKENDS)
def fresh_url(request, tmp_path):
    """An empty database (SQLite file, or a brand-new PostgreSQL schema) that nothing migrated yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    schema = f"m_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _diff(url: str) -> list:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            return compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_migrated_schema_equals_the_models(fresh_url):
    upgrade(fresh_url)
    assert _tables(fresh_url) == set(Base.metadata.tables)
    assert _diff(fresh_url) == []


def test_upgrade_is_idempotent_and_downgrade_round_trips(fresh_url):
    upgrade(fresh_url)
    upgrade(fresh_url)  # a second run is a no-op, not an error
    assert _diff(fresh_url) == []

    command.downgrade(alembic_config(fresh_url), "base")
    assert _tables(fresh_url) == set()

    upgrade(fresh_url)
    assert _diff(fresh_url) == []
    _assert_append_only(fresh_url)  # the triggers came back with the tables


def _assert_append_only(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as c:
            c.execute(sa.text("INSERT INTO audit_events (at, action, entity_type, entity_id, payload) "
                              "VALUES (CURRENT_TIMESTAMP, 'test.event', 'test', '1', '{}')"))
        for stmt in ("UPDATE audit_events SET action = 'forged'", "DELETE FROM audit_events"):
            with pytest.raises(sa.exc.DatabaseError, match="append-only"):
                with engine.begin() as c:
                    c.execute(sa.text(stmt))
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT action FROM audit_events")).scalars().all() == ["test.event"]
    finally:
        engine.dispose()


def test_audit_table_refuses_update_and_delete(db_url):
    _assert_append_only(db_url)
