"""``allot simulate``: replay a trace on a cluster under one or more policies and compare them.

Reads the trace and the cluster file, runs one simulation per policy with a progress bar, then
prints a side-by-side table (``allot.cli.simulate_table``) and writes ``report.json`` and the
plots into ``--out``. Every bad input (unknown policy, malformed row, a cluster no job fits)
ends with one clear error line naming the file, line and field, and exit status 2; nothing is
written then. ``--trace-format`` is a choice, so the option parser refuses an unknown format
with the list (also exit status 2). A trace whose format was inferred from its suffix and
fails to parse says so in its error line.
"""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # the simulator is imported inside the command: `allot --help` stays fast
    from allot.core.policy import Policy
    from allot.sim.cost import CostReport
    from allot.sim.workload import TraceJob


class TraceFormat(StrEnum):
    """The trace formats ``load_trace`` reads (``TRACE_FORMATS``)."""

    philly = "philly"
    alibaba2023 = "alibaba2023"
    allot = "allot"
    synthetic = "synthetic"


class Estimates(StrEnum):
    """Where the scheduler's runtime estimates come from."""

    none = "none"
    predicted = "predicted"
    exact = "exact"
    keep = "keep"


class Checkpointable(StrEnum):
    """Which jobs can checkpoint."""

    keep = "keep"
    all = "all"
    none = "none"


class OutputFormat(StrEnum):
    """How the outcome is printed."""

    table = "table"
    json = "json"


def _infer_format(trace: Path) -> str:
    from allot.config.errors import ConfigError
    from allot.sim.traces import TRACE_FORMATS

    suffix = trace.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "synthetic"
    if suffix in (".csv", ".parquet"):
        return "allot"
    raise ConfigError(
        str(trace),
        f"cannot tell the format from the name; pass --trace-format ({', '.join(TRACE_FORMATS)})",
    )


def _read_trace(
    trace: Path, chosen: TraceFormat | None, limit: int | None
) -> tuple[str, list[TraceJob]]:
    """The trace's format and jobs. When the format was inferred from the file name, a trace
    that fails to parse says so, since the name may be what misled."""
    from allot.config.errors import ConfigError
    from allot.sim.traces import load_trace

    if chosen is not None:
        return chosen.value, load_trace(trace, chosen.value, limit=limit)
    fmt = _infer_format(trace)
    try:
        return fmt, load_trace(trace, fmt, limit=limit)
    except ConfigError as err:
        if not trace.is_file():
            raise
        hint = f"(format inferred as {fmt!r} from the {trace.suffix} suffix; pass --trace-format)"
        err.args = (f"{err} {hint}",)
        raise


def _policies(names: str) -> list[Policy]:
    from allot.core.policy import UnknownPolicyError, get_policy

    chosen = [n.strip() for n in names.split(",") if n.strip()]
    if not chosen:
        raise UnknownPolicyError("--policy: give at least one policy name")
    if len(set(chosen)) != len(chosen):
        raise UnknownPolicyError(f"--policy: a policy is named twice in {names!r}")
    return [get_policy(n) for n in chosen]


