"""consoles and account basics: consent authoring, lab teams, campaign deadlines and limits,
email tokens, notifications, account deletion

Each area of issue #14 keeps its changes in its own section below.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 04:57:09.271235
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- account basics: email tokens --------------------------------------------------------------
    op.create_table('account_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('account_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_tokens_user_id'), ['user_id'], unique=False)

    # --- notifications -------------------------------------------------------------------------------
    op.create_table('notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('link', sa.String(length=300), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('emailed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifications_user_id'), ['user_id'], unique=False)
        batch_op.create_index('ix_notifications_user_unread', ['user_id', 'read_at'], unique=False)

    # --- lab console: campaign deadlines and per-worker limits -----------------------------------------
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('max_clips_per_worker', sa.Integer(), nullable=True))

    # --- consent authoring ---------------------------------------------------------------------
    with op.batch_alter_table('consent_documents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('family', sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column('revision', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('language', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('status', sa.Enum('draft', 'published', 'retired', name='consentstatus', native_enum=False, length=20), nullable=True))
        batch_op.add_column(sa.Column('organization_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('created_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('published_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key('fk_consent_documents_created_by_users', 'users', ['created_by'], ['id'])
        batch_op.create_foreign_key('fk_consent_documents_organization_id_organizations', 'organizations', ['organization_id'], ['id'])
    # documents published before authoring existed: each its own family, revision 1, English, published
    op.execute(
        "UPDATE consent_documents SET family = version, revision = 1, language = 'en', status = 'published', "
        "published_at = created_at"
    )
    with op.batch_alter_table('consent_documents', schema=None) as batch_op:
        for column in ('family', 'revision', 'language', 'status'):
            batch_op.alter_column(column, nullable=False)
        batch_op.create_index(batch_op.f('ix_consent_documents_family'), ['family'], unique=False)

    # --- organizations and lab teams -------------------------------------------------------------
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('may_author_consent', sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('org_role', sa.Enum('owner', 'editor', 'viewer', name='orgrole', native_enum=False, length=20), nullable=True))
        batch_op.add_column(sa.Column('email_verified_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
    # every lab member so far could do everything: they become their lab's owners
    op.execute("UPDATE users SET org_role = 'owner' WHERE role = 'requester'")
    # accounts made before addresses were confirmed keep working: they are not asked after the fact
    op.execute("UPDATE users SET email_verified_at = created_at")

    # --- admin console: the audit log filtered by who acted ------------------------------------------
    op.create_index(op.f('ix_audit_events_actor_id'), 'audit_events', ['actor_id'], unique=False)




def downgrade() -> None:
    # --- admin console ---
    op.drop_index(op.f('ix_audit_events_actor_id'), table_name='audit_events')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('deleted_at')
        batch_op.drop_column('email_verified_at')
        batch_op.drop_column('org_role')

    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_column('may_author_consent')

    with op.batch_alter_table('consent_documents', schema=None) as batch_op:
        batch_op.drop_constraint('fk_consent_documents_organization_id_organizations', type_='foreignkey')
        batch_op.drop_constraint('fk_consent_documents_created_by_users', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_consent_documents_family'))
        batch_op.drop_column('published_at')
        batch_op.drop_column('created_by')
        batch_op.drop_column('organization_id')
        batch_op.drop_column('status')
        batch_op.drop_column('language')
        batch_op.drop_column('revision')
        batch_op.drop_column('family')

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('max_clips_per_worker')
        batch_op.drop_column('deadline_at')

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_user_unread')
        batch_op.drop_index(batch_op.f('ix_notifications_user_id'))

    op.drop_table('notifications')
    with op.batch_alter_table('account_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_tokens_user_id'))

    op.drop_table('account_tokens')

