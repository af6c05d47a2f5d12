"""How simulation results are kept and drawn: ``report.json`` and two plots.

``write_report`` writes ``report.json`` with a fixed key order and indent so two reports diff
line by line; it writes a temporary file and renames it, so a reader never sees half a report.
Each policy carries a ``timeline`` to re-plot from: the GPUs allocated and the jobs waiting,
sampled as step functions at ``TIMELINE_POINTS`` evenly spaced instants from the first sample to
the end of the run (the value at an instant is the last sample at or before it, so a peak
shorter than the spacing may fall between instants); each of its lists is written on one line.
``write_plots`` draws the JCT CDF and the allocation and queue timelines with matplotlib's
``Figure`` directly (no pyplot, so no global backend or GUI state); ``jct_cdf_figure`` and
``timeline_figure`` return the figures unsaved. Each title names what ran (the ``subject``: the
trace and the cluster). Each policy has its own line style and markers (placed apart from the
other policies'), so lines that lie on top of each other stay visible, and a policy whose
plotted results equal an earlier policy's says so in the legend (``sjf (same as fifo)``). Long
timelines are downsampled by bucket maxima, which keeps every peak visible. (The comparison
table is drawn by the CLI, ``allot.cli.simulate_table``.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogFormatter, MaxNLocator

from allot.sim.metrics import FloatArray, Metrics
from allot.sim.result import SimResult

REPORT_FILE = "report.json"
JCT_CDF_FILE = "jct_cdf.png"
TIMELINE_FILE = "timeline.png"

MAX_PLOT_POINTS = 5_000
"""Most points drawn per policy and line; longer series are reduced to bucket maxima."""

TIMELINE_POINTS = 500
"""Instants at which ``report.json`` samples each policy's timeline (fewer when the run spans
no time: one)."""

_DAY_S = 86_400.0
_HOUR_S = 3_600.0
_SECONDS_DIGITS = 3
_GPU_DIGITS = 3


# ---------------------------------------------------------------------------------------------
# report.json


def write_report(
    out_dir: Path,
    *,
    results: Sequence[SimResult],
    metrics: Mapping[str, Metrics],
    meta: Mapping[str, object],
) -> Path:
    """Write ``out_dir/report.json`` and return its path; ``out_dir`` is created if needed.

    ``metrics`` is keyed by policy name, and each name must be the ``policy`` of one of
    ``results``; policies keep the mapping's order and ``meta`` keeps its own order. Raises
    ValueError naming a policy that has metrics but no result.
    """
    by_policy = {result.policy: result for result in results}
    missing = [name for name in metrics if name not in by_policy]
    if missing:
        known = ", ".join(sorted(by_policy)) or "none"
        raise ValueError(
            f"metrics: policy {missing[0]!r} has no SimResult; every policy in metrics "
            f"must be the policy of one result (results hold: {known})"
        )
    never_fit = results[0].never_fit if results else []
    report: dict[str, Any] = {
        "meta": {str(key): _json_value(value, str(key)) for key, value in meta.items()},
        "policies": {
            name: {
                **figures.to_dict(),
                "events": by_policy[name].events,
                "cycles": by_policy[name].cycles,
                "timeline": {
                    key: _OneLine(values)
                    for key, values in timeline_samples(by_policy[name]).items()
                },
            }
            for name, figures in metrics.items()
        },
        "never_fit": [
            {"job_id": job.job_id, "tenant": job.tenant, "reason": job.reason}
            for job in sorted(never_fit, key=lambda job: job.job_id)
        ],
    }
    text = _dumps(report)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / REPORT_FILE
    partial = path.with_name(f".{REPORT_FILE}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path


def timeline_samples(result: SimResult, points: int = TIMELINE_POINTS) -> dict[str, list[Any]]:
    """The run's allocation and queue length at ``points`` evenly spaced instants from the
    first sample to ``end_time``: ``{"t_s": [...], "allocated_gpus": [...], "queue_length":
    [...]}``. Each value is the step function's value at that instant (the last sample at or
    before it). One instant when the run spans no time; empty lists for an empty timeline."""
    timeline = result.timeline
    if not timeline.times:
        return {"t_s": [], "allocated_gpus": [], "queue_length": []}
    times = np.asarray(timeline.times, dtype=np.float64)
    first, last = float(times[0]), max(result.end_time, float(times[-1]))
    instants = np.linspace(first, last, points) if last > first else np.array([first])
    at = np.searchsorted(times, instants, side="right") - 1
    allocated = np.asarray(timeline.allocated_gpu_milli, dtype=np.int64)[at] / 1000.0
    queue = np.asarray(timeline.queue_length, dtype=np.int64)[at]
    return {
        "t_s": [round(float(t), _SECONDS_DIGITS) + 0.0 for t in instants],
        "allocated_gpus": [round(float(g), _GPU_DIGITS) + 0.0 for g in allocated],
        "queue_length": [int(q) for q in queue],
    }


class _OneLine:
    """A list ``_dumps`` writes on a single line inside the indented document."""

    __slots__ = ("values",)

    def __init__(self, values: list[Any]) -> None:
        self.values = values


def _dumps(report: Mapping[str, Any]) -> str:
    """``report`` as indented JSON, with every ``_OneLine`` list on one line (a long series
    would otherwise take a line per number)."""
    inline: list[str] = []

    def mark(value: object) -> str:
        if not isinstance(value, _OneLine):
            raise TypeError(f"report.json cannot hold a {type(value).__name__}")
        inline.append(json.dumps(value.values, ensure_ascii=False))
        return f"\x00inline:{len(inline) - 1}\x00"

    text = json.dumps(report, indent=2, ensure_ascii=False, default=mark)
    for i, compact in enumerate(inline):
        text = text.replace(json.dumps(f"\x00inline:{i}\x00"), compact, 1)
    return text + "\n"


def _json_value(value: object, key: str) -> object:
    """``value`` in a form json can write: paths as strings, numpy scalars as Python numbers.

    Raises TypeError naming ``key`` for a value JSON has no form for.
    """
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _json_value(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v, f"{key}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"meta: {key} is a {type(value).__name__}; report.json takes strings, numbers, "
        "booleans, None, paths, and lists or mappings of those"
    )


# ---------------------------------------------------------------------------------------------
# Plots


# One look per policy, in order: a line style and a marker (drawn every so often, at an offset
# of its own, so identical lines still show each policy's markers).
_LINE_STYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_MARK_SPACING = 0.12  # between markers, as a fraction of the axes' diagonal


def _look(index: int, x: FloatArray | None = None) -> dict[str, Any]:
    """Matplotlib keywords for the ``index``-th policy's line; with ``x`` (a time axis), its
    markers sit at evenly spaced instants instead of evenly along the line, which a jagged
    timeline would crowd with them."""
    offset = 0.03 * (index % 4) + 0.01
    markevery: Any = (offset, _MARK_SPACING)
    if x is not None and x.size:
        span = float(x[-1] - x[0]) or 1.0
        instants = x[0] + span * np.arange(offset, 1.0, _MARK_SPACING)
        markevery = sorted(set(np.searchsorted(x, instants, side="right").clip(1, x.size) - 1))
        markevery = [int(i) for i in markevery]
    return {
        "linestyle": _LINE_STYLES[index % len(_LINE_STYLES)],
        "marker": _MARKERS[index % len(_MARKERS)],
        "markevery": markevery,
        "markersize": 5,
        "markerfacecolor": "none",
    }


def _labels(names: Sequence[str], keys: Sequence[object]) -> list[str]:
    """Legend labels: a policy whose ``key`` (what its line plots) equals an earlier one's
    is marked ``name (same as earlier)``."""
    labels = []
    for i, (name, key) in enumerate(zip(names, keys, strict=True)):
        same = next((names[j] for j in range(i) if keys[j] == key), None)
        labels.append(name if same is None else f"{name} (same as {same})")
    return labels


def _title(what: str, subject: str | None) -> str:
    return what if not subject else f"{what}\n{subject}"


def write_plots(
    out_dir: Path, results: Sequence[SimResult], cluster_gpus: int, *, subject: str | None = None
) -> list[Path]:
    """Write ``jct_cdf.png`` and ``timeline.png`` into ``out_dir`` (created if needed);
    ``subject`` (e.g. ``trace.csv on cluster (64 GPUs)``) goes under each title."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cdf_path = out_dir / JCT_CDF_FILE
    timeline_path = out_dir / TIMELINE_FILE
    plot_jct_cdf(results, cdf_path, subject=subject)
    plot_timeline(results, timeline_path, cluster_gpus, subject=subject)
    return [cdf_path, timeline_path]


