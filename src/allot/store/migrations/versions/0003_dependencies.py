"""Job dependencies and job arrays: a ``job_dependencies`` table (the job, the job or array it
waits for, the condition), and ``jobs.array_id`` and ``jobs.dependencies`` (the same list as
JSON, for bulk reads).

Stored jobs had neither: they keep NULL in both new columns (no array, no dependencies), so
nothing is backfilled. The columns are added and dropped in place (``ALTER TABLE``), never by
copying ``jobs``: on SQLite a copy would have to drop ``jobs``, which the foreign keys of
``tasks``, ``runs`` and ``events`` forbid. Dropping a column in place needs SQLite 3.35.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _big_id() -> sa.types.TypeEngine[int]:
    # 64-bit ids on PostgreSQL; SQLite needs exactly INTEGER for a rowid (autoincrementing) key.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Add ``jobs.array_id`` (indexed), ``jobs.dependencies`` and ``job_dependencies``."""
    op.add_column("jobs", sa.Column("array_id", _big_id(), nullable=True))
    op.add_column("jobs", sa.Column("dependencies", sa.JSON(none_as_null=True), nullable=True))
    op.create_index(op.f("ix_jobs_array_id"), "jobs", ["array_id"], unique=False)
    op.create_table(
        "job_dependencies",
        sa.Column("job_id", _big_id(), autoincrement=False, nullable=False),
        sa.Column("depends_on", _big_id(), autoincrement=False, nullable=False),
        sa.Column("condition", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_dependencies_job_id_jobs")
        ),
        sa.ForeignKeyConstraint(
            ["depends_on"], ["jobs.id"], name=op.f("fk_job_dependencies_depends_on_jobs")
        ),
        sa.PrimaryKeyConstraint("job_id", "depends_on", name=op.f("pk_job_dependencies")),
    )
    op.create_index(
        op.f("ix_job_dependencies_depends_on"), "job_dependencies", ["depends_on"], unique=False
    )


def downgrade() -> None:
    """Drop ``job_dependencies`` and the two ``jobs`` columns (dependencies are lost)."""
    op.drop_index(op.f("ix_job_dependencies_depends_on"), table_name="job_dependencies")
    op.drop_table("job_dependencies")
    op.drop_index(op.f("ix_jobs_array_id"), table_name="jobs")
    op.execute("ALTER TABLE jobs DROP COLUMN dependencies")
    op.execute("ALTER TABLE jobs DROP COLUMN array_id")
