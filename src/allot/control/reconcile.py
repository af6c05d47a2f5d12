"""Reconcile: bring the store in line with what the executor reports about each active run.

Run at every cycle and at start-up (when it is the crash recovery). The executors are asked
about the runs whose exits they pushed and the runs still starting, and, at start-up and every
so often (the loop's safety net for a lost push), about every run; the others are checked
against their deadlines only. For each job with a run that has not ended:

- starting, with tasks no runner has claimed: the server died between recording the intent
  and launching; launch again (launch is idempotent per run id and each task is claimed
  atomically by its runner, so this never starts a task twice).
- starting or running, at least one task alive: make sure the run is marked running; if a task
  of a gang already failed, stop the others (a gang lives and dies together).
- every task exited: end the run: succeeded when all exited 0; failed otherwise ("task 1
  exited with code 3", "time limit of 60 s exceeded"); if the run was stopping, the stop's
  reason decides: cancelled, or requeued after a preemption, or failed for a time limit.
- a task vanished without reporting (killed from outside, machine rebooted): failed, with the
  executor's detail.
- stopping past its deadline: SIGKILL.
- running past its time limit (when the executor has not already enforced it): stop it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, replace

from allot.control.ports import Clock, RunState, RunStatus, Store, TaskLaunch
from allot.control.records import JobRecord, RunPhase, RunRecord, StopCause
from allot.control.registry import ExecutorRegistry
from allot.core.model import JobState

log = logging.getLogger("allot.control")
ACTOR = "scheduler"


@dataclass(slots=True)
class Observation:
    """What one reconcile pass did, for logs and tests. ``active``: the jobs with a run that
    has not ended, as the pass left them (derived from what it read and what it changed,
    so the caller need not read them again), or None when it changed what it cannot
    derive (a stop) and the caller must read them."""

    ended: int = 0
    relaunched: int = 0
    killed: int = 0
    stopped: int = 0
    active: list[JobRecord] | None = None


def task_launches(record: JobRecord, run: RunRecord) -> list[TaskLaunch]:
    """The executor's view of every task of ``run``."""
    return [
        TaskLaunch(
            run.run_id,
            record.id,
            index,
            len(run.placement),
            where,
            record.job.launch,
            record.job.time_limit,
            record.job.tasks[index] if index < len(record.job.tasks) else None,
            record.job.tasks[index].gpu_memory_mib if index < len(record.job.tasks) else 0,
        )
        for index, where in enumerate(run.placement)
    ]


def _outcome(run: RunRecord, status: RunStatus, limit: float | None) -> tuple[JobState, str]:
    """The job state a finished run leads to, and why."""
    reason = run.stop_reason or ""
    stopping = run.phase is RunPhase.STOPPING
    if stopping and run.stop_cause is StopCause.PREEMPTED:
        return JobState.PENDING, reason
    if stopping and run.stop_cause is StopCause.CANCELLED:
        return JobState.CANCELLED, reason
    if status.timed_out or run.stop_cause is StopCause.TIME_LIMIT:
        return JobState.FAILED, f"time limit of {limit or 0:g} s exceeded"
    if status.state is RunState.LOST:
        return JobState.FAILED, status.detail or "a task process disappeared without reporting"
    codes = status.exit_codes
    for index, code in enumerate(codes):
        if code is None or code == 0:
            continue
        what = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return JobState.FAILED, f"task {index} {what}" if len(codes) > 1 else what
    if run.phase is RunPhase.STOPPING:
        return JobState.FAILED, reason or "stopped"
    return JobState.SUCCEEDED, "all tasks exited with code 0"


def _first_exit(status: RunStatus) -> int | None:
    nonzero = [c for c in status.exit_codes if c not in (None, 0)]
    if nonzero:
        return nonzero[0]
    known = [c for c in status.exit_codes if c is not None]
    return known[0] if known else None