def simulate(
    trace: Annotated[
        Path,
        typer.Option(metavar="FILE", help="Trace file (CSV/Parquet) or synthetic spec (YAML)."),
    ],
    cluster: Annotated[Path, typer.Option(metavar="FILE", help="Cluster description (YAML).")],
    quotas: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="Tenants, queues, cohorts and quotas (YAML, see docs/quotas.md)."
        ),
    ] = None,
    trace_format: Annotated[
        TraceFormat | None,
        typer.Option(
            case_sensitive=False,
            metavar="FORMAT",
            help="philly, alibaba2023, allot or synthetic; inferred from the name if omitted "
            "(.csv/.parquet: allot, .yaml: synthetic).",
        ),
    ] = None,
    policy: Annotated[
        str, typer.Option(metavar="NAMES", help="Comma-separated policies to compare.")
    ] = ("fifo,backfill"),
    out: Annotated[
        Path, typer.Option(metavar="DIR", help="Directory for report.json and plots.")
    ] = Path("out/simulate"),
    limit: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="Replay only the first N jobs.")
    ] = None,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed for random node failures.")] = 0,
    estimates: Annotated[
        Estimates,
        typer.Option(
            metavar="KIND",
            help="Runtime estimates the scheduler sees: none (only the trace's time limits, "
            "as a live system), predicted (learned online from completed jobs), the trace's "
            "real duration (exact, an upper bound), or what the trace carries (keep).",
        ),
    ] = Estimates.none,
    checkpointable: Annotated[
        Checkpointable,
        typer.Option(
            metavar="WHICH",
            help="Jobs that resume from a checkpoint after a preemption: as the trace says "
            "(keep), all, or none.",
        ),
    ] = Checkpointable.keep,
    checkpoint_period: Annotated[
        float,
        typer.Option(
            min=0,
            metavar="SECONDS",
            help="A checkpointable job checkpoints this often (0: at the stop).",
        ),
    ] = 1_800.0,
    restart_overhead: Annotated[
        float,
        typer.Option(min=0, metavar="SECONDS", help="Time to reload a checkpoint on restart."),
    ] = 60.0,
    output: Annotated[
        OutputFormat, typer.Option(metavar="FORMAT", help="table or json.")
    ] = OutputFormat.table,
    plots: Annotated[bool, typer.Option(help="Write PNG plots.")] = True,
    prices: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Prices per flavor (YAML, docs/metering.md; effective dates in trace seconds)."
            " Default: the flavor catalog's list prices.",
        ),
    ] = None,
    budgets: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Replay money budgets (YAML, docs/metering.md): jobs wait as they would live.",
        ),
    ] = None,
) -> None:
    """Replay a trace on a cluster under each policy and compare them side by side."""
    # The simulator, its plots and the progress bar load here, only for this command.
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    from allot.cli.simulate_cost import cost_table, sim_prices
    from allot.cli.simulate_table import comparison_table
    from allot.config.errors import ConfigError
    from allot.config.quotas import check_against_cluster, load_quotas
    from allot.core.model import SpecError
    from allot.core.policy import UnknownPolicyError
    from allot.metering.budgets import load_budgets
    from allot.sim.cluster import load_cluster
    from allot.sim.cost import SimBudgets, cost_report
    from allot.sim.engine import (
        Checkpointing,
        Simulation,
        SimulationError,
        check_some_job_fits,
        with_estimates,
    )
    from allot.sim.metrics import compute_metrics
    from allot.sim.predict import RuntimePredictor
    from allot.sim.report import write_plots, write_report
    from allot.sim.result import SimResult
    from allot.sim.workload import with_checkpointing

    console = Console(stderr=output is OutputFormat.json)
    try:
        chosen = _policies(policy)
        config = load_cluster(cluster)
        quota_config = None
        if quotas is not None:
            quota_config = load_quotas(quotas)
            check_against_cluster(quota_config, config.cluster.flavors, quotas)
        fmt, jobs = _read_trace(trace, trace_format, limit)
        workload = with_checkpointing(with_estimates(jobs, estimates.value), checkpointable.value)
        check_some_job_fits(
            config.cluster, workload, cluster_file=str(cluster), trace_file=str(trace)
        )
        price_list = sim_prices(prices, config.cluster.flavors)
        book = None if budgets is None else load_budgets(budgets)
    except (ConfigError, SimulationError, UnknownPolicyError, SpecError, OSError) as err:
        console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None

    results: list[SimResult] = []
    costs: dict[str, CostReport] = {}
    wall: dict[str, float] = {}
    with Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=output is OutputFormat.json,
    ) as bar:
        for p in chosen:
            task = bar.add_task(p.name, total=len(workload))

            def progress(done: int, total: int, task: TaskID = task) -> None:
                bar.update(task, completed=done, total=total)

            started = time.perf_counter()
            replayed = None if book is None else SimBudgets(book, price_list, config.cluster)
            try:
                sim = Simulation(
                    config.cluster,
                    workload,
                    p,
                    quotas=quota_config,
                    failures=config.failures,
                    seed=seed,
                    progress=progress,
                    checkpointing=Checkpointing(checkpoint_period, restart_overhead),
                    predictor=RuntimePredictor() if estimates is Estimates.predicted else None,
                    admission=None if replayed is None else replayed.admission,
                    on_plan=None if replayed is None else replayed.on_plan,
                    billing=price_list,
                )
                if replayed is not None:
                    replayed.attach(sim.result)
                result = sim.run()
            except SimulationError as err:
                console.print(
                    f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True
                )
                raise typer.Exit(2) from None
            wall[p.name] = round(time.perf_counter() - started, 3)
            results.append(result)
            costs[p.name] = cost_report(result, config.cluster, price_list, budgets=replayed)

    metrics = {r.policy: compute_metrics(r) for r in results}
    meta: dict[str, object] = {
        "trace": str(trace),
        "trace_format": fmt,
        "cluster": str(cluster),
        "cluster_name": config.cluster.name,
        "nodes": len(config.cluster.nodes),
        "cluster_gpus": config.cluster.total_gpus,
        "quotas": None if quotas is None else str(quotas),
        "jobs": len(workload),
        "limit": limit,
        "estimates": estimates.value,
        "checkpointable": checkpointable.value,
        "checkpoint_period_s": checkpoint_period,
        "restart_overhead_s": restart_overhead,
        "seed": seed,
        "failures": config.failures is not None,
        "wall_seconds": wall,
        "prices": None if prices is None else str(prices),
        "budgets": None if budgets is None else str(budgets),
        "cost": {name: report.to_dict() for name, report in costs.items()},
    }
    report = write_report(out, results=results, metrics=metrics, meta=meta)
    written = [report]
    title = (
        f"{trace.name} on {config.cluster.name} "
        f"({config.cluster.total_gpus} GPUs, {len(workload):,} jobs)"
    )
    if plots:
        written += write_plots(out, results, config.cluster.total_gpus, subject=title)
    if output is OutputFormat.json:
        typer.echo(json.dumps(json.loads(report.read_text()), indent=2))
        return
    console.print(comparison_table(metrics, title))
    console.print(cost_table(costs, budgets is not None))
    for name, seconds in wall.items():
        events = next(r.events for r in results if r.policy == name)
        console.print(f"{name}: {seconds:.1f} s wall, {events / max(seconds, 1e-9):,.0f} events/s")
    console.print("wrote " + ", ".join(str(p) for p in written))
