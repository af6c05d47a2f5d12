"""The audit log: append-only rows (never updated or deleted), read newest first.

Each row holds the actor, tenant, time, action, target, outcome and reason of one
state-changing request or scheduling decision; the writers make sure none of them holds a
token or an environment variable's value.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, insert, select

from allot.control.records import AuditEntry, AuditFilter
from allot.store.tables import AuditRow

_INSERT = insert(AuditRow)


def append(conn: Connection, entries: Sequence[AuditEntry]) -> None:
    """Append ``entries`` in the caller's transaction (their ids are the store's)."""
    if entries:
        conn.execute(
            _INSERT,
            [
                {
                    "time": e.time,
                    "actor": e.actor,
                    "tenant": e.tenant,
                    "action": e.action,
                    "target": e.target,
                    "outcome": e.outcome,
                    "reason": e.reason,
                    "job_id": e.job_id,
                }
                for e in entries
            ],
        )


def read(conn: Connection, where: AuditFilter) -> list[AuditEntry]:
    """Entries matching ``where``, newest first."""
    query = select(AuditRow.__table__)
    if where.since is not None:
        query = query.where(AuditRow.time >= where.since)
    if where.actor is not None:
        query = query.where(AuditRow.actor == where.actor)
    if where.job_id is not None:
        query = query.where(AuditRow.job_id == where.job_id)
    if where.tenants is not None:
        query = query.where(AuditRow.tenant.in_(sorted(where.tenants)))
    if where.before is not None:
        query = query.where(AuditRow.id < where.before)
    query = query.order_by(AuditRow.id.desc()).limit(max(0, where.limit))
    return [
        AuditEntry(
            time=row.time,
            actor=row.actor,
            action=row.action,
            target=row.target,
            outcome=row.outcome,
            reason=row.reason,
            tenant=row.tenant,
            job_id=row.job_id,
            id=row.id,
        )
        for row in conn.execute(query)
    ]
