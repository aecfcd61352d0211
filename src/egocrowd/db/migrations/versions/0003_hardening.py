"""hardening: the audit log refuses INSERT OR REPLACE (SQLite) and TRUNCATE (PostgreSQL)

Revision ID: 0003
Revises: 0002

0001 refuses UPDATE and DELETE on audit_events. Two ways around that remained:
- SQLite ``INSERT OR REPLACE`` with an existing id deletes the old row without firing DELETE
  triggers; a BEFORE INSERT trigger refuses an id that is already there.
- PostgreSQL ``TRUNCATE`` fires no row triggers; a BEFORE TRUNCATE trigger refuses it.
Whoever owns the table can still drop the triggers (on SQLite anyone who can write the file can);
on PostgreSQL run the app as a role that does not own the tables (see egocrowd.db.engine.upgrade,
``EGOCROWD_MIGRATION_DATABASE_URL``), and the hash chain of a later issue detects the rest.
"""
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("""
            CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events
            WHEN EXISTS (SELECT 1 FROM audit_events WHERE id = NEW.id)
            BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;""")
    else:
        op.execute("""
            CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
            FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_replace")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
