"""Placement options: a job's flavor order, speeds and colocation (``jobs.placement``), and the
GPU memory a task asks for per device (``tasks.gpu_memory_mib``).

Existing jobs keep the defaults: ``placement`` NULL (flavors in order of preference, no
speeds, no colocation) and ``gpu_memory_mib`` 0 (no GPU memory asked for).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the two columns."""
    # Plain ADD COLUMNs: a batch copy of ``jobs`` would trip the foreign keys pointing at it.
    op.add_column("jobs", sa.Column("placement", sa.JSON(none_as_null=True), nullable=True))
    op.add_column(
        "tasks",
        sa.Column("gpu_memory_mib", sa.Integer(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    """Drop them again."""
    op.execute("ALTER TABLE tasks DROP COLUMN gpu_memory_mib")
    op.execute("ALTER TABLE jobs DROP COLUMN placement")
