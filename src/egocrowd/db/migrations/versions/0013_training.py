"""Training (issue #15): qualifications with practice and test items, workers' attempts, and what a
campaign asks of its workers (a qualification, a minimum recording level).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('training_qualifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=True),
    sa.Column('pass_mark', sa.Integer(), nullable=False),
    sa.Column('test_items', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('cooldown_hours', sa.Integer(), nullable=False),
    sa.Column('sample_clip_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name='fk_training_qualifications_organization_id'),
    sa.ForeignKeyConstraint(['sample_clip_id'], ['clips.id'], name='fk_training_qualifications_sample_clip_id'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name='fk_training_qualifications_created_by'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slug')
    )
    with op.batch_alter_table('training_qualifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_training_qualifications_organization_id'), ['organization_id'], unique=False)

    op.create_table('training_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('qualification_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('use', sa.String(length=10), nullable=False),
    sa.Column('clip_id', sa.Integer(), nullable=True),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['qualification_id'], ['training_qualifications.id'], name='fk_training_items_qualification_id'),
    sa.ForeignKeyConstraint(['clip_id'], ['clips.id'], name='fk_training_items_clip_id'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('training_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_training_items_qualification_id'), ['qualification_id'], unique=False)

    op.create_table('training_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('qualification_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('items', sa.JSON(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('score', sa.Double(), nullable=True),
    sa.Column('passed', sa.Boolean(), nullable=True),
    sa.ForeignKeyConstraint(['qualification_id'], ['training_qualifications.id'], name='fk_training_attempts_qualification_id'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name='fk_training_attempts_user_id'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('training_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_training_attempts_qualification_id'), ['qualification_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_training_attempts_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('required_qualification', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('min_level', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('min_level')
        batch_op.drop_column('required_qualification')
    with op.batch_alter_table('training_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_training_attempts_user_id'))
        batch_op.drop_index(batch_op.f('ix_training_attempts_qualification_id'))
    op.drop_table('training_attempts')
    with op.batch_alter_table('training_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_training_items_qualification_id'))
    op.drop_table('training_items')
    with op.batch_alter_table('training_qualifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_training_qualifications_organization_id'))
    op.drop_table('training_qualifications')
