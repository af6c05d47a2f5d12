"""Dependencies and arrays in the store: the ``job_dependencies`` rows of new jobs, array
membership, how far the jobs a dependency names have got, and cancelling the pending jobs
whose dependencies can never be met.

Every function runs inside the caller's transaction. ``progress`` is what the scheduling loop
reads every cycle: one query per 2,000 ids named, whatever the number of pending jobs or array
members (the members are counted by the database, grouped by state).

Invariant: ``array_id = id`` marks an array's first member, whose id names the array; naming it
as a dependency means every member (``array_id`` equal to it), naming any other job means that
job alone.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, literal, select, union_all, update

from allot.control.ports import NotFoundError
from allot.control.records import DependencyProgress, NewJob
from allot.core.model import JobState
from allot.store import events
from allot.store.tables import DependencyRow, JobRow

_CHUNK = 2000  # ids per query: twice as many parameters, far below every database's limit
_INSERT = insert(DependencyRow)
_UNSUCCESSFUL = (JobState.FAILED.value, JobState.CANCELLED.value)
_CANCEL = (
    update(JobRow)
    .where(JobRow.id == bindparam("job"), JobRow.state == JobState.PENDING.value)
    .values(state=JobState.CANCELLED.value, end_time=bindparam("at"), reason=bindparam("why"))
)


def insert_rows(conn: Connection, jobs: Iterable[tuple[int, NewJob]]) -> None:
    """The ``job_dependencies`` rows of newly inserted jobs, in one statement."""
    rows = [
        {"job_id": job_id, "depends_on": d.job_id, "condition": d.condition.value}
        for job_id, job in jobs
        for d in job.after
    ]
    if rows:
        conn.execute(_INSERT, rows)


def check_array(conn: Connection, array_id: int) -> None:
    """Raise NotFoundError unless ``array_id`` names an array."""
    found = conn.execute(
        select(JobRow.id).where(JobRow.id == array_id, JobRow.array_id == array_id)
    ).first()
    if found is None:
        raise NotFoundError(f"array {array_id} does not exist")


def set_array(conn: Connection, job_ids: list[int], array_id: int) -> None:
    """Make the jobs members of ``array_id``."""
    for first in range(0, len(job_ids), _CHUNK):
        chunk = job_ids[first : first + _CHUNK]
        conn.execute(update(JobRow).where(JobRow.id.in_(chunk)).values(array_id=array_id))


def progress(conn: Connection, job_ids: Collection[int]) -> dict[int, DependencyProgress]:
    """How far each named job, or each named array's members, have got (see the module
    docstring); ids of no job are left out."""
    ids = sorted(set(job_ids))
    counts: dict[int, dict[str, tuple[int, int]]] = {}
    arrays: set[int] = set()
    for first in range(0, len(ids), _CHUNK):
        chunk = ids[first : first + _CHUNK]
        alone = select(JobRow.id, JobRow.state, literal(1), JobRow.id, literal(False)).where(
            JobRow.id.in_(chunk),
            (JobRow.array_id.is_(None)) | (JobRow.array_id != JobRow.id),
        )
        members = (
            select(JobRow.array_id, JobRow.state, func.count(), func.min(JobRow.id), literal(True))
            .where(JobRow.array_id.in_(chunk))
            .group_by(JobRow.array_id, JobRow.state)
        )
        rows: Sequence[Any] = conn.execute(union_all(alone, members)).all()
        for target, state, count, lowest, is_array in rows:
            counts.setdefault(int(target), {})[str(state)] = (int(count), int(lowest))
            if is_array:
                arrays.add(int(target))
    return {
        target: _progress(target, target in arrays, by_state) for target, by_state in counts.items()
    }


def _progress(
    target: int, array: bool, by_state: Mapping[str, tuple[int, int]]
) -> DependencyProgress:
    unsuccessful = [
        (lowest, JobState(state))
        for state, (_, lowest) in by_state.items()
        if state in _UNSUCCESSFUL
    ]
    return DependencyProgress(
        job_id=target,
        array=array,
        members=sum(count for count, _ in by_state.values()),
        succeeded=by_state.get(JobState.SUCCEEDED.value, (0, 0))[0],
        unsuccessful=sum(by_state[state][0] for state in _UNSUCCESSFUL if state in by_state),
        first_unsuccessful=min(unsuccessful) if unsuccessful else None,
    )


def cancel_many(
    conn: Connection, reasons: Mapping[int, str], *, at: float, actor: str
) -> list[int]:
    """Cancel each job of ``reasons`` still pending (locking those rows first), each with its
    reason and a ``cancelled`` event; returns the ids cancelled."""
    ids = sorted(reasons)
    pending: list[int] = []
    for first in range(0, len(ids), _CHUNK):
        chunk = ids[first : first + _CHUNK]
        rows = conn.execute(
            select(JobRow.id)
            .where(JobRow.id.in_(chunk), JobRow.state == JobState.PENDING.value)
            .with_for_update()
        )
        pending.extend(row.id for row in rows)
    if not pending:
        return []
    values: list[dict[str, Any]] = [{"job": i, "at": at, "why": reasons[i]} for i in pending]
    conn.execute(_CANCEL, values)
    events.append(
        conn,
        *(
            events.event_values(
                at=at,
                kind=JobState.CANCELLED.value,
                job_id=job_id,
                from_state=JobState.PENDING.value,
                to_state=JobState.CANCELLED.value,
                actor=actor,
                reason=reasons[job_id],
            )
            for job_id in pending
        ),
    )
    return pending