def plot_jct_cdf(results: Sequence[SimResult], path: Path, *, subject: str | None = None) -> None:
    """Draw the CDF of job completion time into ``path`` (see ``jct_cdf_figure``)."""
    jct_cdf_figure(results, subject=subject).savefig(path, dpi=120)


def jct_cdf_figure(results: Sequence[SimResult], *, subject: str | None = None) -> Figure:
    """The CDF of job completion time, one line per policy, on a log axis in hours."""
    figure = Figure(figsize=(8, 5), layout="constrained")
    axes = figure.add_subplot()
    drawn = False
    completions = [np.sort(_completion_hours(result)) for result in results]
    labels = _labels([r.policy for r in results], [tuple(c) for c in completions])
    for index, (hours, label) in enumerate(zip(completions, labels, strict=True)):
        step = 1.0 / max(hours.size, 1)
        share = np.arange(1, hours.size + 1, dtype=np.float64) * step
        # A log axis cannot show a zero JCT; such jobs still count in the fraction.
        keep = hours > 0
        hours, share = hours[keep], share[keep]
        if hours.size:
            # Begin with the rise of the first step, from the share below the first JCT.
            hours = np.insert(hours, 0, hours[0])
            share = np.insert(share, 0, share[0] - step)
        if hours.size > MAX_PLOT_POINTS:
            # The CDF is monotone, so evenly spaced ranks keep its shape; keep the last rank.
            ranks = np.linspace(0, hours.size - 1, MAX_PLOT_POINTS).round().astype(np.intp)
            hours, share = hours[ranks], share[ranks]
        if hours.size:
            axes.step(hours, share, where="post", label=label, **_look(index))
            drawn = True
    if drawn:
        axes.set_xscale("log")
        # Plain numbers read faster than 10^x for hours; minor labels appear on narrow ranges.
        axes.xaxis.set_major_formatter(FuncFormatter(lambda hours, _: f"{hours:g}"))
        axes.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
        axes.legend(loc="lower right")
    else:
        axes.text(0.5, 0.5, "no completed jobs", ha="center", va="center")
    axes.set_xlabel("job completion time (hours, log scale)")
    axes.set_ylabel("fraction of completed jobs")
    axes.set_ylim(0.0, 1.0)
    axes.set_title(_title("Job completion time CDF", subject))
    axes.grid(True, which="major", alpha=0.3)
    return figure


