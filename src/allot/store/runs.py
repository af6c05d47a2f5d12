"""Runs: the intent to start a job, launch confirmation, stop requests and the end of a run.

Invariants kept here, each inside the caller's transaction:
- ``begin_run`` moves a job with one conditional UPDATE (still pending, not held, no current
  run); its row count decides, so of two schedulers racing for one job exactly one wins;
- a job is ``running`` exactly while ``current_run_id`` names a run that has not ended;
- a run's phases only move forward: starting -> running -> stopping -> ended (starting may
  skip straight to stopping or ended);
- ending a run releases its allocations, records each task's exit code on its allocation
  (when the executor reported them, one per task), adds the GPU-seconds it held to the
  job's attained service (2D attained service, as in Tiresias: GPUs held x seconds), and
  appends its usage record (the ledger fair share and metering read) and adds it to the
  ledger's daily rollup (``allot.store.rollup``);
- events carry job states; the run's phase goes in ``data`` (see ``events``). A run that has
  not ended belongs to a running job, so phase-only events read running -> running.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, func, insert, select, update

from allot.control.ports import ConflictError, NotFoundError
from allot.control.records import JobRecord, RunPhase, RunRecord, StopCause, UsageRecord
from allot.core.model import MILLI_PER_GPU, JobState, TransitionError, transition
from allot.store import events, rollup
from allot.store.reads import (
    ALLOCATIONS,
    JOB_COLUMNS,
    RUNS,
    allocations_by_run,
    job_record,
    run_record,
)
from allot.store.tables import AllocationRow, JobRow, RunRow, UsageRow

# Statements built once: the loop runs these for every job, and building a statement (and
# its cache key) costs more than running it. Bound parameter names differ from column names,
# which SQLAlchemy keeps for the SET clause.
_JOBS = cast(Table, JobRow.__table__)
_RUNS = cast(Table, RunRow.__table__)
_ALLOCATIONS = cast(Table, AllocationRow.__table__)
_INSERT_RUN = insert(_RUNS)
_INSERT_USAGE = insert(cast(Table, UsageRow.__table__))
_INSERT_ALLOCATION = insert(_ALLOCATIONS)
_CLAIM_JOB = (
    update(_JOBS)
    .where(
        _JOBS.c.id == bindparam("claimed_job"),
        _JOBS.c.state == JobState.PENDING.value,
        _JOBS.c.held.is_(False),
        _JOBS.c.current_run_id.is_(None),
    )
    .values(
        state=JobState.RUNNING.value,
        current_run_id=bindparam("claiming_run"),
        run_count=_JOBS.c.run_count + 1,
        start_time=func.coalesce(_JOBS.c.start_time, bindparam("claimed_at")),
        reason=bindparam("claim_reason"),
    )
    .returning(_JOBS.c.tasks, _JOBS.c.run_count)
)
_LOCKED_RUN = select(_RUNS).where(_RUNS.c.run_id == bindparam("locked_run")).with_for_update()
_RUN_RUNNING = (
    update(_RUNS)
    .where(_RUNS.c.run_id == bindparam("confirmed_run"), _RUNS.c.phase == RunPhase.STARTING.value)
    .values(phase=RunPhase.RUNNING.value)
    .returning(_RUNS.c.job_id)
)
_LOCKED_JOB = (
    select(
        _JOBS.c.state,
        _JOBS.c.tasks,
        _JOBS.c.attained_service,
        _JOBS.c.current_run_id,
        _JOBS.c.tenant,
        _JOBS.c.user,
        _JOBS.c.queue,
    )
    .where(_JOBS.c.id == bindparam("locked_job"))
    .with_for_update()
)
_RUN_ENDED = (
    update(_RUNS)
    .where(_RUNS.c.run_id == bindparam("ending_run"))
    .values(
        phase=RunPhase.ENDED.value,
        ended_at=bindparam("ending_at"),
        exit_code=bindparam("ending_code"),
    )
)
_END_TASK = (
    update(_ALLOCATIONS)
    .where(
        _ALLOCATIONS.c.run_id == bindparam("ended_run"),
        _ALLOCATIONS.c.task_index == bindparam("ended_task"),
    )
    .values(released=True, exit_code=bindparam("task_exit_code"))
)
_RELEASE_ALL = (
    update(_ALLOCATIONS)
    .where(_ALLOCATIONS.c.run_id == bindparam("released_run"))
    .values(released=True)
)
# The job's new state, returning its record's columns (a job that ended has no current run).
_JOB_ENDED = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("ending_job"))
    .values(
        state=bindparam("ending_state"),
        current_run_id=None,
        attained_service=bindparam("ending_service"),
        reason=bindparam("ending_reason"),
        end_time=bindparam("ending_time"),
        exit_code=bindparam("ending_exit_code"),
    )
    .returning(*JOB_COLUMNS)
)
_JOB_REQUEUED = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("ending_job"))
    .values(
        state=bindparam("ending_state"),
        current_run_id=None,
        attained_service=bindparam("ending_service"),
        reason=bindparam("ending_reason"),
    )
    .returning(*JOB_COLUMNS)
)
# The loop reads the usage ledger from its last record on, every cycle.
_USAGE = cast(Table, UsageRow.__table__)
_USAGE_AFTER = select(_USAGE).where(_USAGE.c.id > bindparam("after_id")).order_by(_USAGE.c.id)
_USAGE_ENDED_AFTER = _USAGE_AFTER.where(_USAGE.c.ended_at > bindparam("ended_after"))
_ENDINGS = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.PENDING)


def begin_run(conn: Connection, run: RunRecord, *, actor: str) -> bool:
    """Record ``run`` as starting and move its job to running; False (nothing changed) when
    the job is not pending, is held, or already has a run."""
    nodes = ", ".join(dict.fromkeys(p.node for p in run.placement))
    reason = f"placed on {nodes} ({run.flavor})"
    claimed = conn.execute(
        _CLAIM_JOB,
        {
            "claimed_job": run.job_id,
            "claiming_run": run.run_id,
            "claimed_at": run.started_at,
            "claim_reason": reason,
        },
    ).one_or_none()
    if claimed is None:
        return False
    tasks = claimed.tasks  # the JSON copy of the tasks rows, read with the claim
    if len(run.placement) != len(tasks):
        raise ConflictError(
            f"run {run.run_id}: placement has {len(run.placement)} tasks, "
            f"job {run.job_id} has {len(tasks)}"
        )
    conn.execute(
        _INSERT_RUN,
        {
            "run_id": run.run_id,
            "job_id": run.job_id,
            "attempt": claimed.run_count,
            "phase": RunPhase.STARTING.value,
            "flavor": run.flavor,
            "started_at": run.started_at,
            "stop_by": None,
            "stop_cause": None,
            "stop_reason": None,
            "ended_at": None,
            "exit_code": None,
            "executor": run.executor,
        },
    )
    conn.execute(
        _INSERT_ALLOCATION,
        [
            {
                "run_id": run.run_id,
                "task_index": index,
                "node": placement.node,
                "devices": list(placement.devices),
                "gpu_milli_per_device": placement.gpu_milli_per_device,
                "cpu_milli": task["cpu_milli"],
                "memory_mib": task["memory_mib"],
                "released": False,
                "exit_code": None,
            }
            for index, (placement, task) in enumerate(zip(run.placement, tasks, strict=True))
        ],
    )
    events.append(
        conn,
        events.event_values(
            at=run.started_at,
            kind="starting",
            job_id=run.job_id,
            from_state=JobState.PENDING.value,
            to_state=JobState.RUNNING.value,
            actor=actor,
            reason=reason,
            data={
                "run_id": run.run_id,
                "phase": RunPhase.STARTING.value,
                "flavor": run.flavor,
                "attempt": claimed.run_count,
            },
        ),
    )
    return True


def _locked_run(conn: Connection, run_id: str) -> Any:
    """The run's row (without placement), locked until the transaction ends."""
    row = conn.execute(_LOCKED_RUN, {"locked_run": run_id}).one_or_none()
    if row is None:
        raise NotFoundError(f"run {run_id} does not exist")
    return row


