"""``allot up``: run the allot server on this machine (the embedded default: SQLite in the
data directory and the local process executor). Blocks until interrupted; running jobs keep
running and are adopted by the next ``allot up``.

A server whose port is taken, or whose data directory another server holds, is refused with
one ``error:`` line and status 1 before anything is opened (``allot.instance``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from allot.config.errors import ConfigError
from allot.core.model import SpecError
from allot.core.policy import POLICIES
from allot.datadir import default_data_dir

# ``--quotas default`` restores the built-in quotas; a file of that name is ``./default``.
DEFAULT_QUOTAS = "default"


def up(
    data_dir: Annotated[
        Path | None, typer.Option(help="Where the database, logs and token live.")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8765,
    gpus: Annotated[
        int | None,
        typer.Option(min=0, help="Declare N GPUs (used when none are detected, or to use fewer)."),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            help="Database URL, e.g. postgresql+psycopg://user:pw@host/db (default: SQLite)."
        ),
    ] = None,
    quotas: Annotated[
        str | None,
        typer.Option(
            help="Tenants, queues and quotas (YAML, see docs/quotas.md); they stay in force"
            " for later starts. 'default' goes back to the one queue 'default'.",
            metavar="FILE|default",
        ),
    ] = None,
    policy: Annotated[str, typer.Option(help=f"One of: {', '.join(POLICIES)}.")] = "allot",
    oidc: Annotated[
        Path | None,
        typer.Option(
            help="Accept JWTs of the site's identity provider (YAML, see docs/tenancy.md).",
            metavar="FILE",
        ),
    ] = None,
    workdir_root: Annotated[
        list[Path] | None,
        typer.Option(
            help="Jobs may name working directories only inside these (repeat for several;"
            " never inside the data directory).",
            metavar="DIR",
        ),
    ] = None,
    rate_limit: Annotated[
        float,
        typer.Option(
            min=0.1, help="Requests per second per token (bursts of 10x; cluster admins: none)."
        ),
    ] = 100.0,
    executor: Annotated[
        str,
        typer.Option(
            help="Where jobs run: 'local' (processes on this machine) or 'slurm' (a Slurm"
            " cluster, see docs/slurm.md).",
            envvar="ALLOT_EXECUTOR",
        ),
    ] = "local",
    partition: Annotated[
        str | None,
        typer.Option(
            help="With --executor slurm: the partition whose nodes allot schedules"
            " (default: every node).",
            envvar="ALLOT_SLURM_PARTITION",
        ),
    ] = None,
    metrics: Annotated[
        bool,
        typer.Option(
            help="Serve Prometheus metrics at /metrics (to <data dir>/metrics-token and"
            " cluster admins; see docs/observability.md)."
        ),
    ] = True,
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            help="Export traces of each job's way to running over OTLP/HTTP to this collector"
            " (default: $OTEL_EXPORTER_OTLP_ENDPOINT; none: off). Needs allot[otlp].",
            metavar="URL",
        ),
    ] = None,
    prices: Annotated[
        Path | None,
        typer.Option(
            help="Prices per flavor with effective dates (YAML, see docs/metering.md); default:"
            " the flavor catalog's list prices.",
            metavar="FILE",
        ),
    ] = None,
    budgets: Annotated[
        Path | None,
        typer.Option(
            help="Money budgets per tenant or user, enforced at admission (YAML, see"
            " docs/metering.md).",
            metavar="FILE",
        ),
    ] = None,
    idle: Annotated[
        str,
        typer.Option(help="Idle capacity's cost in usage reports: share or unallocated."),
    ] = "unallocated",
) -> None:
    """Run the allot server: REST API, scheduler and local executor."""
    # Imported here: only `up` needs the server and its adapters.
    from allot.banner import queues_line, quotas_line, try_command
    from allot.cli import restore_plugins
    from allot.instance import ClaimError
    from allot.observe.tracing import TracingError
    from allot.server import EXECUTORS, ServerConfig, build, claim, serve

    restore_plugins()  # the server and its tasks get the user's environment as it was

    console = Console(stderr=True)

    def fail(message: str, status: int) -> typer.Exit:
        console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
        return typer.Exit(status)

    if policy not in POLICIES:
        known = ", ".join(POLICIES)
        raise fail(f"--policy: unknown policy {policy!r}; known: {known}", 2)
    if executor not in EXECUTORS:
        raise fail(f"--executor: unknown executor {executor!r}; known: {', '.join(EXECUTORS)}", 2)
    if partition is not None and executor != "slurm":
        raise fail("--partition: only with --executor slurm", 2)
    if idle not in ("share", "unallocated"):
        raise fail(f"--idle: must be share or unallocated, got {idle!r}", 2)
    if quotas is not None and not quotas:
        raise fail("--quotas: give a file, or 'default' for the built-in queue", 2)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration step
    config = ServerConfig(
        data_dir=data_dir or default_data_dir(),
        host=host,
        port=port,
        gpus=gpus,
        database_url=database,
        quotas_file=None if quotas in (None, DEFAULT_QUOTAS) else Path(quotas),
        default_quotas=quotas == DEFAULT_QUOTAS,
        policy=policy,
        oidc_file=oidc,
        workdir_roots=tuple(workdir_root or ()),
        rate_limit=rate_limit,
        executor=executor,
        partition=partition,
        metrics=metrics,
        otlp_endpoint=otlp_endpoint,
        prices_file=prices,
        budgets_file=budgets,
        idle=idle,
    )
    try:
        claims = claim(config)
    except (ClaimError, OSError) as err:
        raise fail(str(err), 1) from None
    try:
        try:
            server = build(config)
        except (ConfigError, SpecError, OSError, TracingError) as err:
            raise fail(str(err), 2) from None
        nodes = server.inventory.nodes
        queues = server.quotas.config.queues
        url = f"http://{host}:{port}"
        console.print(f"[bold]allot is up[/bold] at {url}  (policy {policy})")
        console.print(f"  nodes:  {escape(server.inventory.detail)}")
        console.print(f"  data:   {config.data_dir}")
        console.print(f"  token:  {server.token_path}  (the CLI reads it; or export ALLOT_TOKEN)")
        console.print(f"  quotas: {escape(quotas_line(server.quotas))}", soft_wrap=True)
        console.print(f"  queues: {escape(queues_line(queues))}", soft_wrap=True)
        if server.telemetry is not None:
            console.print(f"  gpu telemetry: {escape(server.telemetry.status)}", soft_wrap=True)
        if not any(n.gpus for n in nodes):
            console.print("  no GPU here: jobs may ask for CPUs only (declare GPUs with --gpus N)")
        console.print(f"  try:    {escape(try_command(queues, nodes))}", soft_wrap=True)
        serve(server, claims.sock)
    finally:
        claims.release()
