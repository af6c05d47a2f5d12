"""The comparison table ``allot simulate`` prints: policies in columns, metrics in rows.

Figures are shown in human units (42 s, 35 min, 1.2 h, 3.5 d; percentages; counts with
thousands separators); a missing figure is a dash. A row is ranked only when at least two
policies have a value and they are not all equal; the best value is then bold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from rich.table import Table

from allot.sim.metrics import Metrics

_DAY_S = 86_400.0
_HOUR_S = 3_600.0
_MISSING = "—"

_Better = Literal["lower", "higher"] | None


def _duration(seconds: float | None) -> str:
    """Seconds in the largest unit that keeps the number readable: 42 s, 35 min, 1.2 h, 3.5 d."""
    if seconds is None:
        return _MISSING
    for unit_s, unit in ((_DAY_S, "d"), (_HOUR_S, "h"), (60.0, "min")):
        # Hours run up to two days: "30 h" reads better than "1.2 d" for a long job.
        threshold = 2 * _DAY_S if unit == "d" else unit_s
        if abs(seconds) >= threshold:
            return f"{_number(seconds / unit_s)} {unit}"
    return f"{_number(seconds)} s"


def _number(value: float) -> str:
    """One decimal below ten, whole numbers above: 3.4, 35, 1,204."""
    return f"{value:.1f}" if abs(value) < 9.95 else f"{value:,.0f}"


def _ratio(value: float | None) -> str:
    if value is None:
        return _MISSING
    return f"{value:.2f}" if abs(value) < 99.995 else f"{value:,.0f}"


def _index(value: float | None) -> str:
    return _MISSING if value is None else f"{value:.3f}"


def _percent(value: float | None) -> str:
    return _MISSING if value is None else f"{100 * value:.1f} %"


def _amount(value: float | None) -> str:
    return _MISSING if value is None else _number(value)


def _count(value: float | None) -> str:
    return _MISSING if value is None else f"{value:,.0f}"


_Row = tuple[str, Callable[[Metrics], float | None], Callable[[float | None], str], _Better]

# Sections of (label, figure, format, which direction is better); None leaves a row unranked
# (timeouts and failure restarts follow from the trace and the failure draws more than from
# the policy).
_SECTIONS: tuple[tuple[_Row, ...], ...] = (
    (
        ("Jobs completed", lambda m: m.completed, _count, "higher"),
        ("Timed out", lambda m: m.timed_out, _count, None),
        ("Unfinished", lambda m: m.unfinished, _count, "lower"),
        ("Never fit", lambda m: m.never_fit, _count, None),
    ),
    (
        ("JCT mean", lambda m: m.jct_s.mean, _duration, "lower"),
        ("JCT p50", lambda m: m.jct_s.median, _duration, "lower"),
        ("JCT p95", lambda m: m.jct_s.p95, _duration, "lower"),
        ("JCT p99", lambda m: m.jct_s.p99, _duration, "lower"),
    ),
    (
        ("Queueing delay mean", lambda m: m.queueing_delay_s.mean, _duration, "lower"),
        ("Queueing delay p50", lambda m: m.queueing_delay_s.median, _duration, "lower"),
        ("Queueing delay p95", lambda m: m.queueing_delay_s.p95, _duration, "lower"),
        ("Queueing delay p99", lambda m: m.queueing_delay_s.p99, _duration, "lower"),
    ),
    (
        ("Bounded slowdown mean", lambda m: m.bounded_slowdown.mean, _ratio, "lower"),
        ("Bounded slowdown p95", lambda m: m.bounded_slowdown.p95, _ratio, "lower"),
    ),
    (
        ("Makespan", lambda m: m.makespan_s, _duration, "lower"),
        ("GPU allocation", lambda m: m.gpu_allocation_fraction, _percent, "higher"),
        ("Mean queue length", lambda m: m.mean_queue_length, _amount, "lower"),
        ("Jain's index (tenants)", lambda m: m.jain_index, _index, "higher"),
    ),
    (
        ("Preemptions", lambda m: m.preemptions, _count, "lower"),
        ("Failure restarts", lambda m: m.failure_restarts, _count, None),
        ("Lost GPU-hours", lambda m: m.lost_gpu_hours, _amount, "lower"),
    ),
)


def comparison_table(metrics: Mapping[str, Metrics], title: str) -> Table:
    """A table with one column per policy and one row per metric; the best value is bold.

    A row is ranked only when at least two policies have a value and they are not all equal.
    """
    table = Table(title=title, title_justify="left")
    table.add_column("Metric", style="bold", no_wrap=True)
    for name in metrics:
        table.add_column(name, justify="right", no_wrap=True)
    for section in _SECTIONS:
        for label, figure, show, better in section:
            values = [figure(m) for m in metrics.values()]
            best = _best(values, better)
            cells = [
                f"[bold]{show(v)}[/bold]" if best is not None and v == best else show(v)
                for v in values
            ]
            table.add_row(label, *cells)
        table.add_section()
    return table


def _best(values: Sequence[float | None], better: _Better) -> float | None:
    known = [v for v in values if v is not None]
    if better is None or len(known) < 2 or min(known) == max(known):
        return None
    return min(known) if better == "lower" else max(known)
