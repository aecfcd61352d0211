"""Long sessions logged on the phone (issue #19): each uploaded egocrowd.bench log, accepted and
scored, or rejected with the reader's words and its raw bytes kept (egocrowd.evaluations.sessions).

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op


revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('field_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('evaluation_id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.Integer(), nullable=False),
    sa.Column('upload_id', sa.String(length=64), nullable=False),
    sa.Column('session_id', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('policy_id', sa.Integer(), nullable=True),
    sa.Column('environment', sa.String(length=100), nullable=True),
    sa.Column('people', sa.JSON(), nullable=False),
    sa.Column('events', sa.Integer(), nullable=False),
    sa.Column('duration_s', sa.Double(), nullable=True),
    sa.Column('blob_sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('error_line', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('accepted', 'rejected')", name='ck_field_sessions_status'),
    sa.ForeignKeyConstraint(['evaluation_id'], ['evaluations.id'], name='fk_field_sessions_evaluation_id'),
    sa.ForeignKeyConstraint(['policy_id'], ['eval_policies.id'], name='fk_field_sessions_policy_id'),
    sa.ForeignKeyConstraint(['worker_id'], ['users.id'], name='fk_field_sessions_worker_id'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('upload_id', name='uq_field_sessions_upload_id')
    )
    with op.batch_alter_table('field_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_field_sessions_evaluation_id'), ['evaluation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_field_sessions_worker_id'), ['worker_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('field_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_field_sessions_worker_id'))
        batch_op.drop_index(batch_op.f('ix_field_sessions_evaluation_id'))

    op.drop_table('field_sessions')
