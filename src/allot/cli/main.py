"""The ``allot`` command: one Typer app; each sub-command lives in its own module."""

from __future__ import annotations

import typer

from allot import __version__
from allot.cli import cluster, jobs, submit
from allot.cli.simulate import simulate
from allot.cli.up import up

app = typer.Typer(
    name="allot",
    help="allot: a compute platform for teams that share GPUs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(up)
app.command(no_args_is_help=True)(simulate)
app.command(cls=submit.CommandAfterDashes)(submit.submit)
app.command()(jobs.jobs)
app.command()(jobs.show)
app.command()(jobs.cancel)
app.command()(jobs.hold)
app.command()(jobs.release)
app.command()(jobs.logs)
app.command()(jobs.explain)
app.command()(cluster.nodes)
app.command()(cluster.queues)
app.command()(cluster.drain)
app.command()(cluster.undrain)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"allot {__version__}")
        raise typer.Exit


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """allot: queues, quotas, fair share and gang scheduling for shared GPUs."""
