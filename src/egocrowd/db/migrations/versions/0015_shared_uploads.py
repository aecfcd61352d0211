"""Uploads shared by several servers (issue #20, deliverable 2): one row per tus upload, its bytes
as parts in the object store (egocrowd.uploads.shared).

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op


revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('shared_uploads',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('owner', sa.String(length=100), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('offset', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('record', sa.JSON(), nullable=False),
    sa.Column('parts', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('shared_uploads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shared_uploads_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_shared_uploads_owner'), ['owner'], unique=False)
        batch_op.create_index(batch_op.f('ix_shared_uploads_state'), ['state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('shared_uploads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shared_uploads_state'))
        batch_op.drop_index(batch_op.f('ix_shared_uploads_owner'))
        batch_op.drop_index(batch_op.f('ix_shared_uploads_expires_at'))

    op.drop_table('shared_uploads')
