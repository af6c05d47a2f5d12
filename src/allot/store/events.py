"""The append-only event log: one row per state change, written in the transaction that makes
the change, never updated.

Every event has a time, an actor and a reason in words (never empty). ``from_state`` and
``to_state`` are job states (``JobState`` values) or None, never run phases or node states:
- a transition of a job carries the two states: ``submitted`` (None -> pending), ``starting``
  (pending -> running), ``succeeded``/``failed``/``cancelled`` (running, or pending for a
  cancel, -> that state), ``preempted`` (running -> preempted) followed by ``requeued``
  (preempted -> pending);
- a change to a job that leaves its state as it was carries that state on both sides (None
  stays reserved for "no job yet" and "no job"): ``held``/``released`` (pending -> pending),
  and the run-phase changes ``running`` and ``stopping`` (running -> running); so the
  transitions of a job are exactly its events with ``from_state != to_state``;
- every event about a run names it in ``data["run_id"]`` and carries the run's phase after
  the event in ``data["phase"]`` (starting, running, stopping, ended) and, except on
  ``starting``, the phase before it in ``data["from_phase"]``;
- events about no job carry None on both sides: ``node_state`` (``data["node"]``, with the
  node's states in ``data["from_node_state"]``, None for a new node, and
  ``data["node_state"]``), ``quotas_saved`` and ``token_added``.
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
    reason: str,
    data: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """The column values of one event row; raises ValueError for an empty reason."""
    if not reason:
        raise ValueError(f"reason: event {kind!r} needs a reason in words, got an empty one")
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
