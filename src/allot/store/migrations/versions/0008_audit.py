"""The audit log: ``audit_log``, append-only, one row per state-changing request and per
scheduling decision (see ``allot.control.audit``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _big_id() -> sa.types.TypeEngine[int]:
    # 64-bit ids on PostgreSQL; SQLite needs exactly INTEGER for a rowid (autoincrementing) key.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the table and its indexes."""
    op.create_table(
        "audit_log",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("time", sa.Double(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("job_id", _big_id(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_actor_id", "audit_log", ["actor", "id"])
    op.create_index("ix_audit_log_tenant_id", "audit_log", ["tenant", "id"])
    op.create_index("ix_audit_log_job_id_id", "audit_log", ["job_id", "id"])
    op.create_index("ix_audit_log_time", "audit_log", ["time"])


def downgrade() -> None:
    """Drop the audit log."""
    op.drop_table("audit_log")
