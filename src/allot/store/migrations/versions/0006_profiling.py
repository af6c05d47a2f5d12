"""Profiling: a job's profiling request (``jobs.profile``), the results of node checks
(``node_checks``) and the per-flavor step times of job classes (``flavor_speeds``).

Existing jobs were not profiled: their ``profile`` is NULL.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _big_id() -> sa.types.TypeEngine[int]:
    # 64-bit ids on PostgreSQL; SQLite needs exactly INTEGER for a rowid (autoincrementing) key.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Add the column and the two tables."""
    # A plain ADD COLUMN: a batch copy of ``jobs`` would trip the foreign keys pointing at it.
    op.add_column("jobs", sa.Column("profile", sa.JSON(none_as_null=True), nullable=True))
    op.create_table(
        "node_checks",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("flavor", sa.String(), nullable=False),
        sa.Column("checked_at", sa.Double(), nullable=False),
        sa.Column("healthy", sa.Boolean(), nullable=True),
        sa.Column("summary", sa.String(), nullable=False),
        sa.Column("device", sa.String(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("drained", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_checks")),
    )
    op.create_index("ix_node_checks_node_id", "node_checks", ["node", "id"])
    op.create_table(
        "flavor_speeds",
        sa.Column("job_class", sa.String(), nullable=False),
        sa.Column("flavor", sa.String(), nullable=False),
        sa.Column("step_seconds", sa.Double(), nullable=False),
        sa.Column("basis", sa.String(), nullable=False),
        sa.Column("job_id", _big_id(), nullable=True),
        sa.Column("recorded_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("job_class", "flavor", name=op.f("pk_flavor_speeds")),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("flavor_speeds")
    op.drop_index("ix_node_checks_node_id", table_name="node_checks")
    op.drop_table("node_checks")
    op.execute("ALTER TABLE jobs DROP COLUMN profile")
