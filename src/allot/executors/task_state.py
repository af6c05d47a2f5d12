"""Task state: what the files in a task directory say about the task, and a run's status from
the states of its tasks.

Nomenclature: a task directory (``runs/<run_id>/task-<index>/``) holds ``spec.json`` (written by
the executor), ``claim``, ``pid.json`` and ``exit.json`` (written by the runner, see
``allot.executors.runner``), ``stop`` (written by the executor before it signals) and
``output.log``.

Rules for one task, first match wins:
1. ``exit.json`` -> exited, with its code;
2. ``pid.json`` and the runner alive (same pid, same start time, same boot, not a zombie) ->
   running; the runner gone but the task process it recorded alive -> running (orphaned:
   its exit code will never be known); both gone -> lost;
3. a claim without ``pid.json``, or a spec not claimed yet -> starting while the newest of
   the two files is at most ``STARTING_WINDOW`` seconds old (the runner is coming up), lost
   after that;
4. nothing -> unknown.

Rules for a run: unknown when no task was ever launched; running when any task is running or
starting; lost when any task is lost (or, some tasks having been launched, was never launched)
and none runs; exited when every task exited. A running run's ``notes`` carry what its running
tasks' notes say (a task that runs without its runner).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from allot.control.ports import RunState, RunStatus
from allot.executors.runner import (
    CLAIM_FILE,
    EXIT_FILE,
    PID_FILE,
    SPEC_FILE,
    boot_id,
    is_alive,
    read_json,
)

STARTING_WINDOW = 10.0  # seconds a runner may take to come up before its task counts as lost


class TaskPhase(StrEnum):
    """Where one task is, as far as its directory tells."""

    UNKNOWN = "unknown"
    STARTING = "starting"
    RUNNING = "running"
    EXITED = "exited"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class TaskState:
    """One task's phase; ``note`` says, in words, anything a user should know about it."""

    index: int
    phase: TaskPhase
    exit_code: int | None = None
    timed_out: bool = False
    terminated: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class Processes:
    """The runner and task process ids that ``pid.json`` records, with their start times."""

    runner_pid: int
    runner_start: int
    boot_id: str
    task_pid: int | None
    task_start: int

    @classmethod
    def read(cls, task_dir: Path) -> Processes | None:
        data = read_json(str(task_dir / PID_FILE))
        if data is None:
            return None
        pid, start, task_pid = data.get("pid"), data.get("start_time"), data.get("task_pid")
        task_start = data.get("task_start_time")
        if not isinstance(pid, int) or not isinstance(start, int):
            return None
        return cls(
            pid,
            start,
            str(data.get("boot_id") or ""),
            task_pid if isinstance(task_pid, int) else None,
            task_start if isinstance(task_start, int) else 0,
        )

    @property
    def runner_alive(self) -> bool:
        return is_alive(self.runner_pid, self.runner_start, self.boot_id)

    @property
    def task_alive(self) -> bool:
        return self.task_pid is not None and is_alive(self.task_pid, self.task_start, self.boot_id)


def _exited(index: int, task_dir: Path) -> TaskState | None:
    data = read_json(str(task_dir / EXIT_FILE))
    if data is None:
        return None
    code = data.get("exit_code")
    error = data.get("error")
    if error:
        note = f"could not start: {error}"
    elif not data.get("started", True):
        note = "was stopped before it started"
    else:
        note = ""
    return TaskState(
        index,
        TaskPhase.EXITED,
        exit_code=code if isinstance(code, int) else None,
        timed_out=bool(data.get("timed_out")),
        terminated=bool(data.get("terminated")),
        note=note,
    )


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def read_task(index: int, task_dir: Path, now: float | None = None) -> TaskState:
    """The state of the task in ``task_dir`` (rules in the module docstring)."""
    now = time.time() if now is None else now
    exited = _exited(index, task_dir)
    if exited is not None:
        return exited
    procs = Processes.read(task_dir)
    if procs is not None:
        return _from_processes(index, task_dir, procs)
    times = [t for t in (_mtime(task_dir / SPEC_FILE), _mtime(task_dir / CLAIM_FILE)) if t]
    if not times:
        return TaskState(index, TaskPhase.UNKNOWN, note="was never launched")
    age = now - max(times)
    if age <= STARTING_WINDOW:
        return TaskState(index, TaskPhase.STARTING)
    procs = Processes.read(task_dir)  # the runner may have come up, slowly, since the first look
    if procs is not None:
        return _from_processes(index, task_dir, procs)
    claimed = (task_dir / CLAIM_FILE).exists()
    what = "its runner claimed it but did not report" if claimed else "no runner claimed it"
    note = f"never started: {what} within {STARTING_WINDOW:g} s of its launch"
    return TaskState(index, TaskPhase.LOST, note=note)


