"""The everyday job commands, with sbatch/squeue/scancel habits: ``submit``, ``jobs``, ``show``,
``cancel``, ``hold``, ``release``, ``logs`` and ``explain``. Each one is a thin layer over one
or two SDK calls (``allot.client``); the job file format lives in ``allot.cli.jobfile`` and
the shared options, error path and rendering in ``allot.cli.output``.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from typer.core import TyperCommand

from allot.api.schemas import MAX_BATCH
from allot.cli import output
from allot.cli.jobfile import JobDraft, Origin, apply_flags, array_jobs, load_job_file, parse_array
from allot.cli.output import (
    InputError,
    OutputFormat,
    OutputOption,
    TokenOption,
    UrlOption,
    elapsed,
    memory,
    number,
    reported,
    when,
)
from allot.client import Conflict, JobOut, LogChunkOut, NotFound

ARGV = "allot.argv"  # where CommandAfterDashes keeps the words after ``--``
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

JobId = Annotated[int, typer.Argument(help="The job's id.", show_default=False)]


class CommandAfterDashes(TyperCommand):
    """A command whose words after ``--`` are a program's argv, kept away from its options."""

    # Typer's Click is vendored privately, so its Context type cannot be named here; what
    # arrives is the typer.Context it makes.
    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        if "--" in args:
            at = args.index("--")
            ctx.meta[ARGV] = args[at + 1 :]
            args = args[:at]
        # Words left over are most likely a command missing its --; the command says so.
        ctx.allow_extra_args = True
        return super().parse_args(ctx, args)


