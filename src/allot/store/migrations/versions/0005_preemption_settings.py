"""Cohort weights and the minimum runtime per priority class: ``cohorts.weight`` (1 for the
cohorts saved before, the weight every cohort had) and ``quota_settings.min_runtime_by_class``
(empty: no class was exempt).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the two columns with the values that mean what the stored rows meant."""
    with op.batch_alter_table("cohorts") as batch:
        batch.add_column(sa.Column("weight", sa.Double(), nullable=False, server_default="1"))
    with op.batch_alter_table("quota_settings") as batch:
        batch.add_column(
            sa.Column("min_runtime_by_class", sa.JSON(), nullable=False, server_default="{}")
        )


def downgrade() -> None:
    """Drop them (saved weights and exemptions are lost)."""
    with op.batch_alter_table("quota_settings") as batch:
        batch.drop_column("min_runtime_by_class")
    with op.batch_alter_table("cohorts") as batch:
        batch.drop_column("weight")
