"""What profiling keeps: node checks (append-only; a node's latest is its highest id) and
the step times of job classes per flavor (one row per pair; a measurement is never replaced
by an estimate)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from allot.control.records import FlavorSpeed, NodeCheckRecord
from allot.store.tables import FlavorSpeedRow, NodeCheckRow

CHECKS = NodeCheckRow.__table__
SPEEDS = FlavorSpeedRow.__table__
MEASURED = "measured"


def _check(row: Any) -> NodeCheckRecord:
    return NodeCheckRecord(
        row.id,
        row.node,
        row.flavor,
        row.checked_at,
        row.healthy,
        row.summary,
        row.device,
        tuple(row.results),
        row.drained,
    )


def add_check(conn: Connection, check: NodeCheckRecord) -> NodeCheckRecord:
    """Insert ``check``; returns it with its id."""
    check_id: int = conn.execute(
        insert(NodeCheckRow).returning(NodeCheckRow.id),
        {
            "node": check.node,
            "flavor": check.flavor,
            "checked_at": check.checked_at,
            "healthy": check.healthy,
            "summary": check.summary,
            "device": check.device,
            "results": [dict(r) for r in check.results],
            "drained": check.drained,
        },
    ).scalar_one()
    return NodeCheckRecord(
        check_id,
        check.node,
        check.flavor,
        check.checked_at,
        check.healthy,
        check.summary,
        check.device,
        tuple(check.results),
        check.drained,
    )


def latest_checks(conn: Connection) -> dict[str, NodeCheckRecord]:
    """Each node's latest check."""
    newest = select(func.max(NodeCheckRow.id)).group_by(NodeCheckRow.node).scalar_subquery()
    rows = conn.execute(select(CHECKS).where(NodeCheckRow.id.in_(newest)))
    return {row.node: _check(row) for row in rows}


def record_speeds(conn: Connection, speeds: Sequence[FlavorSpeed]) -> None:
    """Insert or replace each (job class, flavor)'s step time; estimates never replace a
    measurement."""
    for speed in speeds:
        values = {
            "step_seconds": speed.step_seconds,
            "basis": speed.basis,
            "job_id": speed.job_id,
            "recorded_at": speed.recorded_at,
        }
        where = (FlavorSpeedRow.job_class == speed.job_class) & (
            FlavorSpeedRow.flavor == speed.flavor
        )
        stored = conn.execute(
            select(FlavorSpeedRow.basis).where(where).with_for_update()
        ).scalar_one_or_none()
        if stored is None:
            conn.execute(
                insert(FlavorSpeedRow),
                {"job_class": speed.job_class, "flavor": speed.flavor, **values},
            )
        elif not (stored == MEASURED and speed.basis != MEASURED):
            conn.execute(update(FlavorSpeedRow).where(where).values(**values))


def speeds(conn: Connection, job_class: str | None) -> list[FlavorSpeed]:
    """Stored step times, of one job class when given, by class and flavor."""
    query = select(SPEEDS).order_by(FlavorSpeedRow.job_class, FlavorSpeedRow.flavor)
    if job_class is not None:
        query = query.where(FlavorSpeedRow.job_class == job_class)
    return [
        FlavorSpeed(r.job_class, r.flavor, r.step_seconds, r.basis, r.job_id, r.recorded_at)
        for r in conn.execute(query)
    ]
