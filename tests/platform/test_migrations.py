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
from tests.support.pg import private_schema


@pytest.fixture(params=BACKENDS)
def fresh_url(request, tmp_path):
    """An empty database (SQLite file, or a brand-new PostgreSQL schema) that nothing migrated yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with private_schema(PG_URL, "m") as url:
        yield url


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
            c.execute(
                sa.text(
                    "INSERT INTO audit_events (at, action, entity_type, entity_id, payload) "
                    "VALUES (CURRENT_TIMESTAMP, 'test.event', 'test', '1', '{}')"
                )
            )
        for stmt in ("UPDATE audit_events SET action = 'forged'", "DELETE FROM audit_events"):
            with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as c:
                c.execute(sa.text(stmt))
        if engine.dialect.name == "sqlite":  # REPLACE would delete the old row without a DELETE trigger
            refused = [
                (
                    "INSERT OR REPLACE INTO audit_events (id, at, action, entity_type, entity_id, payload) "
                    "SELECT id, at, 'forged', entity_type, entity_id, payload FROM audit_events"
                )
            ]
        else:
            refused = ["TRUNCATE audit_events", "TRUNCATE audit_events CASCADE"]
        refused.append(
            "INSERT INTO audit_events (id, at, action, entity_type, entity_id, payload) "
            "SELECT id, at, 'forged', entity_type, entity_id, payload FROM audit_events WHERE true "
            "ON CONFLICT (id) DO UPDATE SET action = 'forged'"
        )  # an upsert is an UPDATE
        for stmt in refused:
            with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as c:
                c.execute(sa.text(stmt))
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT action FROM audit_events")).scalars().all() == ["test.event"]
    finally:
        engine.dispose()


def test_audit_table_refuses_update_and_delete(db_url):
    _assert_append_only(db_url)


@pytest.mark.skipif(not PG_URL, reason="EGOCROWD_TEST_DATABASE_URL not set")
def test_app_role_cannot_rewrite_the_audit_log_when_an_owner_role_migrates():
    """Two roles: the owner migrates (``egocrowd db upgrade`` with EGOCROWD_MIGRATION_DATABASE_URL),
    the app runs as a role that may read and append to audit_events and nothing else there."""
    tag = uuid.uuid4().hex[:8]
    owner, app, schema = f"egocrowd_owner_{tag}", f"egocrowd_app_{tag}", f"r_{tag}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE ROLE "{owner}" LOGIN'))
        c.execute(sa.text(f'CREATE ROLE "{app}" LOGIN'))
        c.execute(sa.text(f'CREATE SCHEMA "{schema}" AUTHORIZATION "{owner}"'))

    def as_role(role: str) -> str:
        url = sa.engine.make_url(PG_URL).set(username=role, password=None)
        return f"{url.render_as_string(hide_password=False)}?options=-csearch_path%3D{schema}"

    app_engine = sa.create_engine(as_role(app))
    try:
        upgrade(as_role(owner), app_role=app)
        upgrade(as_role(owner), app_role=app)  # again: idempotent
        with app_engine.begin() as c:  # the app works: it writes its tables and appends events
            c.execute(sa.text("INSERT INTO organizations (name, created_at) VALUES ('Lab', now())"))
            c.execute(sa.text("UPDATE organizations SET name = 'Lab A'"))
            c.execute(
                sa.text(
                    "INSERT INTO audit_events (at, action, entity_type, entity_id, payload) "
                    "VALUES (now(), 'test.event', 'test', '1', '{}')"
                )
            )
            assert c.scalar(sa.text("SELECT count(*) FROM audit_events")) == 1
        for stmt in (
            "UPDATE audit_events SET action = 'forged'",
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
            "DROP TABLE audit_events",
            "DROP TRIGGER audit_events_append_only ON audit_events",
            "ALTER TABLE audit_events DISABLE TRIGGER ALL",
        ):
            with pytest.raises(sa.exc.ProgrammingError) as e, app_engine.begin() as c:
                c.execute(sa.text(stmt))
            assert e.value.orig.sqlstate == "42501", stmt  # insufficient_privilege
        with app_engine.connect() as c:
            assert c.execute(sa.text("SELECT action FROM audit_events")).scalars().all() == ["test.event"]
        # the ledger is append-only the same way: the app reads and adds entries, never rewrites them
        with app_engine.begin() as c:
            assert c.scalar(sa.text("SELECT count(*) FROM ledger_entries")) == 0
        for stmt in (
            "UPDATE ledger_entries SET amount = 0",
            "DELETE FROM ledger_transactions",
            "TRUNCATE ledger_entries",
        ):
            with pytest.raises(sa.exc.ProgrammingError) as e, app_engine.begin() as c:
                c.execute(sa.text(stmt))
            assert e.value.orig.sqlstate == "42501", stmt
    finally:
        app_engine.dispose()
        with admin.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            for role in (app, owner):
                c.execute(sa.text(f'DROP OWNED BY "{role}"'))
                c.execute(sa.text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_0010_links_each_stored_clip_to_the_signature_that_covered_it(fresh_url):
    """Clips stored before revision 0010 get the worker's newest signature of their campaign's consent
    family made before the clip arrived (not a later one, not another family's), and the default pay
    floor exists."""
    cfg = alembic_config(fresh_url)
    command.upgrade(cfg, "0009")
    engine = sa.create_engine(fresh_url)
    t = "2026-01-0{}T00:00:00+00:00"
    try:
        with engine.begin() as c:
            run = lambda sql, **kw: c.execute(sa.text(sql), kw)  # noqa: E731
            run(
                "INSERT INTO organizations (id, name, may_author_consent, created_at) VALUES (1, 'Lab', false, :t)",
                t=t.format(1),
            )
            for uid, role in ((1, "requester"), (2, "worker")):
                run(
                    "INSERT INTO users (id, email, display_name, password_hash, role, is_active, created_at) "
                    "VALUES (:id, :e, 'x', 'x', :r, true, :t)",
                    id=uid, e=f"u{uid}@x.org", r=role, t=t.format(1),
                )  # fmt: skip
            for did, version, family, rev in (
                (1, "v1", "worker", 1),
                (2, "v2", "worker", 2),
                (3, "other-1", "other", 1),
            ):
                run(
                    "INSERT INTO consent_documents (id, version, title, body, sha256, scopes, created_at, family, "
                    "revision, language, status) VALUES (:id, :v, 't', 'b', :h, '[]', :t, :f, :r, 'en', 'published')",
                    id=did, v=version, h=f"{did:064d}", t=t.format(1), f=family, r=rev,
                )  # fmt: skip
            # signed v1 on the 2nd, another family on the 3rd, v2 on the 5th; the clip arrived on the 4th
            for rid, doc, day in ((1, 1, 2), (2, 3, 3), (3, 2, 5)):
                run(
                    "INSERT INTO consent_records (id, user_id, document_id, document_sha256, scopes, signed_at) "
                    "VALUES (:id, 2, :d, :h, '[]', :t)",
                    id=rid, d=doc, h=f"{doc:064d}", t=t.format(day),
                )  # fmt: skip
            run(
                "INSERT INTO campaigns (id, organization_id, created_by, title, instructions, requirements, taxonomy, "
                "target_clips, slots_taken, pay_cents, currency, expected_minutes, allowed_countries, data_use, "
                "buyer_name, consent_version, privacy, review, annotation, status, created_at, updated_at) VALUES "
                "(1, 1, 1, 'c', 'i', '{}', '{}', 5, 0, 100, 'USD', 5, '[]', '{}', 'b', 'v2', '{}', '{}', '{}', "
                "'open', :t, :t)",
                t=t.format(1),
            )
            run(
                "INSERT INTO clips (id, campaign_id, worker_id, source_ref, sha256, size, original_name, client_meta, "
                "status, created_at, updated_at, is_gold) VALUES "
                "(1, 1, 2, 'ingest:a', :h, 1, 'a.mp4', '{}', 'accepted', :t, :t, false)",
                h="a" * 64, t=t.format(4),
            )  # fmt: skip
        command.upgrade(cfg, "head")
        with engine.connect() as c:
            assert c.scalar(sa.text("SELECT consent_record_id FROM clips WHERE id = 1")) == 1
            assert c.execute(sa.text("SELECT country, currency, hourly_minor FROM pay_floors")).all() == [
                ("*", "USD", 800)
            ]
    finally:
        engine.dispose()
