"""Battle pages (issue #19): what each blind slot of a battle did (a simulated run, or the mark that
a physical robot ran) and the code the lab's robot operator resolves to a policy.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op


revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("battles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rollouts", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("operator_code", sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f("ix_battles_operator_code"), ["operator_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("battles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_battles_operator_code"))
        batch_op.drop_column("operator_code")
        batch_op.drop_column("rollouts")
