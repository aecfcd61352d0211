"""A published release, its clips and its files never change, enforced by the database: the ORM's
guard (releases.service) stops the application's own sessions, these triggers stop everything
else (a bulk UPDATE, a script, a psql session). Buyers hold a release's root hash: the rows behind
it must not move.

Revision ID: 0018
Revises: 0017
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

MESSAGE = "release.immutable: a published release never changes"
CHILDREN = ("release_clips", "release_files")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER releases_published_no_{verb.lower()} BEFORE {verb} ON releases
                WHEN OLD.status = 'published'
                BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""")
        for table in CHILDREN:
            for verb, row in (("INSERT", "NEW"), ("UPDATE", "OLD"), ("DELETE", "OLD")):
                op.execute(f"""
                    CREATE TRIGGER {table}_published_no_{verb.lower()} BEFORE {verb} ON {table}
                    WHEN (SELECT status FROM releases WHERE id = {row}.release_id) = 'published'
                    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""")
        return
    # PostgreSQL: one function for the releases, one for their rows (NEW for an insert, OLD otherwise)
    op.execute(f"""
        CREATE FUNCTION releases_published_immutable() RETURNS trigger AS $$
        BEGIN
            IF OLD.status = 'published' THEN RAISE EXCEPTION '{MESSAGE}'; END IF;
            RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        END; $$ LANGUAGE plpgsql;""")
    op.execute("""
        CREATE TRIGGER releases_published_immutable BEFORE UPDATE OR DELETE ON releases
        FOR EACH ROW EXECUTE FUNCTION releases_published_immutable();""")
    op.execute(f"""
        CREATE FUNCTION release_rows_published_immutable() RETURNS trigger AS $$
        DECLARE rid integer;
        BEGIN
            rid := CASE WHEN TG_OP = 'INSERT' THEN NEW.release_id ELSE OLD.release_id END;
            IF (SELECT status FROM releases WHERE id = rid) = 'published' THEN
                RAISE EXCEPTION '{MESSAGE}';
            END IF;
            RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        END; $$ LANGUAGE plpgsql;""")
    for table in CHILDREN:
        op.execute(f"""
            CREATE TRIGGER {table}_published_immutable BEFORE INSERT OR UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION release_rows_published_immutable();""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS releases_published_no_{verb}")
        for table in CHILDREN:
            for verb in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_published_no_{verb}")
        return
    for table in CHILDREN:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_published_immutable ON {table}")
    op.execute("DROP TRIGGER IF EXISTS releases_published_immutable ON releases")
    op.execute("DROP FUNCTION IF EXISTS release_rows_published_immutable()")
    op.execute("DROP FUNCTION IF EXISTS releases_published_immutable()")
