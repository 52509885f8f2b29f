"""Operations and events get a subject (kind + id), so every capability audits and streams
through them; retention_marks records how far each table was pruned.

Every row written before this revision is about an environment: its subject id is the
environment's ``workflow/node[@version]`` ("" for a cleanup, which is about all of them).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ENV_ID = (
    "CASE WHEN workflow_id = '' THEN '' ELSE workflow_id || '/' || node_id || "
    "CASE WHEN version_id = '' THEN '' ELSE '@' || version_id END END"
)


def upgrade() -> None:
    for table in ("operations", "events"):
        op.add_column(table, sa.Column("subject_kind", sa.String(32), nullable=False, server_default=""))
        op.add_column(table, sa.Column("subject_id", sa.String(256), nullable=False, server_default=""))
        op.execute(f"UPDATE {table} SET subject_kind = 'environment', subject_id = {_ENV_ID}")
    op.create_index("ix_operations_subject", "operations", ["subject_kind", "subject_id"])
    op.create_table(
        "retention_marks",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("pruned_through", sa.Integer(), nullable=False),
        sa.Column("pruned_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("retention_marks")
    op.drop_index("ix_operations_subject", "operations")
    for table in ("operations", "events"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("subject_id")
            batch.drop_column("subject_kind")