def mark_running(conn: Connection, run_id: str, *, at: float) -> None:
    """Starting -> running; no change for a run already running or stopping."""
    # One conditional UPDATE in the usual case (the run is starting); the run's row decides
    # the others.
    job_id = conn.execute(_RUN_RUNNING, {"confirmed_run": run_id}).scalar_one_or_none()
    if job_id is None:
        phase = RunPhase(_locked_run(conn, run_id).phase)
        if phase is RunPhase.ENDED:
            raise ConflictError(f"run {run_id} has ended; it cannot be marked running")
        return
    events.append(
        conn,
        events.event_values(
            at=at,
            kind="running",
            job_id=job_id,
            from_state=JobState.RUNNING.value,
            to_state=JobState.RUNNING.value,
            actor="executor",
            reason="launch confirmed",
            data={
                "run_id": run_id,
                "phase": RunPhase.RUNNING.value,
                "from_phase": RunPhase.STARTING.value,
            },
        ),
    )


def request_stop(
    conn: Connection,
    run_id: str,
    *,
    stop_by: float,
    cause: StopCause,
    reason: str,
    at: float,
    actor: str,
) -> None:
    """Starting or running -> stopping, for ``cause``; no change for a run already stopping
    or ended."""
    reason = reason or f"stop requested by {actor}"
    row = _locked_run(conn, run_id)
    phase = RunPhase(row.phase)
    if phase in (RunPhase.STOPPING, RunPhase.ENDED):
        return
    conn.execute(
        update(RunRow)
        .where(RunRow.run_id == run_id)
        .values(
            phase=RunPhase.STOPPING.value,
            stop_by=stop_by,
            stop_cause=cause.value,
            stop_reason=reason,
        )
    )
    _stopping_event(conn, row.job_id, run_id, phase, stop_by, reason=reason, at=at, actor=actor)


