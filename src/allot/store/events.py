"""The append-only event log: one row per state change, written in the transaction that makes
the change, never updated.

Kinds and what ``from_state``/``to_state`` hold:
- job transitions carry job states: ``submitted`` (None -> pending), ``starting`` (pending ->
  running), ``succeeded``/``failed``/``cancelled`` (-> that state), ``preempted`` (running ->
  preempted) followed by ``requeued`` (preempted -> pending), ``held``/``released`` (pending ->
  pending);
- run phases carry run phases: ``running`` (starting -> running), ``stopping`` (starting or
  running -> stopping); ``data["run_id"]`` names the run;
- ``node_state`` carries node states, with ``data["node"]``; ``quotas_saved`` and
  ``token_added`` carry none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, insert, select

from allot.control.records import EventRecord
from allot.store.tables import EventRow

EVENTS = EventRow.__table__
_INSERT = insert(EventRow)


def event_values(
    *,
    at: float,
    kind: str,
    job_id: int | None,
    from_state: str | None,
    to_state: str | None,
    actor: str,
    reason: str = "",
    data: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """The column values of one event row."""
    return {
        "time": at,
        "job_id": job_id,
        "kind": kind,
        "from_state": from_state,
        "to_state": to_state,
        "actor": actor,
        "reason": reason,
        "data": dict(data) if data else {},
    }


def append(conn: Connection, *events: dict[str, Any]) -> None:
    """Append event rows (built by ``event_values``) in the caller's transaction."""
    if events:
        conn.execute(_INSERT, list(events) if len(events) > 1 else events[0])


def read(conn: Connection, job_id: int | None, after: int, limit: int) -> list[EventRecord]:
    """Events with an id above ``after``, oldest first, optionally of one job."""
    query = select(EVENTS).where(EventRow.id > after)
    if job_id is not None:
        query = query.where(EventRow.job_id == job_id)
    query = query.order_by(EventRow.id).limit(max(0, limit))
    return [
        EventRecord(
            id=row.id,
            time=row.time,
            kind=row.kind,
            job_id=row.job_id,
            from_state=row.from_state,
            to_state=row.to_state,
            actor=row.actor,
            reason=row.reason,
            data=row.data,
        )
        for row in conn.execute(query)
    ]
