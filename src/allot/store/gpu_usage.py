"""What GPU telemetry keeps: one summary per run (``gpu_summaries``), replaced as the run's
samples come in, read per job oldest first."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select

from allot.control.records import GpuSummary
from allot.store.tables import GpuSummaryRow


def record(conn: Connection, summary: GpuSummary) -> None:
    """Store ``summary``, replacing the run's earlier one (delete then insert: the same SQL on
    SQLite and PostgreSQL, in the caller's transaction)."""
    conn.execute(delete(GpuSummaryRow).where(GpuSummaryRow.run_id == summary.run_id))
    conn.execute(
        insert(GpuSummaryRow),
        {
            "run_id": summary.run_id,
            "job_id": summary.job_id,
            "node": summary.node,
            "devices": list(summary.devices),
            "samples": summary.samples,
            "first_at": summary.first_at,
            "last_at": summary.last_at,
            "mean_utilization": summary.mean_utilization,
            "p95_utilization": summary.p95_utilization,
            "peak_memory_bytes": summary.peak_memory_bytes,
            "energy_joules": summary.energy_joules,
            "mean_sm_active": summary.mean_sm_active,
        },
    )


def _summary(row: Any) -> GpuSummary:
    return GpuSummary(
        row.run_id,
        row.job_id,
        row.node,
        tuple(row.devices),
        row.samples,
        row.first_at,
        row.last_at,
        row.mean_utilization,
        row.p95_utilization,
        row.peak_memory_bytes,
        row.energy_joules,
        row.mean_sm_active,
    )


def of_job(conn: Connection, job_id: int) -> list[GpuSummary]:
    """The job's summaries, oldest run first."""
    rows = conn.execute(
        select(GpuSummaryRow.__table__)
        .where(GpuSummaryRow.job_id == job_id)
        .order_by(GpuSummaryRow.first_at)
    )
    return [_summary(row) for row in rows]
