"""``allot up``: run the allot server on this machine (the embedded default: SQLite in the
data directory and the local process executor). Blocks until interrupted; running jobs keep
running and are adopted by the next ``allot up``."""

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
        Path | None, typer.Option(help="Tenants, queues and quotas (YAML, see docs/quotas.md).")
    ] = None,
    policy: Annotated[str, typer.Option(help=f"One of: {', '.join(POLICIES)}.")] = "allot",
) -> None:
    """Run the allot server: REST API, scheduler and local executor."""
    # Imported here: only `up` needs the server and its adapters.
    from allot.server import ServerConfig, build, serve

    console = Console(stderr=True)
    if policy not in POLICIES:
        known = ", ".join(POLICIES)
        console.print(
            f"[red]error:[/red] --policy: unknown policy {escape(policy)!r}; known: {known}"
        )
        raise typer.Exit(2)
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
        quotas_file=quotas,
        policy=policy,
    )
    try:
        server = build(config)
    except (ConfigError, SpecError, OSError) as err:
        console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    url = f"http://{host}:{port}"
    console.print(f"[bold]allot is up[/bold] at {url}  (policy {policy})")
    console.print(f"  nodes: {escape(server.inventory.detail)}")
    console.print(f"  data:  {config.data_dir}")
    console.print(f"  token: {server.token_path}  (the CLI reads it; or export ALLOT_TOKEN)")
    if any(n.gpus for n in server.inventory.nodes):
        console.print(
            "  try:   allot submit --gpus 1 -- sh -c 'echo $CUDA_VISIBLE_DEVICES'; allot jobs"
        )
    else:
        console.print("  no GPU here: jobs may ask for CPUs only (declare GPUs with --gpus N)")
        console.print("  try:   allot submit --cpus 1 -- echo hello; allot jobs --all")
    serve(server)
