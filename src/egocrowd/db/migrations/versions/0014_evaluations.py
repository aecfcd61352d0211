"""Robot evaluations (issue #19): a campaign's evaluation, its policies under test, and the blind A/B
battles its workers judge (egocrowd.evaluations).

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op


revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('evaluations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('tasks', sa.JSON(), nullable=False),
    sa.Column('environments', sa.JSON(), nullable=False),
    sa.Column('pay_cents', sa.Integer(), nullable=False),
    sa.Column('gold_rate', sa.Double(), nullable=False),
    sa.Column('gold', sa.JSON(), nullable=False),
    sa.Column('lease_minutes', sa.Integer(), nullable=False),
    sa.Column('max_open', sa.Integer(), nullable=False),
    sa.Column('alpha', sa.Double(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name='fk_evaluations_campaign_id'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name='fk_evaluations_created_by'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('campaign_id', name='uq_evaluations_campaign_id')
    )
    op.create_table('eval_policies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('evaluation_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('endpoint', sa.String(length=500), nullable=True),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['evaluation_id'], ['evaluations.id'], name='fk_eval_policies_evaluation_id'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('evaluation_id', 'name', name='uq_eval_policies_evaluation_id_name')
    )
    with op.batch_alter_table('eval_policies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_eval_policies_evaluation_id'), ['evaluation_id'], unique=False)

    op.create_table('battles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('evaluation_id', sa.Integer(), nullable=False),
    sa.Column('policy_a_id', sa.Integer(), nullable=False),
    sa.Column('policy_b_id', sa.Integer(), nullable=False),
    sa.Column('evaluator_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('active', 'judged', 'expired', 'released', name='battlestatus', native_enum=False, length=20), nullable=False),
    sa.Column('is_gold', sa.Boolean(), nullable=False),
    sa.Column('task', sa.String(length=200), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('judged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('instruction', sa.Text(), nullable=True),
    sa.Column('person', sa.String(length=100), nullable=True),
    sa.Column('environment', sa.String(length=100), nullable=True),
    sa.Column('verdict', sa.String(length=4), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.CheckConstraint("verdict IS NULL OR verdict IN ('a', 'b', 'tie')", name='ck_battles_verdict'),
    sa.CheckConstraint('policy_a_id <> policy_b_id', name='ck_battles_two_policies'),
    sa.ForeignKeyConstraint(['evaluation_id'], ['evaluations.id'], name='fk_battles_evaluation_id'),
    sa.ForeignKeyConstraint(['evaluator_id'], ['users.id'], name='fk_battles_evaluator_id'),
    sa.ForeignKeyConstraint(['policy_a_id'], ['eval_policies.id'], name='fk_battles_policy_a_id'),
    sa.ForeignKeyConstraint(['policy_b_id'], ['eval_policies.id'], name='fk_battles_policy_b_id'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('battles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_battles_evaluation_id'), ['evaluation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_battles_evaluator_id'), ['evaluator_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('battles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_battles_evaluator_id'))
        batch_op.drop_index(batch_op.f('ix_battles_evaluation_id'))

    op.drop_table('battles')
    with op.batch_alter_table('eval_policies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_eval_policies_evaluation_id'))

    op.drop_table('eval_policies')
    op.drop_table('evaluations')
