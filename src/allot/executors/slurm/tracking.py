"""Tracking: the status of one run from what its task directories say (the runner's
``exit.json`` of each task) and what Slurm says of its job (``squeue``). A pure function, so
every case (running, ended, purged, failed before a task reported, node failure, time limit)
is a unit test.

Rules, first match wins:
1. Slurm never heard of the run and it was never submitted (no job id recorded): unknown,
   every task unclaimed, so reconcile submits it again.
2. Every task has reported its exit: exited, with their codes, even while Slurm is still
   letting the job go (a successor pinned to its GPUs waits in Slurm until it has).
3. Slurm still holds the job (pending, running, completing): running. A gang shows the exit
   codes its tasks already reported, so a failed task stops the gang; a job waiting in Slurm
   says why in ``notes``.
4. Otherwise the job has ended (or Slurm forgot it after ``MinJobAge``): every task that
   reported has its own exit code; a task that did not takes Slurm's: a cancel or kill the
   signal, a time limit timed out; a node failure, or any other failure before a task
   reported (the runner could not start, say), makes the run lost with Slurm's state, reason
   and exit code in words; a job Slurm no longer knows is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from allot.control.ports import RunState, RunStatus
from allot.executors.slurm.parse import SlurmJob

NODE_FAILURES = frozenset({"NODE_FAIL", "BOOT_FAIL"})
SIGTERM_CODE = -15
# Ends that say how the tasks ended: a task without a report takes the job's exit code.
CLEAN_ENDS = frozenset({"COMPLETED", "CANCELLED", "TIMEOUT"})


@dataclass(frozen=True, slots=True)
class TaskExit:
    """What a task's runner reported when it ended."""

    exit_code: int | None
    timed_out: bool = False


def run_status(
    run_id: str,
    num_tasks: int,
    exits: Sequence[TaskExit | None],
    job: SlurmJob | None,
    *,
    job_id: int | None,
    claimed: Sequence[bool],
) -> RunStatus:
    """The run's status (rules in the module docstring). ``exits`` and ``claimed`` have one
    entry per task; ``job`` is the run's Slurm job (while Slurm holds it, else its final
    record, else None); ``job_id`` the one recorded at submission (None: not yet)."""
    codes = [e.exit_code if e is not None else None for e in exits]
    timed_out = any(e is not None and e.timed_out for e in exits)
    if job is None and job_id is None:
        unclaimed = tuple(i for i in range(num_tasks) if not claimed[i] and exits[i] is None)
        if not unclaimed and all(e is not None for e in exits):
            return RunStatus(run_id, RunState.EXITED, tuple(codes), timed_out)
        return RunStatus(
            run_id,
            RunState.UNKNOWN,
            detail=f"run {run_id} was never submitted to Slurm",
            unclaimed=unclaimed,
        )
    if all(e is not None for e in exits):
        return RunStatus(run_id, RunState.EXITED, tuple(codes), timed_out)
    if job is not None and job.active:
        notes: tuple[str, ...] = ()
        if job.state == "PENDING":
            why = f" ({job.reason})" if job.reason else ""
            notes = (f"Slurm job {job.job_id} is pending{why}",)
        shown = tuple(codes) if num_tasks > 1 else ()
        return RunStatus(run_id, RunState.RUNNING, shown, timed_out, notes=notes)
    missing = [i for i, e in enumerate(exits) if e is None]
    number = job.job_id if job is not None else job_id
    if job is None:
        detail = (
            f"Slurm job {number} ended and was forgotten before task {missing[0]} reported its exit"
        )
        return RunStatus(run_id, RunState.LOST, tuple(codes), timed_out, detail=detail)
    said = f"Slurm job {job.job_id} ended {job.state}" + (f" ({job.reason})" if job.reason else "")
    if job.state in NODE_FAILURES:
        where = ", ".join(job.nodes) or "its node"
        detail = f"node failure on {where}: {said}"
        return RunStatus(run_id, RunState.LOST, tuple(codes), timed_out, detail=detail)
    if job.state == "TIMEOUT":
        timed_out = True
    fallback = job.exit_code
    if job.state == "CANCELLED" and not fallback:
        fallback = SIGTERM_CODE
    filled = tuple((fallback or 0) if c is None else c for c in codes)
    if job.state in CLEAN_ENDS:
        return RunStatus(run_id, RunState.EXITED, filled, timed_out, detail=said)
    code = f", exit code {fallback}" if fallback is not None else ""
    detail = f"{said}{code}, before task {missing[0]} reported its exit"
    return RunStatus(run_id, RunState.LOST, filled, timed_out, detail=detail)
