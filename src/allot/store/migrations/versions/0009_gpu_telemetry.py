"""GPU telemetry: ``gpu_summaries``, one row per run (see ``allot.observe.telemetry``), and
each queue's ``idle_timeout`` (seconds a run's GPUs may stay idle; NULL: never released).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the table and its index."""
    op.create_table(
        "gpu_summaries",
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.Double(), nullable=False),
        sa.Column("last_at", sa.Double(), nullable=False),
        sa.Column("mean_utilization", sa.Double(), nullable=False),
        sa.Column("p95_utilization", sa.Double(), nullable=False),
        sa.Column("peak_memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("energy_joules", sa.Double(), nullable=False),
        sa.Column("mean_sm_active", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_gpu_summaries")),
    )
    op.create_index("ix_gpu_summaries_job_id", "gpu_summaries", ["job_id"])
    with op.batch_alter_table("queues") as batch:
        batch.add_column(sa.Column("idle_timeout", sa.Double(), nullable=True))


def downgrade() -> None:
    """Drop the table and the column."""
    with op.batch_alter_table("queues") as batch:
        batch.drop_column("idle_timeout")
    op.drop_index("ix_gpu_summaries_job_id", table_name="gpu_summaries")
    op.drop_table("gpu_summaries")
