"""The job commands after submission, with squeue/scontrol/scancel habits: ``jobs``, ``show``,
``cancel``, ``hold``, ``release``, ``logs`` and ``explain``. Each one is a thin layer over one
or two SDK calls (``allot.client``); ``submit`` lives in ``allot.cli.submit``, the shared
options, error path and rendering in ``allot.cli.output``.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from allot.cli import output
from allot.cli.output import (
    InputError,
    OutputFormat,
    OutputOption,
    TokenOption,
    UrlOption,
    elapsed,
    memory,
    reported,
    when,
)
from allot.core.units import number, quantity

if TYPE_CHECKING:  # the SDK is imported where a command talks to the server
    from allot.client import ApiError, Client, JobOut

ACTIVE_STATES = ("pending", "running")
# squeue's compact state codes, so ``--state PD,R`` works as it does there.
STATE_CODES = {
    "PD": "pending",
    "R": "running",
    "CD": "succeeded",
    "F": "failed",
    "CA": "cancelled",
    "PR": "preempted",
}
JOB_STATES = ("pending", "running", "succeeded", "failed", "cancelled", "preempted")
LAST_EVENTS = 10
PAGE_SIZE = 200  # jobs per request while following cursors up to --limit

JobId = Annotated[int, typer.Argument(metavar="JOB_ID", help="The job's id.", show_default=False)]


def _states(given: list[str]) -> list[str]:
    states: list[str] = []
    for word in (w.strip() for text in given for w in text.split(",")):
        state = STATE_CODES.get(word.upper(), word.lower())
        if state not in JOB_STATES:
            codes = ", ".join(f"{k} ({v})" for k, v in STATE_CODES.items())
            raise InputError(f"--state: unknown state {word!r}; one of: {codes}")
        states.append(state)
    return states


def jobs(
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state",
            "-t",
            metavar="STATE",
            help="pending, running, ... or PD, R, CD, F, CA, PR; repeat or join with commas.",
        ),
    ] = None,
    queue: Annotated[
        str | None, typer.Option("--queue", "-q", metavar="QUEUE", help="Only this queue.")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", "-u", metavar="USER", help="Only this user's.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, metavar="N", help="Show at most N.")] = 100,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include finished jobs.")] = False,
    start: Annotated[
        bool,
        typer.Option(
            "--start",
            help="Add START: a pending job's expected start, from running the queue forward"
            " through the scheduler (as squeue --start).",
        ),
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """List jobs, newest first, like squeue: pending and running ones unless --all or --state."""
    with reported(fmt=fmt):
        states = _states(state) if state else [] if all_ else list(ACTIVE_STATES)
        with output.make_client(url, token) as allot:
            found = allot.iter_jobs(states or None, queue, user, page_size=min(limit, PAGE_SIZE))
            listed = list(islice(found, limit))
    if fmt is OutputFormat.json:
        output.print_json(listed)
        return
    now = datetime.now(UTC)
    grid = output.table(*output.JOB_COLUMNS, *(("START",) if start else ()))
    for job in listed:
        row = output.job_row(job, now) + ([expected_start(job)] if start else [])
        grid.add_row(*(escape(cell) for cell in row))
    output.print_table(grid)


def expected_start(job: JobOut) -> str:
    """A pending job's expected start for a table cell: ``now``, a local time, ``unknown``
    (the forward run found none), or ``-`` (not pending, or no estimate yet)."""
    estimate = job.estimated_start
    if estimate is None:
        return "-"
    if estimate.start is None:
        return "unknown"
    if estimate.start <= estimate.computed_at:
        return "now"
    return when(estimate.start)


def show(
    job_id: JobId,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Everything about one job: its fields, its run and placement, and its last events."""
    with reported(fmt=fmt), output.make_client(url, token) as allot:
        job = allot.job(job_id)
        events = allot.events(job_id)[-LAST_EVENTS:]
        cost = allot.job_cost(job_id)
    if fmt is OutputFormat.json:
        output.print_json({"job": job, "events": events, "cost": cost})
        return
    r = job.resources
    fields = {
        "name": job.name or "-",
        "state": job.state + (" (held)" if job.held else ""),
        "queue": f"{job.queue} (tenant {job.tenant})",
        "user": job.user,
        "priority": str(job.priority),
        "tasks": f"{job.tasks} x ({quantity(r.gpus, 'GPU')}, {quantity(r.cpus, 'CPU')}, "
        f"{memory(r.memory_mib)})",
        "flavors": ", ".join(job.flavors) or "any",
        "command": shlex.join(job.command),
        "workdir": job.workdir or "(the server's default)",
        "env": ", ".join(job.env_keys) + " (values not shown)" if job.env_keys else "-",
        "estimate": elapsed(job.runtime_estimate_seconds),
        "time limit": elapsed(job.time_limit_seconds),
        "checkpointable": "yes" if job.checkpointable else "no",
        "preemptible": "yes" if job.preemptible else "no",
        "after": ", ".join(f"{d.job}:{d.condition}" for d in job.after) or "-",
        "array": "-" if job.array_id is None else str(job.array_id),
        "submitted": when(job.submitted_at),
        "started": when(job.started_at),
        "ended": when(job.ended_at),
        "exit code": "-" if job.exit_code is None else str(job.exit_code),
        "reason": job.reason or "-",
        "GPU time": f"{job.attained_gpu_seconds / 3600:.2f} GPU-hours",
        "runs": str(job.run_count),
        "cost": f"{cost.cost:.2f} {cost.currency} ({cost.gpu_hours:.2f} GPU-hours priced)",
    }
    if job.estimated_start is not None:
        fields["expected start"] = f"{expected_start(job)} ({job.estimated_start.basis})"
    output.say(f"[bold]Job {job.id}[/bold]")
    grid = output.table("", "")
    grid.show_header = False
    for key, value in fields.items():
        grid.add_row(key, escape(value))
    output.print_table(grid)
    if job.run is not None:
        run = job.run
        stop = f", stopping by {when(run.stop_by)}: {run.stop_reason}" if run.stop_by else ""
        output.say(
            f"\n[bold]Run {run.run_id}[/bold] ({run.phase} on {escape(run.flavor)}, "
            f"started {when(run.started_at)}{escape(stop)})"
        )
        placed = output.table("TASK", "NODE", "DEVICES", "SHARE")
        for i, p in enumerate(run.placement):
            devices = ",".join(str(d) for d in p.devices) or "-"
            placed.add_row(str(i), escape(p.node), devices, number(p.gpu_fraction))
        output.print_table(placed)
    if job.gpu_usage:
        output.say("\n[bold]GPU usage[/bold] (NVML)")
        usage = output.table("RUN", "NODE", "GPUS", "MEAN UTIL", "P95 UTIL", "PEAK MEM",
                             "ENERGY", "SM ACTIVE")  # fmt: skip
        for g in job.gpu_usage:
            usage.add_row(
                g.run_id[:8], escape(g.node), ",".join(map(str, g.devices)),
                f"{g.mean_utilization:.0%}", f"{g.p95_utilization:.0%}",
                memory(g.peak_memory_bytes // (1 << 20)), f"{g.energy_joules / 3.6e6:.3f} kWh",
                "-" if g.mean_sm_active is None else f"{g.mean_sm_active:.0%}",
            )  # fmt: skip
        output.print_table(usage)
    output.say(f"\n[bold]Events[/bold] (last {LAST_EVENTS})")
    log = output.table("TIME", "KIND", "STATE", "BY", "REASON")
    for e in events:
        moved = f"{e.from_state or '-'} -> {e.to_state}" if e.to_state else "-"
        log.add_row(when(e.time), escape(e.kind), moved, escape(e.actor), escape(e.reason))
    output.print_table(log)


def cancel(
    job_ids: Annotated[
        list[int], typer.Argument(metavar="JOB_ID", help="Jobs to cancel.", show_default=False)
    ],
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Cancel jobs like scancel: a pending job ends now, a running one gets its grace period.
    Every job is reported, cancelled or why not; the exit status is 1 if any was not."""
    _each(job_ids, lambda allot, job_id: allot.cancel(job_id), _cancelled, url, token, fmt)


def hold(
    job_ids: Annotated[
        list[int], typer.Argument(metavar="JOB_ID", help="Jobs to hold.", show_default=False)
    ],
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Keep pending jobs from starting until released.
    Every job is reported, held or why not; the exit status is 1 if any was not."""
    _each(job_ids, lambda allot, job_id: allot.hold(job_id), _held, url, token, fmt)


def release(
    job_ids: Annotated[
        list[int], typer.Argument(metavar="JOB_ID", help="Jobs to release.", show_default=False)
    ],
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Let held jobs be scheduled again.
    Every job is reported, released or why not; the exit status is 1 if any was not."""
    _each(job_ids, lambda allot, job_id: allot.release(job_id), _released, url, token, fmt)


def _each(
    job_ids: list[int],
    act: Callable[[Client, int], JobOut],
    said: Callable[[JobOut], str],
    url: str | None,
    token: str | None,
    fmt: OutputFormat,
) -> None:
    """Do ``act`` to each job in turn and report it (``said``), or why not, naming the job; go
    on past a job it cannot be done to, then exit with the worst status. With json, print the
    list of jobs it was done to."""
    done: list[JobOut] = []
    status = 0
    with reported(fmt=fmt), output.make_client(url, token) as allot:
        from allot.client import ApiError, Unauthorized, Unreachable

        cause: ApiError | None = None  # once set, the server cannot be asked for the rest
        for job_id in job_ids:
            try:
                if cause is not None:
                    raise cause
                job = act(allot, job_id)
            except (Unauthorized, Unreachable) as err:
                cause = err
                status = max(status, _refused(job_id, err, fmt))
                continue
            except ApiError as err:  # the others may still be done
                status = max(status, _refused(job_id, err, fmt))
                continue
            done.append(job)
            if fmt is OutputFormat.table:
                output.say(said(job))
    if fmt is OutputFormat.json:
        output.print_json(done)
    if status:
        raise typer.Exit(status)


def _refused(job_id: int, err: ApiError, fmt: OutputFormat) -> int:
    """Tell why ``job_id`` was not done, naming it; returns the exit status."""
    message, code, doc = output.failure(err)
    if fmt is OutputFormat.json:
        output.print_problem({**doc, "job_id": job_id})
    else:
        named = f"job {job_id}" in message
        output.complain(message if named else f"job {job_id}: {message}")
    return code


def _cancelled(job: JobOut) -> str:
    if job.run is None or job.run.stop_by is None:
        return f"Cancelled job {job.id}"
    return f"Stopping job {job.id}: it has until {when(job.run.stop_by)} to exit"


def _held(job: JobOut) -> str:
    return f"Held job {job.id}"


def _released(job: JobOut) -> str:
    return f"Released job {job.id}"


def logs(
    job_id: JobId,
    task: Annotated[
        int, typer.Option(min=0, metavar="N", help="Which task of a gang (from 0).")
    ] = 0,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Print a task's output as it was written (the latest run's)."""
    with reported(fmt=fmt), output.make_client(url, token) as allot:
        if follow:
            if fmt is OutputFormat.json:
                raise InputError("--output json: not with --follow, which prints the output raw")
            for text in allot.follow_logs(job_id, task):
                output.write(text)
            return
        chunk = allot.logs(job_id, task)
        parts: list[str] = []
        while True:  # the server answers in chunks; read on to the end written so far
            if fmt is OutputFormat.json:
                parts.append(chunk.data)
            else:
                output.write(chunk.data)
            following = allot.logs(job_id, task, chunk.next_offset) if chunk.data else None
            if following is None or following.run_id != chunk.run_id:
                break  # the end, or the job was requeued meanwhile: keep to the run begun with
            chunk = following
    if fmt is OutputFormat.json:
        whole = chunk.model_copy(update={"data": "".join(parts)})
        output.print_json(whole)


def explain(
    job_id: JobId,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Why a job is pending (or where it is), and what would unblock it."""
    with reported(fmt=fmt), output.make_client(url, token) as allot:
        why = allot.explain(job_id)
    if fmt is OutputFormat.json:
        output.print_json(why)
        return
    output.say(f"Job {why.job_id} ({why.state}): {escape(why.message)}")
    if why.remedy:
        output.say(f"To unblock it: {escape(why.remedy)}")
    estimate = why.estimated_start
    if estimate is not None:
        expected = "no start found" if estimate.start is None else when(estimate.start)
        output.say(
            f"Expected to start: {expected} ({escape(estimate.basis)};"
            f" worked out at {when(estimate.computed_at)})"
        )