def plot_timeline(
    results: Sequence[SimResult], path: Path, cluster_gpus: int, *, subject: str | None = None
) -> None:
    """Draw GPU allocation and queue length into ``path`` (see ``timeline_figure``)."""
    timeline_figure(results, cluster_gpus, subject=subject).savefig(path, dpi=120)


def timeline_figure(
    results: Sequence[SimResult], cluster_gpus: int, *, subject: str | None = None
) -> Figure:
    """GPUs allocated (with capacity dashed) and queue length over days, one line per policy,
    as step plots sharing the time axis."""
    figure = Figure(figsize=(10, 6.5), layout="constrained")
    allocation_axes, queue_axes = figure.subplots(2, 1, sharex=True)
    peak = float(cluster_gpus)
    keys = [
        (
            tuple(r.timeline.times),
            tuple(r.timeline.allocated_gpu_milli),
            tuple(r.timeline.queue_length),
        )
        for r in results
    ]
    labels = _labels([r.policy for r in results], keys)
    for index, (result, label) in enumerate(zip(results, labels, strict=True)):
        timeline = result.timeline
        times = np.asarray(timeline.times, dtype=np.float64)
        allocated = np.asarray(timeline.allocated_gpu_milli, dtype=np.float64) / 1000.0
        queue = np.asarray(timeline.queue_length, dtype=np.float64)
        days, allocated = _step_series(times, allocated, result.end_time)
        _, queue = _step_series(times, queue, result.end_time)
        peak = max(peak, float(allocated.max(initial=0.0)))
        look = _look(index, days)
        (line,) = allocation_axes.step(
            days, allocated, where="post", linewidth=1, label=label, **look
        )
        queue_axes.step(days, queue, where="post", linewidth=1, color=line.get_color(), **look)
    allocation_axes.axhline(
        cluster_gpus, linestyle="--", color="grey", linewidth=1, label="capacity"
    )
    allocation_axes.set_ylabel("GPUs allocated")
    # Headroom above the top keeps the dashed capacity line and a full cluster visible.
    allocation_axes.set_ylim(0, max(peak, 1.0) * 1.08)
    allocation_axes.set_title(_title("GPU allocation and queue length", subject))
    # Outside the axes: a busy cluster fills every corner of the plot.
    allocation_axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    queue_axes.set_ylabel("jobs waiting")
    queue_axes.set_ylim(bottom=0)
    queue_axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    queue_axes.set_xlabel("time (days)")
    for axes in (allocation_axes, queue_axes):
        axes.grid(True, alpha=0.3)
    return figure


def _completion_hours(result: SimResult) -> FloatArray:
    return np.array(
        [(r.finish - r.submit) / _HOUR_S for r in result.jobs if r.finish is not None],
        dtype=np.float64,
    )


def _step_series(
    times: FloatArray, values: FloatArray, end_time: float
) -> tuple[FloatArray, FloatArray]:
    """A timeline ready for a post-step plot: in days, at most ``MAX_PLOT_POINTS`` points
    (bucket maxima), and held to ``end_time`` so the last step has its full width."""
    if times.size > MAX_PLOT_POINTS:
        starts = np.linspace(0, times.size, MAX_PLOT_POINTS, endpoint=False).astype(np.intp)
        times, values = times[starts], np.maximum.reduceat(values, starts)
    if times.size and end_time > times[-1]:
        times = np.append(times, end_time)
        values = np.append(values, values[-1])
    return times / _DAY_S, values