def submit(
    ctx: typer.Context,
    job_file: Annotated[
        Path | None,
        typer.Argument(
            metavar="JOB.yaml",
            help="A job file (docs/jobs.md); flags override its values.",
            show_default=False,
        ),
    ] = None,
    gpus: Annotated[float | None, typer.Option("--gpus", "-G", help="GPUs per task.")] = None,
    tasks: Annotated[
        int | None, typer.Option("--tasks", "-n", help="Tasks; >1 is a gang that starts whole.")
    ] = None,
    cpus: Annotated[float | None, typer.Option("--cpus", "-c", help="CPU cores per task.")] = None,
    memory_mib: Annotated[int | None, typer.Option(help="Memory per task in MiB.")] = None,
    queue: Annotated[str | None, typer.Option("--queue", "-q", help="Queue to wait in.")] = None,
    priority: Annotated[
        str | None, typer.Option(help="An integer or a priority class name.")
    ] = None,
    flavor: Annotated[
        list[str] | None, typer.Option(help="Accepted GPU flavor; repeat, preferred first.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", "-J", help="The job's name.")] = None,
    workdir: Annotated[
        str | None, typer.Option("--workdir", "-D", help="Directory to start in.")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(help="K=V (repeatable); K alone passes on this shell's value."),
    ] = None,
    time_limit: Annotated[
        str | None, typer.Option(help="Stop it after this long: 90 (seconds), 30m, 2h, 1d.")
    ] = None,
    estimate: Annotated[
        str | None, typer.Option(help="How long it should run (helps backfill).")
    ] = None,
    checkpointable: Annotated[
        bool | None,
        typer.Option(
            "--checkpointable/--no-checkpointable",
            help="It saves its state, so preempting it loses little.",
            show_default=False,
        ),
    ] = None,
    preemptible: Annotated[
        bool | None,
        typer.Option(
            "--preemptible/--no-preemptible",
            help="Whether it may be stopped for others (default: yes).",
            show_default=False,
        ),
    ] = None,
    hold: Annotated[
        bool | None,
        typer.Option("--hold/--no-hold", help="Submit held until released.", show_default=False),
    ] = None,
    array: Annotated[
        str | None,
        typer.Option(help="A job array: 0-99, 0-99:2 or 1,3,5; each gets ALLOT_ARRAY_INDEX."),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Submit a job from a job file, or the command after --, like sbatch.

    allot submit train.yaml --gpus 2   |   allot submit --gpus 1 -- python train.py --lr 3e-4
    """
    argv: list[str] | None = ctx.meta.get(ARGV)
    subject = "" if job_file is None else str(job_file)
    with reported(subject):
        if argv == []:
            raise InputError("nothing after --: give the command to run")
        if job_file is None and argv is None:
            raise InputError("give a job file, or the command after --: allot submit -- CMD ...")
        if ctx.args or (argv is None and job_file is not None and not job_file.exists()):
            words = shlex.join([str(job_file), *ctx.args])
            hint = f"to run a command, put it after --: allot submit [OPTIONS] -- {words}"
            raise InputError(f"no job file {words!r}; {hint}")
        draft = JobDraft() if job_file is None else load_job_file(job_file)
        if job_file is not None and "name" not in draft.fields:
            draft.set("name", job_file.stem, Origin(subject))
        if argv is not None:
            draft.set("command", argv, Origin("the command after --"))
        flags = {
            "--gpus": gpus,
            "--tasks": tasks,
            "--cpus": cpus,
            "--memory-mib": memory_mib,
            "--queue": queue,
            "--priority": priority,
            "--flavor": flavor,
            "--name": name,
            "--workdir": workdir,
            "--time-limit": time_limit,
            "--estimate": estimate,
            "--checkpointable": checkpointable,
            "--preemptible": preemptible,
            "--hold": hold,
        }
        apply_flags(draft, flags, env or [])
        submission = draft.submission()
        if array is not None:
            try:
                members = array_jobs(submission, parse_array(array))
            except ValueError as err:
                raise InputError(str(err)) from None
            with output.make_client(url, token) as allot:
                # One request per thousand jobs: far faster than a submission each.
                jobs = [
                    j
                    for k in range(0, len(members), MAX_BATCH)
                    for j in allot.submit_many(members[k : k + MAX_BATCH])
                ]
            if fmt is OutputFormat.json:
                output.print_json(jobs)
            else:
                output.say(f"Submitted array of {len(jobs)} jobs: {jobs[0].id}-{jobs[-1].id}")
            return
        with output.make_client(url, token) as allot:
            job = allot.submit(submission)
    if fmt is OutputFormat.json:
        output.print_json(job)
    else:
        output.say(f"Submitted job {job.id}" + (" (held)" if job.held else ""))


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
        typer.Option("--state", "-t", help="pending, running, ... or PD, R, CD, F, CA, PR."),
    ] = None,
    queue: Annotated[str | None, typer.Option("--queue", "-q", help="Only this queue.")] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 100,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include finished jobs.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """List jobs, newest first, like squeue: pending and running ones unless --all or --state."""
    with reported():
        states = _states(state) if state else [] if all_ else list(ACTIVE_STATES)
        with output.make_client(url, token) as allot:
            found = allot.iter_jobs(states or None, queue, user, page_size=min(limit, PAGE_SIZE))
            listed = list(islice(found, limit))
    if fmt is OutputFormat.json:
        output.print_json(listed)
        return
    now = datetime.now(UTC)
    grid = output.table(*output.JOB_COLUMNS)
    for job in listed:
        grid.add_row(*(escape(cell) for cell in output.job_row(job, now)))
    output.print_table(grid)


def show(
    job_id: JobId,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Everything about one job: its fields, its run and placement, and its last events."""
    with reported(), output.make_client(url, token) as allot:
        job = allot.job(job_id)
        events = allot.events(job_id)[-LAST_EVENTS:]
    if fmt is OutputFormat.json:
        output.print_json({"job": job, "events": events})
        return
    r = job.resources
    fields = {
        "name": job.name or "-",
        "state": job.state + (" (held)" if job.held else ""),
        "queue": f"{job.queue} (tenant {job.tenant})",
        "user": job.user,
        "priority": str(job.priority),
        "tasks": f"{job.tasks} x ({number(r.gpus)} GPU, {number(r.cpus)} CPU, "
        f"{memory(r.memory_mib)})",
        "flavors": ", ".join(job.flavors) or "any",
        "command": shlex.join(job.command),
        "workdir": job.workdir or "(the server's default)",
        "env": ", ".join(job.env_keys) + " (values not shown)" if job.env_keys else "-",
        "estimate": elapsed(job.runtime_estimate_seconds),
        "time limit": elapsed(job.time_limit_seconds),
        "checkpointable": "yes" if job.checkpointable else "no",
        "preemptible": "yes" if job.preemptible else "no",
        "submitted": when(job.submitted_at),
        "started": when(job.started_at),
        "ended": when(job.ended_at),
        "exit code": "-" if job.exit_code is None else str(job.exit_code),
        "reason": job.reason or "-",
        "GPU time": f"{job.attained_gpu_seconds / 3600:.2f} GPU-hours",
        "runs": str(job.run_count),
    }
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
    output.say(f"\n[bold]Events[/bold] (last {LAST_EVENTS})")
    log = output.table("TIME", "KIND", "STATE", "BY", "REASON")
    for e in events:
        moved = f"{e.from_state or '-'} -> {e.to_state}" if e.to_state else "-"
        log.add_row(when(e.time), escape(e.kind), moved, escape(e.actor), escape(e.reason))
    output.print_table(log)


def cancel(
    job_ids: Annotated[list[int], typer.Argument(help="Jobs to cancel.", show_default=False)],
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Cancel jobs like scancel: a pending job ends now, a running one gets its grace period."""
    done: list[JobOut] = []
    refused = False
    with reported(), output.make_client(url, token) as allot:
        for job_id in job_ids:
            try:
                job = allot.cancel(job_id)
            except (NotFound, Conflict) as err:  # the others may still be cancelled
                output.complain(str(err))
                refused = True
                continue
            done.append(job)
            if fmt is OutputFormat.table:
                output.say(_cancelled(job))
    if fmt is OutputFormat.json:
        output.print_json(done)
    if refused:
        raise typer.Exit(output.FAILED)


def _cancelled(job: JobOut) -> str:
    if job.run is None or job.run.stop_by is None:
        return f"Cancelled job {job.id}"
    return f"Stopping job {job.id}: it has until {when(job.run.stop_by)} to exit"


def hold(
    job_id: JobId,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Keep a pending job from starting until it is released."""
    with reported(), output.make_client(url, token) as allot:
        job = allot.hold(job_id)
    _changed(job, f"Held job {job.id}", fmt)


def release(
    job_id: JobId,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Let a held job be scheduled again."""
    with reported(), output.make_client(url, token) as allot:
        job = allot.release(job_id)
    _changed(job, f"Released job {job.id}", fmt)


def _changed(job: JobOut, message: str, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        output.print_json(job)
    else:
        output.say(message)


def logs(
    job_id: JobId,
    task: Annotated[int, typer.Option(min=0, help="Which task of a gang.")] = 0,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Print a task's output as it was written (the latest run's)."""
    with reported(), output.make_client(url, token) as allot:
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
        whole = {**chunk.model_dump(), "data": "".join(parts)}
        output.print_json(LogChunkOut.model_validate(whole))


def explain(
    job_id: JobId,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Why a job is pending (or where it is), and what would unblock it."""
    with reported(), output.make_client(url, token) as allot:
        why = allot.explain(job_id)
    if fmt is OutputFormat.json:
        output.print_json(why)
        return
    output.say(f"Job {why.job_id} ({why.state}): {escape(why.message)}")
    if why.remedy:
        output.say(f"To unblock it: {escape(why.remedy)}")
