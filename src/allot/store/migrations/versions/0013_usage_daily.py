"""The usage ledger's daily rollup: ``usage_daily`` (per UTC day, tenant, user, queue and
flavor: what the records held within the day, and the amounts of those that held all of it),
filled from the records already written; and two indexes of ``usage_records`` for the pieces of
days a report reads from the records: by ``ended_at`` with every column a report sums (it
replaces the index on ``ended_at`` alone), and by ``started_at`` and ``ended_at``. See
``allot.metering.rollup``.

The day split is written out here, not imported, so this revision keeps doing what it did when
the code moves on.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DAY = 86400.0
KEY = ("day", "tenant", "user", "queue", "flavor")
AMOUNTS = (
    "gpu_milli_seconds",
    "cpu_milli_seconds",
    "memory_mib_seconds",
    "whole_gpu_milli",
    "whole_cpu_milli",
    "whole_memory_mib",
)
REPORTED = ["started_at", "tenant", "user", "queue", "flavor", "gpu_milli", "cpu_milli",
            "memory_mib"]  # fmt: skip
BATCH = 10_000


def _fill(conn: sa.Connection) -> None:
    records = sa.table(
        "usage_records",
        *(sa.column(name) for name in ("tenant", "user", "queue", "flavor")),
        *(sa.column(name) for name in ("started_at", "ended_at")),
        *(sa.column(name) for name in ("gpu_milli", "cpu_milli", "memory_mib")),
    )
    daily = sa.table("usage_daily", *(sa.column(name) for name in KEY + AMOUNTS))
    totals: dict[tuple[float, str, str, str, str], list[float]] = {}
    for r in conn.execute(sa.select(records).execution_options(yield_per=BATCH)):
        amounts = (r.gpu_milli, r.cpu_milli, r.memory_mib)
        if not r.ended_at > r.started_at:
            continue
        day = math.floor(r.started_at / DAY) * DAY
        while day < r.ended_at:
            following = day + DAY
            seconds = min(r.ended_at, following) - max(r.started_at, day)
            whole = r.started_at <= day and r.ended_at >= following
            if seconds > 0:
                slot = totals.setdefault(
                    (day, r.tenant, r.user, r.queue, r.flavor), [0.0, 0.0, 0.0, 0, 0, 0]
                )
                for i, amount in enumerate(amounts):
                    slot[i] += amount * seconds
                    if whole:
                        slot[3 + i] += amount
            day = following
    rows = [dict(zip(KEY + AMOUNTS, (*k, *v), strict=True)) for k, v in sorted(totals.items())]
    for start in range(0, len(rows), BATCH):
        conn.execute(sa.insert(daily), rows[start : start + BATCH])


def upgrade() -> None:
    """Create the table and the index, and roll up the ledger's records."""
    op.create_table(
        "usage_daily",
        sa.Column("day", sa.Double(), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("user", sa.String(), nullable=False),
        sa.Column("queue", sa.String(), nullable=False),
        sa.Column("flavor", sa.String(), nullable=False),
        sa.Column("gpu_milli_seconds", sa.Double(), nullable=False),
        sa.Column("cpu_milli_seconds", sa.Double(), nullable=False),
        sa.Column("memory_mib_seconds", sa.Double(), nullable=False),
        sa.Column("whole_gpu_milli", sa.BigInteger(), nullable=False),
        sa.Column("whole_cpu_milli", sa.BigInteger(), nullable=False),
        sa.Column("whole_memory_mib", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*KEY, name=op.f("pk_usage_daily")),
        sqlite_with_rowid=False,
    )
    op.drop_index("ix_usage_records_ended_at", table_name="usage_records")
    op.create_index("ix_usage_records_by_end", "usage_records", ["ended_at", *REPORTED])
    op.create_index("ix_usage_records_by_start", "usage_records", ["started_at", "ended_at"])
    _fill(op.get_bind())


def downgrade() -> None:
    """Drop the indexes and the table, and restore the index on ``ended_at``."""
    op.drop_index("ix_usage_records_by_start", table_name="usage_records")
    op.drop_index("ix_usage_records_by_end", table_name="usage_records")
    op.create_index("ix_usage_records_ended_at", "usage_records", ["ended_at"])
    op.drop_table("usage_daily")
