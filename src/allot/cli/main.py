"""The ``allot`` command: one Typer app; each sub-command lives in its own module.

``COMMANDS`` lists them in the order ``allot --help`` shows them. A command's module is
imported only when that command runs (or shows its help), so ``allot --help``, ``allot jobs``
and ``allot submit`` start without the simulator, matplotlib or the server's code; each module
in turn imports what only some of its paths need (the SDK, the job file reader) where it is
used. benchmarks/cli_startup.py measures the start-up.
"""

from __future__ import annotations

import typer

from allot import __version__
from allot.cli.command import CommandAfterDashes, Entry, LazyGroup

COMMANDS = {
    "up": Entry("allot.cli.up:up", "Run the allot server: REST API, scheduler and local executor."),
    "simulate": Entry(
        "allot.cli.simulate:simulate",
        "Replay a trace on a cluster under each policy and compare them side by side.",
        no_args_is_help=True,
    ),
    "whatif": Entry(
        "allot.cli.whatif:whatif",
        "Replay your own history under other policies or quotas and compare them side by side.",
    ),
    "submit": Entry(
        "allot.cli.submit:submit",
        "Submit a job from a job file, or the command after --, like sbatch.",
        cls=CommandAfterDashes,
    ),
    "jobs": Entry(
        "allot.cli.jobs:jobs",
        "List jobs, newest first, like squeue: pending and running ones unless --all or --state.",
    ),
    "show": Entry(
        "allot.cli.jobs:show",
        "Everything about one job: its fields, its run and placement, and its last events.",
    ),
    "cancel": Entry(
        "allot.cli.jobs:cancel",
        "Cancel jobs like scancel: a pending job ends now, a running one gets its grace period.",
    ),
    "hold": Entry("allot.cli.jobs:hold", "Keep pending jobs from starting until released."),
    "release": Entry("allot.cli.jobs:release", "Let held jobs be scheduled again."),
    "logs": Entry(
        "allot.cli.jobs:logs", "Print a task's output as it was written (the latest run's)."
    ),
    "explain": Entry(
        "allot.cli.jobs:explain",
        "Why a job is pending (or where it is), and what would unblock it.",
    ),
    "nodes": Entry(
        "allot.cli.cluster:nodes",
        "List the nodes, like sinfo: flavor, GPUs, CPUs, memory, state and latest check.",
    ),
    "queues": Entry(
        "allot.cli.cluster:queues",
        "List the queues: nominal GPU quota per flavor, GPUs in use, and job counts.",
    ),
    "drain": Entry(
        "allot.cli.cluster:drain", "Place nothing new on a node; what runs there keeps running."
    ),
    "undrain": Entry("allot.cli.cluster:undrain", "Let a drained node take new work again."),
    "profile": Entry(
        "allot.cli.profile:profile",
        "Analyse a profiled job: time split per rank, top kernels, roofline and its bottleneck.",
    ),
    "recommend": Entry(
        "allot.cli.profile:recommend",
        "Rank every GPU flavor for a profiled job by work per dollar and by time to finish.",
    ),
    "usage": Entry(
        "allot.cli.usage:usage",
        "Usage and cost per tenant, user, queue or flavor over a window, like sreport.",
    ),
    "budgets": Entry(
        "allot.cli.usage:budgets", "Each budget of your tenants and what it spent this period."
    ),
    "node": Entry(
        "allot.cli.node:node",
        "Check this machine's GPUs against its flavor: allot node check.",
        no_args_is_help=True,
    ),
    "admin": Entry(
        "allot.cli.admin:AdminGroup",
        "Who may do what: users, roles, tokens, tenants, grants, cohorts, queues, audit log.",
    ),
}


class AllotGroup(LazyGroup):
    """The ``allot`` group over ``COMMANDS``."""

    entries = COMMANDS


app = typer.Typer(
    name="allot",
    cls=AllotGroup,
    help="allot: a compute platform for teams that share GPUs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
