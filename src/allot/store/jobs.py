"""Jobs: submission with idempotency keys, reads, hold/release and cancelling a pending job.

Every function runs inside the caller's transaction (``conn``) and appends the event of each
change it makes. ``submit`` is the hot path: one INSERT for the job, one for its ``tasks`` rows
and one for its event (and one for its ``job_dependencies`` rows, if it has any);
``submit_batch`` takes the same statements for a whole batch, plus one to name a new array.

Idempotency: ``(submitted_by, idempotency_key)`` is unique, so two concurrent submits with one
key cannot both insert; the loser gets an IntegrityError, and the caller re-reads the winner
with ``find_by_key`` in a new transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from allot.control.ports import ConflictError, NotFoundError
from allot.control.records import NEW_ARRAY, JobFilter, JobRecord, NewJob
from allot.core.model import JobState
from allot.store import dependencies, events
from allot.store.reads import (
    dependencies_json,
    job_record_by_id,
    job_records,
    placement_json,
    profile_json,
    select_jobs,
    tasks_json,
)
from allot.store.tables import JobRow, TaskRow

_INSERT = insert(JobRow).returning(JobRow.id)
_INSERT_TASKS = insert(TaskRow)


def task_rows(job_id: int, job: NewJob) -> list[dict[str, int]]:
    """The ``tasks`` rows of a job, in task order."""
    return [
        {
            "job_id": job_id,
            "task_index": index,
            "gpu_milli": task.gpu_milli,
            "cpu_milli": task.cpu_milli,
            "memory_mib": task.memory_mib,
            "gpu_memory_mib": task.gpu_memory_mib,
        }
        for index, task in enumerate(job.tasks)
    ]


def _insert_tasks(conn: Connection, rows: list[dict[str, int]]) -> None:
    """Insert ``tasks`` rows in one statement (executed for every row at once)."""
    if rows:
        conn.execute(_INSERT_TASKS, rows)


def submitted_event(job_id: int, job: NewJob, *, at: float, actor: str) -> dict[str, Any]:
    """The ``submitted`` event of a new job (None -> pending)."""
    held = ", held" if job.held else ""
    return events.event_values(
        at=at,
        kind="submitted",
        job_id=job_id,
        from_state=None,
        to_state=JobState.PENDING.value,
        actor=actor,
        reason=f"submitted by {actor} to queue {job.queue}{held}",
        data={"queue": job.queue, "held": True} if job.held else {"queue": job.queue},
    )


def job_values(
    job: NewJob,
    *,
    at: float,
    actor: str,
    idempotency_key: str | None,
    request_hash: str | None,
    array_id: int | None = None,
) -> dict[str, Any]:
    """The column values of a newly submitted (pending) job."""
    return {
        "name": job.name,
        "tenant": job.tenant,
        "user": job.user,
        "queue": job.queue,
        "priority": job.priority,
        "tasks": tasks_json(job.tasks),
        "placement": placement_json(job),
        "flavors": list(job.flavors),
        "argv": list(job.launch.argv),
        "workdir": job.launch.workdir,
        "env": dict(job.launch.env),
        "runtime_estimate": job.runtime_estimate,
        "time_limit": job.time_limit,
        "checkpointable": job.checkpointable,
        "preemptible": job.preemptible,
        "held": job.held,
        "state": JobState.PENDING.value,
        "submit_time": at,
        "start_time": None,
        "end_time": None,
        "exit_code": None,
        "reason": "",
        "attained_service": 0.0,
        "run_count": 0,
        "current_run_id": None,
        "submitted_by": actor,
        "idempotency_key": idempotency_key,
        "request_hash": request_hash,
        "array_id": array_id,
        "dependencies": dependencies_json(job.after),
        "profile": profile_json(job.launch.profile),
    }


def submit(
    conn: Connection,
    job: NewJob,
    *,
    at: float,
    actor: str,
    idempotency_key: str | None,
    request_hash: str | None,
) -> JobRecord:
    """Insert a new pending job and its ``submitted`` event; raises IntegrityError when the
    actor already used the idempotency key."""
    values = job_values(
        job, at=at, actor=actor, idempotency_key=idempotency_key, request_hash=request_hash
    )
    job_id: int = conn.execute(_INSERT, values).scalar_one()
    _insert_tasks(conn, task_rows(job_id, job))
    dependencies.insert_rows(conn, [(job_id, job)])
    events.append(conn, submitted_event(job_id, job, at=at, actor=actor))
    return JobRecord(job_id, job, JobState.PENDING, at, held=job.held)


def submit_batch(
    conn: Connection,
    batch: list[NewJob],
    *,
    at: float,
    actor: str,
    idempotency_keys: list[str | None],
    request_hashes: list[str | None],
    array: int | None = None,
) -> list[tuple[JobRecord, bool]]:
    """``submit`` for many jobs in four statements: one lookup of every key, one multi-row
    insert of the new jobs (ids returned in order), one of all their tasks and one of their
    events (and one of their dependencies). A key already used answers with its job
    (ConflictError when the request hash differs). ``array``: see ``Store.submit_many``; a new
    array takes its first job's id (the stored one, for a retried batch)."""
    if array is not None and array != NEW_ARRAY:
        dependencies.check_array(conn, array)
    keys = [k for k in idempotency_keys if k is not None]
    known: dict[str, tuple[int, str | None]] = {}
    for first in range(0, len(keys), 500):  # stay under every database's parameter limit
        rows = conn.execute(
            select(JobRow.idempotency_key, JobRow.id, JobRow.request_hash).where(
                JobRow.submitted_by == actor, JobRow.idempotency_key.in_(keys[first : first + 500])
            )
        ).all()
        known.update({row.idempotency_key: (row.id, row.request_hash) for row in rows})
    fresh = [i for i, key in enumerate(idempotency_keys) if key is None or key not in known]
    values = [
        job_values(
            batch[i],
            at=at,
            actor=actor,
            idempotency_key=idempotency_keys[i],
            request_hash=request_hashes[i],
            array_id=None if array == NEW_ARRAY else array,
        )
        for i in fresh
    ]
    ids: list[int] = []
    if values:
        inserted = conn.execute(
            insert(JobRow).returning(JobRow.id, sort_by_parameter_order=True), values
        )
        ids = [row[0] for row in inserted]
        new = list(zip(fresh, ids, strict=True))
        _insert_tasks(conn, [row for i, job_id in new for row in task_rows(job_id, batch[i])])
        dependencies.insert_rows(conn, [(job_id, batch[i]) for i, job_id in new])
        events.append(
            conn, *(submitted_event(job_id, batch[i], at=at, actor=actor) for i, job_id in new)
        )
    created = dict(zip(fresh, ids, strict=True))  # index in the batch -> new job id
    array_id = None if array == NEW_ARRAY else array
    if array == NEW_ARRAY and batch:
        array_id = created.get(0) or known[idempotency_keys[0] or ""][0]
        dependencies.set_array(conn, ids, array_id)
    out: list[tuple[JobRecord, bool]] = []
    for i, job in enumerate(batch):
        if i in created:
            record = JobRecord(
                created[i], job, JobState.PENDING, at, held=job.held, array_id=array_id
            )
            out.append((record, True))
            continue
        key = idempotency_keys[i]
        assert key is not None
        job_id, digest = known[key]
        if digest != request_hashes[i]:
            raise ConflictError(
                f"idempotency key {key!r} was used for a different request (job {job_id});"
                " use a new key for a new job"
            )
        stored = job_record_by_id(conn, job_id)
        assert stored is not None  # its key was just read in this transaction
        out.append((stored, False))
    return out


