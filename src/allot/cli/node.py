"""``allot node check``: run the microbenchmarks of ``allot.profile.bench`` on this machine
(GEMM TFLOP/s, memory, host-device and all-reduce bandwidth), and have the server judge them
against the node's flavor, store them and, with ``--drain``, drain a node below expected.
``--no-record`` judges them here against the catalog and stores nothing.
"""

from __future__ import annotations

import socket
from typing import Annotated

import typer
from rich.markup import escape

from allot.cli import output
from allot.cli.command import Command, Group
from allot.cli.output import OutputFormat, OutputOption, TokenOption, UrlOption, reported

node = typer.Typer(
    name="node",
    help="Check this machine's GPUs against its flavor: allot node check.",
    no_args_is_help=True,
    add_completion=False,
    cls=Group,
)


@node.command("check", cls=Command)
def check(
    name: Annotated[
        str | None,
        typer.Option(
            "--node", metavar="NAME", help="This node's name in allot (default: the hostname)."
        ),
    ] = None,
    drain: Annotated[
        bool, typer.Option("--drain", help="Drain the node when it measures below expected.")
    ] = False,
    record: Annotated[
        bool,
        typer.Option(
            "--record/--no-record",
            help="Store the results on the server (default), or only print them.",
            show_default=False,
        ),
    ] = True,
    flavor: Annotated[
        str | None,
        typer.Option(metavar="FLAVOR", help="With --no-record: the flavor to compare with."),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Smaller sizes: seconds, not minutes.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Run short microbenchmarks on this node and compare them with its flavor's figures."""
    from allot.profile.bench import run_checks

    node_name = name or socket.gethostname().split(".", 1)[0] or "localhost"
    with reported(node_name, fmt):
        ran = run_checks(quick=quick)
        if record:
            from allot.wire.profiling import MeasurementIn, NodeCheckIn

            measured = [
                MeasurementIn(name=m.name, device=m.device, value=m.value)  # type: ignore[arg-type]
                for m in ran.measurements
            ]
            with output.make_client(url, token) as allot:
                stored = allot.record_node_check(
                    node_name, NodeCheckIn(device=ran.device, measurements=measured, drain=drain)
                )
            results = [
                (r.name, r.device, r.value, r.unit, r.expected, r.ok) for r in stored.results
            ]
            summary, healthy = stored.summary, stored.healthy
        else:
            from allot.profile.catalog import load_catalog
            from allot.profile.health import judge

            catalog = load_catalog()
            spec = catalog.find(flavor) if flavor else None
            verdict = judge(ran.measurements, spec, catalog.expected, flavor=flavor or ran.device)
            results = [
                (r.name, r.device, r.value, r.unit, r.expected, r.ok) for r in verdict.results
            ]
            summary, healthy = verdict.summary, verdict.healthy
    if fmt is OutputFormat.json:
        output.print_json(
            {
                "node": node_name,
                "device": ran.device,
                "healthy": healthy,
                "summary": summary,
                "notes": list(ran.notes),
                "recorded": record,
                "results": [
                    {"name": n, "device": d, "value": v, "unit": u, "expected": e, "ok": ok}
                    for n, d, v, u, e, ok in results
                ],
            }
        )
    else:
        grid = output.table("CHECK", "DEVICE", "MEASURED", "EXPECTED", "VERDICT")
        for n, d, v, u, e, ok in results:
            verdict_text = "-" if ok is None else ("ok" if ok else "LOW")
            expected = "-" if e is None else f"{e:.4g} {u}"
            grid.add_row(n, escape(d), f"{v:.4g} {u}", expected, verdict_text)
        output.print_table(grid)
        output.say(escape(f"{node_name}: {summary}"))
        for note in ran.notes:
            output.say(escape(f"note: {note}"))
        if not record:
            output.say("not recorded (--no-record)")
    if healthy is False:
        raise typer.Exit(output.FAILED)
