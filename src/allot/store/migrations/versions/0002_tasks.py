"""Tasks as rows, and how each task of a run ended: a ``tasks`` table (one row per task of a
job, backfilled from ``jobs.tasks``) and ``allocations.exit_code``.

``jobs.tasks`` stays as it was (written at submission, the same list as the rows), so code and
databases at revision 0001 keep reading it. Ended single-task runs get their task's exit code
from ``runs.exit_code``; a gang's per-task codes were never stored, so they stay NULL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAGE = 2000  # jobs read per backfill step

_jobs = sa.table("jobs", sa.column("id", sa.BigInteger()), sa.column("tasks", sa.JSON()))
_tasks = sa.table(
    "tasks",
    sa.column("job_id", sa.BigInteger()),
    sa.column("task_index", sa.Integer()),
    sa.column("gpu_milli", sa.Integer()),
    sa.column("cpu_milli", sa.Integer()),
    sa.column("memory_mib", sa.Integer()),
)
_runs = sa.table(
    "runs",
    sa.column("run_id", sa.String()),
    sa.column("phase", sa.String()),
    sa.column("exit_code", sa.Integer()),
)
_allocations = sa.table(
    "allocations", sa.column("run_id", sa.String()), sa.column("exit_code", sa.Integer())
)


def _big_id() -> sa.types.TypeEngine[int]:
    # 64-bit ids on PostgreSQL; SQLite needs exactly INTEGER for a rowid (autoincrementing) key.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _backfill_tasks(conn: sa.Connection) -> None:
    """One ``tasks`` row per entry of every job's ``jobs.tasks``, a page of jobs at a time."""
    after: int | None = None
    while True:
        query = sa.select(_jobs.c.id, _jobs.c.tasks).order_by(_jobs.c.id).limit(_PAGE)
        if after is not None:
            query = query.where(_jobs.c.id > after)
        page = conn.execute(query).all()
        if not page:
            return
        rows: list[dict[str, Any]] = [
            {
                "job_id": job_id,
                "task_index": index,
                "gpu_milli": task["gpu_milli"],
                "cpu_milli": task["cpu_milli"],
                "memory_mib": task["memory_mib"],
            }
            for job_id, tasks in page
            for index, task in enumerate(tasks)
        ]
        if rows:
            conn.execute(sa.insert(_tasks), rows)
        after = page[-1].id


def _backfill_exit_codes(conn: sa.Connection) -> None:
    """A single-task run that ended gives its one task the run's exit code."""
    single = (
        sa.select(_allocations.c.run_id)
        .group_by(_allocations.c.run_id)
        .having(sa.func.count() == 1)
    )
    code = (
        sa.select(_runs.c.exit_code)
        .where(_runs.c.run_id == _allocations.c.run_id, _runs.c.phase == "ended")
        .scalar_subquery()
    )
    conn.execute(
        sa.update(_allocations).where(_allocations.c.run_id.in_(single)).values(exit_code=code)
    )


def upgrade() -> None:
    """Create ``tasks`` and ``allocations.exit_code``, then fill them from the stored jobs and
    runs."""
    op.create_table(
        "tasks",
        sa.Column("job_id", _big_id(), autoincrement=False, nullable=False),
        sa.Column("task_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("gpu_milli", sa.Integer(), nullable=False),
        sa.Column("cpu_milli", sa.Integer(), nullable=False),
        sa.Column("memory_mib", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_tasks_job_id_jobs")),
        sa.PrimaryKeyConstraint("job_id", "task_index", name=op.f("pk_tasks")),
    )
    with op.batch_alter_table("allocations") as batch:
        batch.add_column(sa.Column("exit_code", sa.Integer(), nullable=True))
    conn = op.get_bind()
    _backfill_tasks(conn)
    _backfill_exit_codes(conn)


def downgrade() -> None:
    """Drop ``allocations.exit_code`` and ``tasks`` (``jobs.tasks`` still holds every task)."""
    with op.batch_alter_table("allocations") as batch:
        batch.drop_column("exit_code")
    op.drop_table("tasks")