def reconcile(
    store: Store,
    executors: ExecutorRegistry,
    clock: Clock,
    grace: float,
    *,
    only: Collection[str] | None = None,
) -> Observation:
    """One pass over every active run; see the module docstring. With ``only``, the
    executors are asked about those runs (the ones whose exits they pushed) and about runs
    still starting; the others are checked against their deadlines alone."""
    seen = Observation()
    read = store.active_jobs()
    active = [(r, r.run) for r in read if r.run is not None]
    ended: set[int] = set()
    confirmed: set[int] = set()
    asked = [
        run
        for _, run in active
        if only is None or run.run_id in only or run.phase is RunPhase.STARTING
    ]
    statuses = executors.statuses(asked) if asked else {}
    for record, run in active:
        now = clock.now()
        status = statuses.get(run.run_id)
        if status is None:
            _check_deadlines(store, executors, record, run, now, grace, seen)
            continue
        if run.phase is RunPhase.STARTING and (
            status.state is RunState.UNKNOWN or status.unclaimed
        ):
            log.info("job %d: launching run %s recorded before a restart", record.id, run.run_id)
            executors.launch(run, task_launches(record, run))
            seen.relaunched += 1
            continue
        if status.state in (RunState.EXITED, RunState.LOST) or (
            status.state is RunState.UNKNOWN and run.phase is not RunPhase.STARTING
        ):
            if status.state is RunState.UNKNOWN:
                status = RunStatus(
                    run.run_id, RunState.LOST, detail="the executor has no record of the run"
                )
            outcome, reason = _outcome(run, status, record.job.time_limit)
            store.end_run(
                run.run_id,
                outcome=outcome,
                exit_code=_first_exit(status),
                reason=reason,
                at=now,
                actor="executor",
                exit_codes=status.exit_codes,
            )
            seen.ended += 1
            ended.add(record.id)
            continue
        if run.phase is RunPhase.STARTING:
            store.mark_running(run.run_id, at=now)
            confirmed.add(record.id)
        failed = [i for i, c in enumerate(status.exit_codes) if c not in (None, 0)]
        if failed and run.phase is not RunPhase.STOPPING:
            stop(
                store,
                executors,
                run,
                cause=StopCause.GANG_FAILED,
                reason=f"task {failed[0]} failed; stopping the gang",
                at=now,
                grace=grace,
            )
            seen.stopped += 1
            continue
        _check_deadlines(store, executors, record, run, now, grace, seen)
    if not seen.stopped:
        seen.active = [_confirmed(r) if r.id in confirmed else r for r in read if r.id not in ended]
    return seen


def _confirmed(record: JobRecord) -> JobRecord:
    """``record`` as it reads once its starting run was marked running."""
    assert record.run is not None
    return replace(record, run=replace(record.run, phase=RunPhase.RUNNING))


def _check_deadlines(
    store: Store,
    executors: ExecutorRegistry,
    record: JobRecord,
    run: RunRecord,
    now: float,
    grace: float,
    seen: Observation,
) -> None:
    """SIGKILL a stopping run past its deadline; stop a running one past its time limit."""
    if run.phase is RunPhase.STOPPING:
        if run.stop_by is not None and now >= run.stop_by:
            executors.signal(run, kill=True)
            seen.killed += 1
        return
    limit = record.job.time_limit
    if run.phase is RunPhase.RUNNING and limit is not None and now - run.started_at > limit + grace:
        # The runner enforces limits itself; this catches a runner that could not.
        reason = f"time limit of {limit:g} s"
        stop(store, executors, run, cause=StopCause.TIME_LIMIT, reason=reason, at=now, grace=grace)
        seen.stopped += 1


def stop(
    store: Store,
    executors: ExecutorRegistry,
    run: RunRecord,
    *,
    cause: StopCause,
    reason: str,
    at: float,
    grace: float,
    actor: str = ACTOR,
) -> None:
    """Record that ``run`` must be gone by ``at + grace``, and why, and send SIGTERM."""
    store.request_stop(
        run.run_id, stop_by=at + grace, cause=cause, reason=reason, at=at, actor=actor
    )
    executors.signal(run, kill=False)
