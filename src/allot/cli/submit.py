"""``allot submit``: a job from a job file, or the command after ``--``, like sbatch; a job
array with ``--array``. The job file format lives in ``allot.cli.jobfile``; flags override the
file's values. As with sbatch, a job starts in the directory it was submitted from unless the
job file or ``--workdir`` says otherwise. A thin layer over the SDK's ``submit`` and
``submit_many``. ``--interactive`` and ``--notebook`` open a session on the allocated GPUs
(``allot.cli.interactive``).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from allot.cli import output
from allot.cli.command import ARGV
from allot.cli.output import (
    InputError,
    OutputFormat,
    OutputOption,
    TokenOption,
    UrlOption,
    reported,
)

if TYPE_CHECKING:
    from allot.cli.jobfile import JobDraft


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
    gpus: Annotated[
        float | None, typer.Option("--gpus", "-G", metavar="N", help="GPUs per task.")
    ] = None,
    tasks: Annotated[
        int | None,
        typer.Option("--tasks", "-n", metavar="N", help="Tasks; >1 is a gang that starts whole."),
    ] = None,
    cpus: Annotated[
        float | None, typer.Option("--cpus", "-c", metavar="N", help="CPU cores per task.")
    ] = None,
    memory_mib: Annotated[
        int | None, typer.Option(metavar="MIB", help="Memory per task in MiB.")
    ] = None,
    queue: Annotated[
        str | None, typer.Option("--queue", "-q", metavar="QUEUE", help="Queue to wait in.")
    ] = None,
    priority: Annotated[
        str | None, typer.Option(metavar="PRIORITY", help="An integer or a priority class name.")
    ] = None,
    flavor: Annotated[
        list[str] | None,
        typer.Option(metavar="FLAVOR", help="Accepted GPU flavor; repeat, preferred first."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", "-J", metavar="NAME", help="The job's name.")
    ] = None,
    workdir: Annotated[
        str | None,
        typer.Option(
            "--workdir",
            "-D",
            metavar="DIR",
            help="Directory to start in (default: the job file's workdir, else this one).",
        ),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(metavar="K=V", help="Set K to V (repeat); K alone passes on this shell's."),
    ] = None,
    time_limit: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION", help="Stop it after this long: 90 (seconds), 30m, 2h, 1d."
        ),
    ] = None,
    estimate: Annotated[
        str | None,
        typer.Option(metavar="DURATION", help="How long it should run (helps backfill)."),
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
    profile: Annotated[
        bool | None,
        typer.Option(
            "--profile/--no-profile",
            help="Run it under the PyTorch profiler for a few steps (see allot profile).",
            show_default=False,
        ),
    ] = None,
    profile_steps: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", help="Steps to profile (implies --profile; default 5)."),
    ] = None,
    array: Annotated[
        str | None,
        typer.Option(
            metavar="INDICES",
            help="A job array: 0-99, 0-99:2 or 1,3,5; each gets ALLOT_ARRAY_INDEX.",
        ),
    ] = None,
    after: Annotated[
        list[str] | None,
        typer.Option(
            metavar="ID[:COND]",
            help="Start after job ID succeeds; ID:failed, ID:any; repeat or 12,13:any."
            " An array's id waits for all of it.",
        ),
    ] = None,
    parsable: Annotated[
        bool,
        typer.Option("--parsable", help="Print only the job id (an array's: its id)."),
    ] = False,
    interactive: Annotated[
        bool,
        typer.Option(
            "--interactive",
            help="A shell here on the allocated GPUs once the job runs; exiting it cancels"
            " the job (local server only).",
        ),
    ] = False,
    notebook: Annotated[
        bool,
        typer.Option("--notebook", help="Run Jupyter Lab as the job and print its URL."),
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Submit a job from a job file, or the command after --, like sbatch.

    allot submit train.yaml --gpus 2   |   allot submit --gpus 1 -- python train.py --lr 3e-4
    """
    # Imported here, not at the top: `allot submit --help` starts without them.
    from allot.cli.jobfile import (
        JobDraft,
        Origin,
        apply_flags,
        array_jobs,
        load_job_file,
        parse_array,
    )
    from allot.wire.schemas import MAX_BATCH

    argv: list[str] | None = ctx.meta.get(ARGV)
    subject = "" if job_file is None else str(job_file)
    session = "notebook" if notebook else "shell" if interactive else None
    with reported(subject, fmt):
        if session is not None:
            if interactive and notebook:
                raise InputError("--interactive, --notebook: give one of them, not both")
            if array is not None:
                raise InputError(f"--{'notebook' if notebook else 'interactive'}: not with --array")
            if job_file is None and argv is None:
                from allot.cli.interactive import HOLD, NOTEBOOK

                argv = list(NOTEBOOK if notebook else HOLD)
                if name is None:
                    name = session
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
            "--after": after,
            "--profile": True if profile_steps is not None and profile is None else profile,
            "--profile-steps": profile_steps,
        }
        apply_flags(draft, flags, env or [])
        _start_here(draft)
        submission = draft.submission()
        if array is not None:
            try:
                members = array_jobs(submission, parse_array(array))
            except ValueError as err:
                raise InputError(str(err)) from None
            with output.make_client(url, token) as allot:
                # One request per thousand jobs: far faster than a submission each. The first
                # makes the array; the others add to it.
                jobs = allot.submit_many(members[:MAX_BATCH], array=True)
                for k in range(MAX_BATCH, len(members), MAX_BATCH):
                    chunk = members[k : k + MAX_BATCH]
                    jobs += allot.submit_many(chunk, array_id=jobs[0].array_id)
            if fmt is OutputFormat.json:
                output.print_json(jobs)
            elif parsable:
                output.write(f"{jobs[0].array_id}\n")
            else:
                output.say(
                    f"Submitted array {jobs[0].array_id} of {len(jobs)} jobs: "
                    f"{jobs[0].id}-{jobs[-1].id}"
                )
            return
        with output.make_client(url, token) as allot:
            if session == "shell":
                from allot.cli.interactive import is_local

                if not is_local(allot.url):
                    raise InputError(
                        f"--interactive: the shell runs here, so the server must be local;"
                        f" {allot.url} is not (submit it, then log in to its node)"
                    )
            job = allot.submit(submission)
            if session is not None:
                from allot.cli.interactive import notebook_session, shell_session

                output.say(f"Submitted job {job.id}")
                if session == "notebook":
                    notebook_session(allot, job.id)
                    return
                raise typer.Exit(shell_session(allot, job.id))
    if fmt is OutputFormat.json:
        output.print_json(job)
    elif parsable:
        output.write(f"{job.id}\n")
    else:
        output.say(f"Submitted job {job.id}" + (" (held)" if job.held else ""))


def _start_here(draft: JobDraft) -> None:
    """Without a workdir from the job file or ``--workdir``, the job starts where it was
    submitted, as with sbatch (the server's own default would be a folder of its own)."""
    from allot.cli.jobfile import Origin

    if "workdir" in draft.fields:
        return
    try:
        here = os.getcwd()
    except OSError as err:  # the folder was removed under this shell
        raise InputError(
            f"--workdir: the current folder is not usable ({err.strerror}); give --workdir DIR"
        ) from None
    draft.set("workdir", here, Origin("the current folder"))