def restate_stop(
    conn: Connection, run_id: str, *, cause: StopCause, reason: str, at: float, actor: str
) -> None:
    """A stopping run's new stop cause and reason (the deadline stays), with a ``stopping``
    event saying so; no change for a run that is not stopping or already stops for it."""
    row = _locked_run(conn, run_id)
    if RunPhase(row.phase) is not RunPhase.STOPPING or row.stop_cause == cause.value:
        return
    conn.execute(
        update(RunRow)
        .where(RunRow.run_id == run_id)
        .values(stop_cause=cause.value, stop_reason=reason)
    )
    _stopping_event(
        conn,
        row.job_id,
        run_id,
        RunPhase.STOPPING,
        row.stop_by,
        reason=reason,
        at=at,
        actor=actor,
        replaces=row.stop_reason,
    )


def _stopping_event(
    conn: Connection,
    job_id: int,
    run_id: str,
    from_phase: RunPhase,
    stop_by: float | None,
    *,
    reason: str,
    at: float,
    actor: str,
    **data: object,
) -> None:
    """The ``stopping`` event of a run (the job stays running while its run stops)."""
    events.append(
        conn,
        events.event_values(
            at=at,
            kind="stopping",
            job_id=job_id,
            from_state=JobState.RUNNING.value,
            to_state=JobState.RUNNING.value,
            actor=actor,
            reason=reason,
            data={
                "run_id": run_id,
                "phase": RunPhase.STOPPING.value,
                "from_phase": from_phase.value,
                "stop_by": stop_by,
                **data,
            },
        ),
    )


def _checked(job_id: int, current: JobState, target: JobState) -> None:
    """Raise ConflictError, naming both states, unless the job may go ``current -> target``."""
    try:
        transition(current, target)
    except TransitionError as err:
        detail = str(err).removeprefix("job state: ")
        raise ConflictError(f"job {job_id}: {detail}") from err


