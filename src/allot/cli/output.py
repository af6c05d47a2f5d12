"""What every server-facing command shares: its options (``--url``, ``--token``, ``--output``),
the SDK client it talks through (``make_client``), the one error path (``reported``), and the
rendering of tables, JSON, units and a job as a squeue row.

Invariants:
- with ``--output json``, stdout carries the wire model(s) as JSON and nothing else;
- every failure ends as one ``error: ...`` line on stderr with exit status 2 for bad input
  (ours, or the server's ``Invalid``), 1 for anything else the server or the network did, and
  130 for Ctrl-C; never a traceback; with ``--output json`` the line is the failure's RFC 9457
  problem document instead (one line of JSON per failure), so scripts can parse it;
- the server and token are found as the SDK finds them (``allot.client.find_endpoint``): the
  token is never printed, and the local admin token is only ever sent to this machine;
- importing this module loads neither the SDK (httpx, Pydantic) nor the job file reader: a
  command's help, and the paths that do not talk to the server, start without them.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from allot.client._endpoint import DEFAULT_URL
from allot.core.units import memory_size, number

if TYPE_CHECKING:
    from pydantic import BaseModel

    from allot.client import ApiError, Client, JobOut

BAD_INPUT = 2
FAILED = 1
INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C


class OutputFormat(StrEnum):
    """How a command prints its result."""

    table = "table"
    json = "json"


UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        help=f"The allot server (default: $ALLOT_URL, else {DEFAULT_URL}).",
        show_default=False,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        metavar="TOKEN",
        help="API token (default: $ALLOT_TOKEN, else the one a local `allot up` wrote).",
        show_default=False,
    ),
]
OutputOption = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", metavar="FORMAT", help="table, or json (the API's models)."),
]


class InputError(Exception):
    """The command line asks for something impossible; the message names the flag and rule."""


def make_client(url: str | None, token: str | None) -> Client:
    """The SDK client every command talks through, to the server and with the token found as
    the SDK finds them (tests replace this function). Raises InputError for a bad URL."""
    # httpx imports its own command line (click, pygments, rich's syntax and progress: a
    # tenth of this command's start-up) unless that import fails, which httpx allows for, as
    # those are optional there. This process never runs httpx's command line.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    from allot.client import Client, EndpointError, find_endpoint

    try:
        endpoint = find_endpoint(url, token, url_field="--url")
    except EndpointError as err:
        raise InputError(str(err)) from None
    return Client(endpoint.url, endpoint.token)


def complain(message: str) -> None:
    """Print ``error: message`` on stderr, as one line."""
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(f"[red]error:[/red] {escape(message)}")


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    complain(message)
    raise typer.Exit(code)


def problem_of(err: ApiError) -> dict[str, object]:
    """The RFC 9457 problem document the server answered with (as the SDK kept it); for a call
    that got no answer, one that says so (without ``status``)."""
    doc: dict[str, object | None] = {
        "type": err.type,
        "title": err.title or ("Unreachable" if err.status is None else f"HTTP {err.status}"),
        "status": err.status,
        "detail": err.detail,
        "instance": err.instance,
        "errors": [e.model_dump() for e in err.errors] or None,
    }
    return {key: value for key, value in doc.items() if value is not None}


def print_problem(doc: Mapping[str, object]) -> None:
    """Print a problem document on stderr as one line of JSON (one document per failure)."""
    typer.echo(json.dumps(doc, separators=(",", ":")), err=True)


def failure(err: Exception, subject: str = "") -> tuple[str, int, dict[str, object]]:
    """How a failure is told: the ``error:`` line, the exit status and the problem document.
    ``subject`` (a job file, say) prefixes what the server found invalid."""
    from allot.client import ApiError, Forbidden, Invalid, Unauthorized

    if not isinstance(err, ApiError):  # ours, or the job file's
        return str(err), BAD_INPUT, {"type": "about:blank", "title": "Invalid input",
                                     "detail": str(err)}  # fmt: skip
    if isinstance(err, Invalid):
        message = f"{subject}: {err}" if subject else str(err)
        return message, BAD_INPUT, problem_of(err)
    if isinstance(err, Forbidden):  # the token is fine; its role does not allow this
        return str(err), FAILED, problem_of(err)
    if isinstance(err, Unauthorized):
        hint = (
            "pass --token or set ALLOT_TOKEN; for a local `allot up`, set ALLOT_DATA_DIR to "
            "the data directory it uses"
        )
        return f"{err}; {hint}", FAILED, problem_of(err)
    # NotFound, Conflict, ServerError, Unreachable: the SDK words them.
    return str(err), FAILED, problem_of(err)


def _is_failure(err: Exception) -> bool:
    """True for the failures a command reports as one ``error:`` line: bad input (ours or the
    job file's) and the SDK's errors; anything else is a bug and keeps its traceback. (The
    modules are imported here, not at the top, so that a command starts without them.)"""
    from allot.client import ApiError

    if isinstance(err, InputError | ApiError):
        return True
    from allot.cli.jobfile import JobFileError

    return isinstance(err, JobFileError)


def tell(err: Exception, fmt: OutputFormat, subject: str = "") -> int:
    """Report a failure on stderr, as an ``error:`` line or, with ``--output json``, as its
    problem document; returns the exit status it calls for."""
    message, code, doc = failure(err, subject)
    if fmt is OutputFormat.json:
        print_problem(doc)
    else:
        complain(message)
    return code


@contextmanager
def reported(subject: str = "", fmt: OutputFormat = OutputFormat.table) -> Iterator[None]:
    """Run the body; turn a failure into one ``error:`` line (with ``--output json``, one
    problem document) on stderr and its exit status. ``subject`` (a job file, say) prefixes
    what the server found invalid."""
    try:
        yield
    except KeyboardInterrupt:
        raise typer.Exit(INTERRUPTED) from None
    except BrokenPipeError:  # the reader went away while a chunk was being written
        _discard_stdout()
        raise typer.Exit(FAILED) from None
    except Exception as err:
        if not _is_failure(err):
            raise
        raise typer.Exit(tell(err, fmt, subject)) from None


def _discard_stdout() -> None:
    # Python flushes stdout again at exit; pointed at /dev/null that flush cannot fail.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # not a real file (tests capture it): nothing will flush it at exit


@contextmanager
def _writing() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:  # the reader went away (``allot logs 7 | head``): stop quietly
        _discard_stdout()
        raise typer.Exit(FAILED) from None


def _stdout() -> Console:
    # Piped output is not wrapped to a terminal's width, so grep and awk see one row per line.
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 4096
    return console


def say(markup: str) -> None:
    """Print a line of Rich markup on stdout (escape what came from the server)."""
    with _writing():
        _stdout().print(markup)


def write(text: str) -> None:
    """Print ``text`` on stdout exactly as it is, at once."""
    with _writing():
        sys.stdout.write(text)
        sys.stdout.flush()


def print_table(grid: Table) -> None:
    """Print a table; piped, without the spaces that pad its last column."""
    console = _stdout()
    with _writing():
        if console.is_terminal:
            console.print(grid)
            return
        with console.capture() as captured:
            console.print(grid)
        typer.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def print_json(value: BaseModel | Sequence[BaseModel] | dict[str, object]) -> None:
    """Print wire models as JSON on stdout (a dict may hold models and lists of them)."""
    with _writing():
        typer.echo(json.dumps(_plain(value), indent=2))


def answer(fmt: OutputFormat, value: BaseModel | Sequence[BaseModel], markup: str) -> None:
    """What a command that changed something prints: the server's answer as JSON, or one
    line of Rich markup for a person."""
    if fmt is OutputFormat.json:
        print_json(value)
    else:
        say(markup)


def _plain(value: object) -> object:
    from pydantic import BaseModel  # loaded already: the value came from the SDK

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def table(*headers: str) -> Table:
    """A plain table like squeue's: a bold header row, no borders."""
    grid = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for header in headers:
        grid.add_column(header, overflow="fold")
    return grid


def memory(mib: int) -> str:
    """MiB in GiB from 1 GiB on, to a tenth: ``4 GiB``, ``23.5 GiB``, ``512 MiB``."""
    return memory_size(mib, places=1)


def elapsed(seconds: float | None) -> str:
    """A span as squeue writes it: ``M:SS``, ``H:MM:SS``, ``D-HH:MM:SS``; ``-`` for none."""
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02}:{minutes:02}:{secs:02}"
    if hours:
        return f"{hours}:{minutes:02}:{secs:02}"
    return f"{minutes}:{secs:02}"


