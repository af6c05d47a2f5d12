"""``allot profile`` and ``allot recommend``: a profiled job's analysis, and which flavor
gives it the most work per dollar. Each is one SDK call; the analysis runs on the server,
where the job's traces are. ``--plot`` draws the roofline locally from the answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from allot.cli import output
from allot.cli.output import OutputFormat, OutputOption, TokenOption, UrlOption, reported

if TYPE_CHECKING:
    from allot.wire.profiling import ProfileOut, RecommendationOut

JobId = Annotated[int, typer.Argument(metavar="JOB_ID", help="The job's id.", show_default=False)]
Flops = Annotated[
    float | None,
    typer.Option("--flops", metavar="N", help="FLOPs per step, instead of the counted ones."),
]
Bytes = Annotated[
    float | None,
    typer.Option("--bytes", metavar="N", help="Bytes moved per step, instead of counted."),
]


def _seconds(value: float) -> str:
    from allot.profile.bottleneck import seconds

    return seconds(value)


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.0%}" if whole > 0 else "-"


def profile(
    job_id: JobId,
    flops: Flops = None,
    bytes_: Bytes = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", metavar="FILE.png", help="Draw the roofline into this file."),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Analyse a profiled job: time split per rank, top kernels, roofline and its bottleneck.

    allot submit --profile -- python train.py   then   allot profile JOB_ID --plot roofline.png
    """
    with reported(str(job_id), fmt), output.make_client(url, token) as allot:
        found = allot.profile(job_id, flops, bytes_)
    if plot is not None:
        _plot(found, plot)
    if fmt is OutputFormat.json:
        output.print_json(found)
        return
    _print_profile(found)
    if plot is not None:
        output.say(f"Roofline drawn into {escape(str(plot))}")


def _print_profile(found: ProfileOut) -> None:
    b = found.bottleneck
    output.say(f"[bold]{escape(b.headline)}[/bold]")
    for line in b.evidence:
        output.say(f"  - {escape(line)}")
    output.say(f"  what helps: {escape(b.remedy)}")
    output.write("\n")
    where = f"job {found.job_id}, run {found.run_id} on {found.node} ({found.flavor})"
    steps = found.ranks[0].steps if found.ranks else 0
    output.say(escape(f"{where}: {found.traces} trace(s), {steps} profiled steps"))
    grid = output.table("RANK", "DEVICE", "STEP", "COMPUTE", "COMM", "COPIES", "IDLE", "OVERLAP",
                        "LOADER")  # fmt: skip
    for r in found.ranks:
        grid.add_row(
            str(r.rank),
            escape(r.device),
            _seconds(r.step_seconds),
            _share(r.compute, r.step_seconds),
            _share(r.communication, r.step_seconds),
            _share(r.memory_copies, r.step_seconds),
            _share(r.idle, r.step_seconds),
            "-" if r.communication_overlap is None else f"{r.communication_overlap:.0%}",
            _share(r.data_loader, r.step_seconds),
        )
    output.print_table(grid)
    if found.ranks and found.ranks[0].top_kernels:
        rank = found.ranks[0]
        label = "KERNEL" if rank.device != "cpu" else "OPERATOR"
        kernels = output.table(label, "CALLS/STEP", "TIME/STEP", "OF COMPUTE")
        for k in rank.top_kernels:
            kernels.add_row(escape(k.name[:80]), f"{k.calls:g}", _seconds(k.seconds),
                            f"{k.share:.0%}")  # fmt: skip
        output.print_table(kernels)
    origin = "counted from the trace" if found.counted else "as given"
    figures = (
        f"per step: {found.flops_per_step / 1e9:.4g} GFLOP, {found.bytes_per_step / 1e9:.4g} GB"
        f" moved ({origin})"
    )
    output.say(escape(figures))
    roof = found.roofline
    if roof is None:
        output.say(escape(f"roofline: {found.roofline_missing}"))
    else:
        output.say(
            escape(
                f"roofline on {roof.flavor} ({roof.source}; {roof.dtype} peak"
                f" {roof.peak_tflops:.4g} TFLOP/s, {roof.memory_gbps:.4g} GB/s, ridge"
                f" {roof.ridge_point:.3g} FLOP/byte): intensity {roof.intensity:.3g}"
                f" FLOP/byte, {roof.bound}-bound; achieved {roof.achieved_tflops:.4g} TFLOP/s"
                f" ({roof.achieved_in_compute_tflops:.4g} in compute time) of"
                f" {roof.attainable_tflops:.4g} attainable; MFU {roof.mfu:.2%}"
            )
        )
    if found.unprofiled_step_seconds is not None:
        output.say(
            escape(
                f"outside the profiled window a step took {_seconds(found.unprofiled_step_seconds)}"
                f" on average ({found.total_steps} steps in all)"
            )
        )