def end_run(
    conn: Connection,
    run_id: str,
    *,
    outcome: JobState,
    exit_code: int | None,
    reason: str,
    at: float,
    actor: str,
    exit_codes: Sequence[int | None] = (),
) -> JobRecord:
    """End the run and move its job to ``outcome`` (pending: requeue after preemption).
    ``exit_codes``, when given, has one entry per task (None: that task reported none)."""
    if outcome not in _ENDINGS:
        allowed = ", ".join(s.value for s in _ENDINGS)
        raise ValueError(f"outcome: must be one of {allowed} (pending requeues), got {outcome}")
    reason = reason or f"run ended: {outcome}"
    run = _locked_run(conn, run_id)
    job = conn.execute(_LOCKED_JOB, {"locked_job": run.job_id}).one()
    state = JobState(job.state)
    if RunPhase(run.phase) is RunPhase.ENDED:
        raise ConflictError(
            f"run {run_id} has already ended; job {run.job_id} is {state} and cannot go "
            f"from {state} to {outcome} by ending it again"
        )
    steps = (
        [(state, JobState.PREEMPTED), (JobState.PREEMPTED, JobState.PENDING)]
        if outcome is JobState.PENDING
        else [(state, outcome)]
    )
    for current, target in steps:
        _checked(run.job_id, current, target)
    if job.current_run_id != run_id:
        raise ConflictError(
            f"run {run_id} is not the current run of job {run.job_id} "
            f"(that is {job.current_run_id})"
        )
    if exit_codes and len(exit_codes) != len(job.tasks):
        raise ValueError(
            f"exit_codes: run {run_id} has {len(job.tasks)} tasks, got {len(exit_codes)} exit codes"
        )

    gpus = sum(task["gpu_milli"] for task in job.tasks) / MILLI_PER_GPU
    held_for = max(0.0, at - run.started_at)
    conn.execute(_RUN_ENDED, {"ending_run": run_id, "ending_at": at, "ending_code": exit_code})
    if exit_codes:
        conn.execute(
            _END_TASK,
            [
                {"ended_run": run_id, "ended_task": index, "task_exit_code": code}
                for index, code in enumerate(exit_codes)
            ],
        )
    else:
        conn.execute(_RELEASE_ALL, {"released_run": run_id})
    job_values: dict[str, Any] = {
        "ending_job": run.job_id,
        "ending_state": outcome.value,
        "ending_service": job.attained_service + gpus * held_for,
        "ending_reason": reason,
    }
    if outcome is JobState.PENDING:
        ended = conn.execute(_JOB_REQUEUED, job_values).one()
    else:
        job_values.update(ending_time=at, ending_exit_code=exit_code)
        ended = conn.execute(_JOB_ENDED, job_values).one()
    record = {
        "job_id": run.job_id,
        "run_id": run_id,
        "tenant": job.tenant,
        "user": job.user,
        "queue": job.queue,
        "flavor": run.flavor,
        "started_at": run.started_at,
        "ended_at": max(at, run.started_at),
        "gpu_milli": sum(task["gpu_milli"] for task in job.tasks),
        "cpu_milli": sum(task["cpu_milli"] for task in job.tasks),
        "memory_mib": sum(task["memory_mib"] for task in job.tasks),
    }
    conn.execute(_INSERT_USAGE, record)
    rollup.add(conn, [record])  # same transaction: the rollup never misses a record

    data: dict[str, Any] = {
        "run_id": run_id,
        "phase": RunPhase.ENDED.value,
        "from_phase": run.phase,
        "exit_code": exit_code,
        "gpu_seconds": gpus * held_for,
    }
    if exit_codes:
        data["exit_codes"] = list(exit_codes)
    events.append(
        conn,
        *(
            events.event_values(
                at=at,
                kind="requeued" if target is JobState.PENDING else target.value,
                job_id=run.job_id,
                from_state=current.value,
                to_state=target.value,
                actor=actor,
                reason=reason,
                data=data,
            )
            for current, target in steps
        ),
    )
    return job_record(ended, None)


def runs_of(conn: Connection, job_id: int) -> list[RunRecord]:
    """Every run of the job, oldest first, with its placement."""
    rows = conn.execute(select(RUNS).where(RunRow.job_id == job_id).order_by(RunRow.attempt))
    runs = rows.all()
    if not runs:
        return []
    allocations = conn.execute(
        select(ALLOCATIONS)
        .join(RunRow, RunRow.run_id == AllocationRow.run_id)
        .where(RunRow.job_id == job_id)
        .order_by(AllocationRow.run_id, AllocationRow.task_index)
    )
    placed = allocations_by_run(allocations)
    return [run_record(row, placed.get(row.run_id, ())) for row in runs]


def usage(
    conn: Connection, *, after: int = 0, ended_after: float | None = None
) -> list[UsageRecord]:
    """Usage records with an id above ``after`` (and, when given, that ended after
    ``ended_after``), in the order they were written."""
    if ended_after is None:
        rows = conn.execute(_USAGE_AFTER, {"after_id": after})
    else:
        rows = conn.execute(_USAGE_ENDED_AFTER, {"after_id": after, "ended_after": ended_after})
    return [
        UsageRecord(
            row.id,
            row.job_id,
            row.run_id,
            row.tenant,
            row.user,
            row.queue,
            row.flavor,
            row.started_at,
            row.ended_at,
            row.gpu_milli,
            row.cpu_milli,
            row.memory_mib,
        )
        for row in rows
    ]
