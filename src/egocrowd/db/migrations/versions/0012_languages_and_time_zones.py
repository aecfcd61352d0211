"""Languages and time zones (issue #15): each person's language and zone, the language a consent
was signed in (its document's, backfilled), and campaigns' own translations.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("language", sa.String(16), nullable=True))
        batch.add_column(sa.Column("time_zone", sa.String(64), nullable=True))

    with op.batch_alter_table("consent_records") as batch:
        batch.add_column(sa.Column("language", sa.String(16), nullable=True))
    op.execute(
        "UPDATE consent_records SET language = COALESCE("
        "(SELECT d.language FROM consent_documents d WHERE d.id = consent_records.document_id), 'en')"
    )
    with op.batch_alter_table("consent_records") as batch:
        batch.alter_column("language", existing_type=sa.String(16), nullable=False)

    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("translations", sa.JSON(), nullable=True))
    op.execute("UPDATE campaigns SET translations = '{}'")
    with op.batch_alter_table("campaigns") as batch:
        batch.alter_column("translations", existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("translations")
    with op.batch_alter_table("consent_records") as batch:
        batch.drop_column("language")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("time_zone")
        batch.drop_column("language")