def _plot(found: ProfileOut, path: Path) -> None:
    from allot.cli.output import InputError
    from allot.profile.roofline import Placement, Roof, plot

    roof = found.roofline
    if roof is None:
        raise InputError(f"--plot: no roofline to draw: {found.roofline_missing}")
    step = found.step_seconds
    placement = Placement(
        roof=Roof(roof.flavor, roof.dtype, roof.peak_tflops * 1e12, roof.memory_gbps * 1e9),
        flops_per_step=found.flops_per_step,
        bytes_per_step=found.bytes_per_step,
        step_seconds=step,
        compute_seconds=found.flops_per_step / (roof.achieved_in_compute_tflops * 1e12)
        if roof.achieved_in_compute_tflops
        else 0.0,
        intensity=roof.intensity,
        achieved=roof.achieved_tflops * 1e12,
        achieved_in_compute=roof.achieved_in_compute_tflops * 1e12,
        attainable=roof.attainable_tflops * 1e12,
        mfu=roof.mfu,
        bound=roof.bound,
    )
    plot(placement, path, title=f"Job {found.job_id} on {roof.flavor}")


def recommend(
    job_id: JobId,
    steps: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", help="Steps to finish (default: the profiled run's)."),
    ] = None,
    flops: Flops = None,
    bytes_: Bytes = None,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Rank every GPU flavor for a profiled job by work per dollar and by time to finish."""
    with reported(str(job_id), fmt), output.make_client(url, token) as allot:
        found = allot.recommend(job_id, steps, flops, bytes_)
    if fmt is OutputFormat.json:
        output.print_json(found)
        return
    _print_recommendation(found)


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def _hours(hours: float) -> str:
    return _seconds(hours * 3600) if hours < 1 else f"{hours:,.3g} h"


def _print_recommendation(found: RecommendationOut) -> None:
    output.say(
        escape(
            f"job {found.job_id} ({found.job_class}), profiled on {found.profiled_on}:"
            f" {found.steps:,} steps on {found.gpus:g} GPU(s)"
        )
    )
    grid = output.table("FLAVOR", "STEP", "SPEEDUP", "BASIS", "$/HOUR", "STEPS/$", "TIME",
                        "COST", "RANK $", "RANK TIME")  # fmt: skip
    for e in found.estimates:
        name = e.flavor + (" *" if e.in_cluster else "")
        if e.fits_memory is False:
            name += " (too small)"
        basis = e.basis + (f" ({e.note})" if e.note else "")
        grid.add_row(
            escape(name),
            _seconds(e.step_seconds),
            f"{e.speedup:.2g}x",
            escape(basis),
            _money(e.price_per_hour),
            "-" if e.steps_per_dollar is None else f"{e.steps_per_dollar:,.0f}",
            _hours(e.hours_to_finish),
            _money(e.cost_to_finish),
            "-" if e.rank_by_cost is None else str(e.rank_by_cost),
            str(e.rank_by_time),
        )
    output.print_table(grid)
    output.say("* in this cluster")
    output.say("assumptions:")
    for line in found.assumptions:
        output.say(f"  - {escape(line)}")
    output.say(escape(f"recorded {found.recorded} per-flavor step times for placement"))
