"""Pay for long field sessions and for redaction review (docs/pay.md): an evaluation's rate per hour
of an accepted field session and its cap in hours per session; each accepted session's pay, fixed
when it was accepted; who first marked a clip's redaction reviewed, and when (the reviewer paid).

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_hour_cents", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("session_max_hours", sa.Integer(), server_default="2", nullable=False))
    with op.batch_alter_table("field_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pay_cents", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("redaction_reviewed_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("redaction_reviewed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key("fk_clips_redaction_reviewed_by", "users", ["redaction_reviewed_by"], ["id"])
        batch_op.create_index(batch_op.f("ix_clips_redaction_reviewed_by"), ["redaction_reviewed_by"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clips_redaction_reviewed_by"))
        batch_op.drop_constraint("fk_clips_redaction_reviewed_by", type_="foreignkey")
        batch_op.drop_column("redaction_reviewed_at")
        batch_op.drop_column("redaction_reviewed_by")
    with op.batch_alter_table("field_sessions", schema=None) as batch_op:
        batch_op.drop_column("pay_cents")
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_column("session_max_hours")
        batch_op.drop_column("session_hour_cents")