def find_by_key(
    conn: Connection, actor: str, idempotency_key: str, request_hash: str | None
) -> JobRecord | None:
    """The job ``actor`` submitted with ``idempotency_key``, or None; raises ConflictError when
    it was submitted with another ``request_hash``."""
    row = conn.execute(
        select(JobRow.id, JobRow.request_hash).where(
            JobRow.submitted_by == actor, JobRow.idempotency_key == idempotency_key
        )
    ).one_or_none()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise ConflictError(
            f"idempotency key {idempotency_key!r} was used for a different request "
            f"(job {row.id}); use a new key for a new job"
        )
    return get(conn, row.id)


def get(conn: Connection, job_id: int) -> JobRecord:
    """The job with its current run; raises NotFoundError."""
    record = job_record_by_id(conn, job_id)
    if record is None:
        raise NotFoundError(f"job {job_id} does not exist")
    return record


def listed(conn: Connection, where: JobFilter) -> list[JobRecord]:
    """Jobs matching ``where``, newest first, at most ``where.limit`` below ``where.before``."""
    query = select_jobs()
    if where.states:
        query = query.where(JobRow.state.in_([s.value for s in where.states]))
    if where.queue is not None:
        query = query.where(JobRow.queue == where.queue)
    if where.user is not None:
        query = query.where(JobRow.user == where.user)
    if where.tenant is not None:
        query = query.where(JobRow.tenant == where.tenant)
    if where.tenants is not None:
        query = query.where(JobRow.tenant.in_(sorted(where.tenants)))
    if where.before is not None:
        query = query.where(JobRow.id < where.before)
    query = query.order_by(JobRow.id.desc()).limit(max(0, where.limit))
    return job_records(conn, conn.execute(query).all())


