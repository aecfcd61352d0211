"""audit chain: each event's place and hashes (seq, prev_hash, hash); signed checkpoints (issue #13)

Revision ID: 0009
Revises: 0008

Events already in the log are chained in id order here, with the canonical encoding of
egocrowd.audit.encoding (format egocrowd.audit/1). That is the one time rows of audit_events are
changed: the append-only triggers are lifted for it and put back. audit_checkpoints is append-only
the same way as the log (UPDATE, DELETE, INSERT OR REPLACE, TRUNCATE refused).
"""
from alembic import op
import sqlalchemy as sa

from egocrowd.audit.encoding import GENESIS, body_hash, event_body
from egocrowd.db.models import UTCDateTime


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_CHUNK = 5000


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy on SQLite, which would lose the table's triggers).
    op.add_column('audit_events', sa.Column('seq', sa.BigInteger(), nullable=True))
    op.add_column('audit_events', sa.Column('prev_hash', sa.String(length=64), nullable=True))
    op.add_column('audit_events', sa.Column('hash', sa.String(length=64), nullable=True))
    op.create_index(op.f('ix_audit_events_seq'), 'audit_events', ['seq'], unique=True)

    op.create_table('audit_checkpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=100), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('signature', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_checkpoints_seq'), ['seq'], unique=False)

    _chain_existing_events()
    _install_checkpoint_triggers()
    if op.get_bind().dialect.name == "postgresql":
        # The chain's lock and head in one round trip (egocrowd.audit.chain): the query after the
        # lock runs with a fresh snapshot (a VOLATILE function in READ COMMITTED), so it sees the
        # events of the transaction that held the lock before.
        op.execute("""
            CREATE FUNCTION audit_chain_head(OUT head_at timestamptz, OUT head_seq bigint, OUT head_hash varchar)
            AS $$
            BEGIN
                PERFORM pg_advisory_xact_lock(1164863795, hashtext(current_schema()));
                head_at := clock_timestamp();
                SELECT e.seq, e.hash INTO head_seq, head_hash FROM audit_events e
                WHERE e.seq IS NOT NULL ORDER BY e.seq DESC LIMIT 1;
            END $$ LANGUAGE plpgsql VOLATILE;""")


def _chain_existing_events() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    # The only UPDATE the log ever gets: lift the append-only trigger for it, then put it back.
    if sqlite:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
    else:
        op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
    events = sa.table(
        'audit_events',
        sa.column('id', sa.Integer()),
        sa.column('at', UTCDateTime()),
        sa.column('actor_id', sa.Integer()),
        sa.column('action', sa.String()),
        sa.column('entity_type', sa.String()),
        sa.column('entity_id', sa.String()),
        sa.column('payload', sa.JSON()),
        sa.column('seq', sa.BigInteger()),
        sa.column('prev_hash', sa.String()),
        sa.column('hash', sa.String()),
    )
    update = sa.text("UPDATE audit_events SET seq = :seq, prev_hash = :prev, hash = :hash WHERE id = :id")
    seq, prev, after = 0, GENESIS, 0
    while True:
        rows = bind.execute(
            sa.select(events).where(events.c.id > after).order_by(events.c.id).limit(_CHUNK)
        ).all()
        if not rows:
            break
        params = []
        for r in rows:
            seq += 1
            h = body_hash(event_body(
                seq=seq, prev_hash=prev, at=r.at, actor_id=r.actor_id, action=r.action,
                entity_type=r.entity_type, entity_id=r.entity_id, payload=r.payload,
            ))
            params.append({"seq": seq, "prev": prev, "hash": h, "id": r.id})
            prev = h
        bind.execute(update, params)
        after = rows[-1].id
    if sqlite:
        op.execute("""
            CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
            BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;""")
    else:
        op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")


def _install_checkpoint_triggers() -> None:
    table = "audit_checkpoints"
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table}
                BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;""")
        op.execute(f"""
            CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table}
            WHEN EXISTS (SELECT 1 FROM {table} WHERE id = NEW.id)
            BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;""")
        return
    op.execute(f"""
        CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION ledger_append_only();""")
    op.execute(f"""
        CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_chain_head()")
    op.drop_table('audit_checkpoints')  # its triggers go with it
    op.drop_index(op.f('ix_audit_events_seq'), table_name='audit_events')
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35 too): a batch copy of the table would lose
    # its append-only triggers.
    for column in ('hash', 'prev_hash', 'seq'):
        op.drop_column('audit_events', column)
