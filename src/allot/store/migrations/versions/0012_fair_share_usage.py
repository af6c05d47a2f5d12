"""What fair share counts: ``quota_settings.fair_share_usage`` (``gpu_seconds`` for the settings
saved before, what fair share counted then, or ``billed``).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the column with the value that means what the stored settings meant."""
    with op.batch_alter_table("quota_settings") as batch:
        batch.add_column(
            sa.Column("fair_share_usage", sa.String(), nullable=False, server_default="gpu_seconds")
        )


def downgrade() -> None:
    """Drop it (fair share counts GPU-seconds again)."""
    with op.batch_alter_table("quota_settings") as batch:
        batch.drop_column("fair_share_usage")