# Built once: the scheduling loop reads the pending and the running jobs every cycle.
_IN_STATE = {
    (state, held): (
        select_jobs().where(JobRow.state == state.value)
        if held
        else select_jobs().where(JobRow.state == state.value, JobRow.held.is_(False))
    ).order_by(JobRow.id)
    for state in JobState
    for held in (True, False)
}


def in_state(conn: Connection, state: JobState, *, include_held: bool = True) -> list[JobRecord]:
    """Every job in ``state``, oldest first, with its current run (held ones only when
    ``include_held``)."""
    return job_records(conn, conn.execute(_IN_STATE[state, include_held]).all())


def _locked_state(conn: Connection, job_id: int) -> tuple[JobState, bool]:
    """The job's state and held flag, its row locked until the transaction ends."""
    row = conn.execute(
        select(JobRow.state, JobRow.held).where(JobRow.id == job_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"job {job_id} does not exist")
    return JobState(row.state), row.held


def set_held(conn: Connection, job_id: int, held: bool, *, at: float, actor: str) -> JobRecord:
    """Hold or release a pending job (no change, no event, when it already is)."""
    state, was_held = _locked_state(conn, job_id)
    if state is not JobState.PENDING:
        verb = "held" if held else "released"
        raise ConflictError(f"job {job_id} is {state}; only a pending job can be {verb}")
    if was_held != held:
        conn.execute(update(JobRow).where(JobRow.id == job_id).values(held=held))
        events.append(
            conn,
            events.event_values(
                at=at,
                kind="held" if held else "released",
                job_id=job_id,
                from_state=state.value,
                to_state=state.value,
                actor=actor,
                reason=f"{'held' if held else 'released'} by {actor}",
            ),
        )
    return get(conn, job_id)


def cancel_pending(
    conn: Connection, job_id: int, *, at: float, actor: str, reason: str
) -> JobRecord:
    """Cancel a pending job; raises ConflictError when it is not pending."""
    reason = reason or f"cancelled by {actor}"
    state, _ = _locked_state(conn, job_id)
    if state is not JobState.PENDING:
        raise ConflictError(
            f"job {job_id} is {state}, not pending; only a pending job is cancelled at once"
        )
    conn.execute(
        update(JobRow)
        .where(JobRow.id == job_id)
        .values(state=JobState.CANCELLED.value, end_time=at, reason=reason)
    )
    events.append(
        conn,
        events.event_values(
            at=at,
            kind=JobState.CANCELLED.value,
            job_id=job_id,
            from_state=state.value,
            to_state=JobState.CANCELLED.value,
            actor=actor,
            reason=reason,
        ),
    )
    return get(conn, job_id)


def pending_counts(conn: Connection) -> dict[tuple[str, str, bool], int]:
    """Pending jobs per (queue, tenant, held), counted by the database (metrics)."""
    rows = conn.execute(
        select(JobRow.queue, JobRow.tenant, JobRow.held, func.count())
        .where(JobRow.state == JobState.PENDING.value)
        .group_by(JobRow.queue, JobRow.tenant, JobRow.held)
    )
    return {(queue, tenant, bool(held)): count for queue, tenant, held, count in rows}
