"""Why a run stopped, which executor runs it, the node pools, and the usage ledger:
``runs.stop_cause``, ``runs.executor``, ``nodes.pool`` and the ``usage_records`` table.

Existing rows: a stopping or ended run's cause is read once from the words of its
``stop_reason`` (the only form earlier revisions kept); every run so far ran on the local
executor, so every node belongs to its pool, ``local``; every ended run gets its usage
record, in the order the runs ended.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAGE = 2000  # runs read per backfill step

# stop_reason prefixes earlier revisions wrote, and the cause each meant
_CAUSES = (
    ("preempted%", "preempted"),
    ("cancelled%", "cancelled"),
    ("time limit%", "time_limit"),
    ("task % failed; stopping the gang", "gang_failed"),
)

_runs = sa.table(
    "runs",
    sa.column("run_id", sa.String()),
    sa.column("job_id", sa.BigInteger()),
    sa.column("phase", sa.String()),
    sa.column("flavor", sa.String()),
    sa.column("started_at", sa.Double()),
    sa.column("ended_at", sa.Double()),
    sa.column("stop_reason", sa.String()),
    sa.column("stop_cause", sa.String()),
)
_jobs = sa.table(
    "jobs",
    sa.column("id", sa.BigInteger()),
    sa.column("tenant", sa.String()),
    sa.column("user", sa.String()),
    sa.column("queue", sa.String()),
)
_allocations = sa.table(
    "allocations",
    sa.column("run_id", sa.String()),
    sa.column("gpu_milli_per_device", sa.Integer()),
    sa.column("devices", sa.JSON()),
    sa.column("cpu_milli", sa.Integer()),
    sa.column("memory_mib", sa.Integer()),
)
_usage = sa.table(
    "usage_records",
    sa.column("job_id", sa.BigInteger()),
    sa.column("run_id", sa.String()),
    sa.column("tenant", sa.String()),
    sa.column("user", sa.String()),
    sa.column("queue", sa.String()),
    sa.column("flavor", sa.String()),
    sa.column("started_at", sa.Double()),
    sa.column("ended_at", sa.Double()),
    sa.column("gpu_milli", sa.Integer()),
    sa.column("cpu_milli", sa.Integer()),
    sa.column("memory_mib", sa.Integer()),
)


def _big_id() -> sa.types.TypeEngine[int]:
    # 64-bit ids on PostgreSQL; SQLite needs exactly INTEGER for a rowid (autoincrementing) key.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _backfill_causes(conn: sa.Connection) -> None:
    for pattern, cause in _CAUSES:
        conn.execute(
            sa.update(_runs)
            .where(_runs.c.stop_reason.like(pattern), _runs.c.stop_cause.is_(None))
            .values(stop_cause=cause)
        )


def _backfill_usage(conn: sa.Connection) -> None:
    """One usage record per ended run, oldest end first, a page of runs at a time."""
    after: tuple[float, str] | None = None
    while True:
        query = (
            sa.select(
                _runs.c.run_id,
                _runs.c.job_id,
                _runs.c.flavor,
                _runs.c.started_at,
                _runs.c.ended_at,
                _jobs.c.tenant,
                _jobs.c.user,
                _jobs.c.queue,
            )
            .join(_jobs, _jobs.c.id == _runs.c.job_id)
            .where(_runs.c.phase == "ended")
            .order_by(_runs.c.ended_at, _runs.c.run_id)
            .limit(_PAGE)
        )
        if after is not None:
            query = query.where(
                sa.or_(
                    _runs.c.ended_at > after[0],
                    sa.and_(_runs.c.ended_at == after[0], _runs.c.run_id > after[1]),
                )
            )
        page = conn.execute(query).all()
        if not page:
            return
        held = _held(conn, [row.run_id for row in page])
        rows: list[dict[str, Any]] = [
            {
                "job_id": row.job_id,
                "run_id": row.run_id,
                "tenant": row.tenant,
                "user": row.user,
                "queue": row.queue,
                "flavor": row.flavor,
                "started_at": row.started_at,
                "ended_at": row.ended_at,
                **held.get(row.run_id, {"gpu_milli": 0, "cpu_milli": 0, "memory_mib": 0}),
            }
            for row in page
        ]
        conn.execute(sa.insert(_usage), rows)
        after = (page[-1].ended_at, page[-1].run_id)


def _held(conn: sa.Connection, run_ids: list[str]) -> dict[str, dict[str, int]]:
    """What each run's allocations held, summed over its tasks."""
    out: dict[str, dict[str, int]] = {}
    rows = conn.execute(sa.select(_allocations).where(_allocations.c.run_id.in_(run_ids)))
    for row in rows:
        total = out.setdefault(row.run_id, {"gpu_milli": 0, "cpu_milli": 0, "memory_mib": 0})
        total["gpu_milli"] += row.gpu_milli_per_device * len(row.devices)
        total["cpu_milli"] += row.cpu_milli
        total["memory_mib"] += row.memory_mib
    return out


def upgrade() -> None:
    """Add the columns and the ledger, then fill them from the stored runs."""
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("pool", sa.String(), nullable=False, server_default="local"))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("stop_cause", sa.String(), nullable=True))
        batch.add_column(sa.Column("executor", sa.String(), nullable=False, server_default="local"))
    op.create_table(
        "usage_records",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("job_id", _big_id(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("user", sa.String(), nullable=False),
        sa.Column("queue", sa.String(), nullable=False),
        sa.Column("flavor", sa.String(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("ended_at", sa.Double(), nullable=False),
        sa.Column("gpu_milli", sa.Integer(), nullable=False),
        sa.Column("cpu_milli", sa.Integer(), nullable=False),
        sa.Column("memory_mib", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_usage_records_job_id_jobs")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_usage_records_run_id_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
        sa.UniqueConstraint("run_id", name=op.f("uq_usage_records_run_id")),
    )
    op.create_index("ix_usage_records_ended_at", "usage_records", ["ended_at"])
    conn = op.get_bind()
    _backfill_causes(conn)
    _backfill_usage(conn)


def downgrade() -> None:
    """Drop the ledger and the columns (``stop_reason`` still says why each run stopped)."""
    op.drop_index("ix_usage_records_ended_at", table_name="usage_records")
    op.drop_table("usage_records")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("executor")
        batch.drop_column("stop_cause")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("pool")
