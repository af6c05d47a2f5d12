"""Reasons: why a job is where it is, in the words users see in ``allot explain``, ``show``
and the REASON column of ``allot jobs``.

A pending job's reason comes from the scheduling loop's latest explanation (the core's
``Explanation``: a stable code and one sentence), as squeue's REASON column does; a held job's
is ``held``; one whose dependencies are not all met has ``dependency`` (``waits for job 12 to
succeed``), the loop's latest view of them. A running job's comes from the executor's notes
about its tasks (a task that runs without its runner, so its exit code will never be known).
A job that has ended keeps the reason its last transition recorded. A CPU-only job is
described without GPU words: where it runs names its nodes, not their GPU flavor.

Invariants: nothing here changes state; an executor that cannot answer (its records are gone)
only leaves the notes out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from allot.control.dependencies import DEPENDENCY
from allot.control.ports import Scheduler
from allot.control.records import JobRecord, RunPhase
from allot.control.registry import ExecutorRegistry
from allot.core.explain import Explanation
from allot.core.model import JobState

HELD = "held"
NOT_YET_CONSIDERED = "not_yet_considered"


@dataclass(frozen=True, slots=True)
class Explained:
    """Why a job is where it is, and what would change that."""

    job_id: int
    state: JobState
    reason: str  # a stable code
    message: str  # one sentence
    remedy: str  # what would unblock it ("" when nothing is blocking)
    fields: dict[str, object]

    @property
    def line(self) -> str:
        """The code and the sentence on one line: ``no_capacity: needs 8 GPUs ...``."""
        return f"{self.reason}: {self.message}"


def wall_time(t: float) -> str:
    """An instant of the live system, for people: ``2026-11-21 14:08:58 UTC``."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _explained(job_id: int, state: JobState, why: Explanation) -> Explained:
    return Explained(
        job_id,
        state,
        str(why.reason),
        why.message(wall_time),
        why.remedy(wall_time),
        dict(why.fields),
    )


def explain_pending(record: JobRecord, loop: Scheduler) -> Explained:
    """Why a pending job has not started: held, waiting for its dependencies, or the loop's
    latest explanation."""
    if record.held:
        return Explained(
            record.id,
            record.state,
            HELD,
            "held; release it to let it be scheduled",
            f"allot release {record.id}",
            {},
        )
    wait = loop.dependency_wait(record.id)
    if wait is not None:
        return Explained(
            record.id, record.state, DEPENDENCY, wait.message, wait.remedy, wait.fields
        )
    why = loop.explanation(record.id)
    if why is None:
        return Explained(
            record.id,
            record.state,
            NOT_YET_CONSIDERED,
            "waits for the next scheduling cycle",
            "",
            {},
        )
    return _explained(record.id, record.state, why)


def run_notes(record: JobRecord, executors: ExecutorRegistry) -> tuple[str, ...]:
    """What the executor says a user should know about the job's running tasks."""
    run = record.run
    if run is None or run.phase is RunPhase.ENDED:
        return ()
    try:
        return executors.status(run).notes
    except (OSError, ValueError):  # its records are unreadable: nothing to add
        return ()


def explain_running(record: JobRecord, executors: ExecutorRegistry) -> Explained:
    """Where a running job runs (or that it is stopping), with the executor's notes."""
    run = record.run
    assert run is not None
    notes = run_notes(record, executors)
    fields: dict[str, object] = {"run_id": run.run_id}
    remedy = ""
    if notes:
        fields["notes"] = list(notes)
        remedy = "cancelling it still stops it; its end is recorded without an exit code"
    extra = "".join(f"; {note}" for note in notes)
    if run.phase is RunPhase.STOPPING:
        gone_by = wall_time(run.stop_by or run.started_at)
        message = f"stopping ({run.stop_reason}); it will be gone by {gone_by}{extra}"
        return Explained(record.id, record.state, "stopping", message, remedy, fields)
    nodes = ", ".join(dict.fromkeys(p.node for p in run.placement))
    # A CPU-only job's node flavor is a GPU type it never asked for: not worth its words.
    flavor = "" if all(t.gpu_milli == 0 for t in record.job.tasks) else f" ({run.flavor})"
    message = f"running on {nodes}{flavor} since {wall_time(run.started_at)}{extra}"
    return Explained(record.id, record.state, "running", message, remedy, fields)


def explain(record: JobRecord, loop: Scheduler, executors: ExecutorRegistry) -> Explained:
    """Why the job is where it is (see the module docstring)."""
    if record.state is JobState.PENDING:
        return explain_pending(record, loop)
    if record.state is JobState.RUNNING and record.run is not None:
        return explain_running(record, executors)
    return Explained(
        record.id,
        record.state,
        str(record.state),
        record.reason or str(record.state),
        "",
        {"exit_code": record.exit_code},
    )


def with_reason(
    record: JobRecord, loop: Scheduler, executors: ExecutorRegistry | None = None
) -> JobRecord:
    """``record`` with the reason users see: a pending job's latest explanation as
    ``code: sentence`` (``held`` for a held one; the stored reason, empty or why it was
    requeued, until the loop has considered it), and, when ``executors`` is given, a running
    job's notes."""
    if record.state is JobState.PENDING:
        why = explain_pending(record, loop)
        if why.reason == HELD:
            return replace(record, reason=HELD)
        if why.reason == NOT_YET_CONSIDERED:
            return record  # as submitted, or why it was requeued
        return replace(record, reason=why.line)
    if record.state is JobState.RUNNING and executors is not None:
        notes = run_notes(record, executors)
        if notes:
            return replace(record, reason="; ".join(notes))
    return record
