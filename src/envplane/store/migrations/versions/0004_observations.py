"""The observations capability: observations with their actions, and per-pipeline settings.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "observations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(128), nullable=True, unique=True),
        sa.Column("pipeline", sa.String(128), nullable=False),
        sa.Column("process", sa.String(256), nullable=False),
        sa.Column("task_id", sa.String(128), nullable=False),
        sa.Column("run", sa.String(128), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=False),
        sa.Column("requested_memory", sa.BigInteger(), nullable=False),
        sa.Column("requested_cpus", sa.Float(), nullable=False),
        sa.Column("requested_time_ms", sa.BigInteger(), nullable=False),
        sa.Column("realtime_ms", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("cpu_percent", sa.Float(), nullable=False),
        sa.Column("peak_rss", sa.BigInteger(), nullable=False),
        sa.Column("peak_vmem", sa.BigInteger(), nullable=False),
        sa.Column("read_bytes", sa.BigInteger(), nullable=False),
        sa.Column("write_bytes", sa.BigInteger(), nullable=False),
        sa.Column("input_bytes", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("task_hash", sa.String(64), nullable=False),
        sa.Column("task_name", sa.String(512), nullable=False),
        sa.Column("submitted_at", sa.Float(), nullable=False),
        sa.Column("completed_at", sa.Float(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("action_kind", sa.String(24), nullable=False),
        sa.Column("action_memory", sa.BigInteger(), nullable=False),
        sa.Column("action_id", sa.String(36), nullable=False),
        sa.Column("action_json", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_observations_pipeline_process", "observations", ["pipeline", "process", "id"])
    op.create_table(
        "observation_pipelines",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("policy", sa.String(32), nullable=False),
        sa.Column("memory_cap", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("observation_pipelines")
    op.drop_index("ix_observations_pipeline_process", "observations")
    op.drop_table("observations")