def _from_processes(index: int, task_dir: Path, procs: Processes) -> TaskState:
    """Rule 2: the state of a task whose runner has reported its pid."""
    if procs.runner_alive:
        return TaskState(index, TaskPhase.RUNNING)
    if procs.task_alive:
        note = (
            f"runs without its runner (pid {procs.runner_pid} is gone), so its exit code "
            "will not be known"
        )
        return TaskState(index, TaskPhase.RUNNING, note=note)
    # The runner may have written exit.json and exited since the first look.
    exited = _exited(index, task_dir)
    if exited is not None:
        return exited
    rebooted = procs.boot_id and procs.boot_id != boot_id()
    why = "the machine restarted" if rebooted else "killed from outside?"
    note = (
        f"was lost: its runner (pid {procs.runner_pid}) ended without reporting an exit "
        f"code ({why})"
    )
    return TaskState(index, TaskPhase.LOST, note=note)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def describe_end(task: TaskState) -> str:
    """How an exited task ended, as a predicate: ``exited with code 3``."""
    code = task.exit_code
    if task.note:
        return task.note
    if code is None:
        return "exited without an exit code"
    if code < 0:
        how = f"was killed by signal {-code} ({_signal_name(-code)})"
    else:
        how = f"exited with code {code}"
    return f"hit its time limit and {how}" if task.timed_out else how.removeprefix("was ")


def run_status(run_id: str, tasks: Sequence[TaskState]) -> RunStatus:
    """The status of a run from the states of its tasks (rules in the module docstring)."""
    phases = [t.phase for t in tasks]
    if all(p is TaskPhase.UNKNOWN for p in phases):
        return RunStatus(run_id, RunState.UNKNOWN, detail=f"run {run_id} was never launched here")
    codes = tuple(t.exit_code if t.phase is TaskPhase.EXITED else None for t in tasks)
    timed_out = any(t.timed_out for t in tasks)
    single = len(tasks) == 1

    def who(task: TaskState) -> str:
        return "the task" if single else f"task {task.index}"

    exited = [t for t in tasks if t.phase is TaskPhase.EXITED]
    failed = [t for t in exited if t.exit_code != 0]
    if any(p in (TaskPhase.RUNNING, TaskPhase.STARTING) for p in phases):
        running = phases.count(TaskPhase.RUNNING)
        starting = phases.count(TaskPhase.STARTING)
        if single:
            parts = ["the task is " + ("running" if running else "starting")]
        else:
            parts = [f"{running} of {len(tasks)} tasks running"]
            parts += [f"{starting} starting"] if starting else []
            parts += [f"{len(exited)} exited"] if exited else []
        running_notes = tuple(
            f"{who(t)} {t.note}" for t in tasks if t.phase is TaskPhase.RUNNING and t.note
        )
        notes = [*running_notes, *(f"{who(t)} {describe_end(t)}" for t in failed[:1])]
        detail = ", ".join(parts) + "".join(f"; {n}" for n in notes)
        return RunStatus(run_id, RunState.RUNNING, codes, timed_out, detail, notes=running_notes)
    missing = [t for t in tasks if t.phase in (TaskPhase.LOST, TaskPhase.UNKNOWN)]
    if missing:
        first = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return RunStatus(
            run_id, RunState.LOST, codes, timed_out, f"{who(first)} {first.note}{more}"
        )
    if not failed:
        everyone = "the task" if single else f"all {len(tasks)} tasks"
        return RunStatus(
            run_id, RunState.EXITED, codes, timed_out, f"{everyone} exited with code 0"
        )
    more = f" (and {len(failed) - 1} more failed)" if len(failed) > 1 else ""
    detail = f"{who(failed[0])} {describe_end(failed[0])}{more}"
    return RunStatus(run_id, RunState.EXITED, codes, timed_out, detail)