def when(instant: datetime | None) -> str:
    """An instant in local time to the second; ``-`` for none."""
    if instant is None:
        return "-"
    return instant.astimezone().strftime("%Y-%m-%d %H:%M:%S")


JOB_COLUMNS = ("ID", "NAME", "STATE", "QUEUE", "USER", "GPUS", "TIME", "NODES(REASON)")


def job_row(job: JobOut, now: datetime) -> list[str]:
    """A job as a row under ``JOB_COLUMNS``, as squeue shows one."""
    return [
        str(job.id),
        job_label(job),
        job.state,
        job.queue,
        job.user,
        job_gpus(job),
        _job_time(job, now),
        _job_where(job),
    ]


def job_label(job: JobOut) -> str:
    """The job's name, else its command (the script of ``sh -c``), cut to a table cell."""
    if job.name:
        return job.name
    argv = job.command
    text = argv[2] if len(argv) == 3 and argv[1] == "-c" else shlex.join(argv)
    return text if len(text) <= 24 else text[:23] + "…"


def job_gpus(job: JobOut) -> str:
    """GPUs as ``tasks x per task`` (just the count for one task); ``-`` for CPU-only."""
    if job.resources.gpus == 0:
        return "-"
    per_task = number(job.resources.gpus)
    return per_task if job.tasks == 1 else f"{job.tasks}x{per_task}"


def _job_time(job: JobOut, now: datetime) -> str:
    if job.state == "pending":
        return elapsed((now - job.submitted_at).total_seconds())
    started = job.run.started_at if job.run is not None else job.started_at
    if started is None:
        return "-"
    return elapsed(((job.ended_at or now) - started).total_seconds())


def _job_where(job: JobOut) -> str:
    if job.run is not None:
        return ",".join(dict.fromkeys(p.node for p in job.run.placement))
    if job.state == "pending":
        return "(held)" if job.held else f"({job.reason or 'waiting'})"
    return job.reason or ("-" if job.exit_code is None else f"exit code {job.exit_code}")
