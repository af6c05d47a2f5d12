"""A covering index for usage reports: ``usage_records`` by tenant, flavor, user and queue
with the interval and the amounts, so a report sums the ledger in one pass over the index in
group order (no sort), instead of visiting the table row by row.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = [
    "tenant",
    "flavor",
    "user",
    "queue",
    "ended_at",
    "started_at",
    "gpu_milli",
    "cpu_milli",
    "memory_mib",
]


def upgrade() -> None:
    """Add the index."""
    op.create_index("ix_usage_records_report", "usage_records", COLUMNS)


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_usage_records_report", table_name="usage_records")
