"""Accuracy of start-time estimates on the Microsoft Philly trace: predicted vs actual start.

The trace is replayed in the simulator under one policy; every ``--every`` simulated seconds
within the measured window, the state at that instant (running jobs, the queue, fair-share
history) is run forward with ``allot.observe.forecast`` (what the live server does for
``allot jobs --start``), and each pending job's predicted start is compared with the start the
replay then gives it. Jobs the same instant's cycle starts are left out (their estimate is
"now", trivially right); so are jobs that never start.

Runtime estimates: ``exact`` (the trace's durations, the usual assumption for a trace without
user estimates) and ``noisy`` (each duration times a log-normal factor, sigma 0.7, seeded:
users' estimates are often off by 2x). Errors come from jobs submitted after the prediction
that go ahead, and from estimates that are wrong.

Run: ``.venv/bin/python benchmarks/eta.py [--from-day 30 --days 3 --every 3600]``.
Needs ``../shared/traces/philly/philly-2017-09-10.csv`` (or ``--trace PATH``).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from allot.core.model import JobId
from allot.core.policy import get_policy
from allot.observe.forecast import forecast
from allot.sim.cluster import load_cluster
from allot.sim.engine import Simulation, with_estimates
from allot.sim.traces import read_philly
from allot.sim.workload import TraceJob

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRACE = ROOT.parent / "shared" / "traces" / "philly" / "philly-2017-09-10.csv"
DAY = 86400.0


@dataclass
class Prediction:
    job_id: JobId
    at: float  # when the prediction was made
    start: float | None


@dataclass
class Measured:
    predictions: list[Prediction] = field(default_factory=list)
    forecast_seconds: list[float] = field(default_factory=list)
    pending_sizes: list[int] = field(default_factory=list)


class PredictingSimulation(Simulation):
    """The replay, forecasting the queue at sample instants within [begin, end)."""

    def __init__(self, *args: object, begin: float, end: float, every: float,
                 **kwargs: object) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.begin, self.end, self.every = begin, end, every
        self.next_sample = begin
        self.measured = Measured()

    def _cycle(self, now: float) -> None:
        if self.begin <= now < self.end and now >= self.next_sample and self.pending:
            self.next_sample = now + self.every
            snap = self.snapshot
            started = time.perf_counter()
            outlook = forecast(
                self.cluster,
                list(snap.running.values()),
                list(self.pending.values()),
                self.policy,
                now,
                quotas=None if snap.quota is None else snap.quota.config,
                history=snap.history,
                attained=dict(snap.attained),
                nominated=snap.nominated,
            )
            self.measured.forecast_seconds.append(time.perf_counter() - started)
            self.measured.pending_sizes.append(len(self.pending))
            self.measured.predictions.extend(
                Prediction(job_id, now, start) for job_id, start in outlook.starts.items()
            )
        super()._cycle(now)


def noisy(workload: list[TraceJob], sigma: float, seed: int) -> list[TraceJob]:
    rng = random.Random(seed)
    return [
        replace(
            j, spec=replace(j.spec, runtime_estimate=j.duration * math.exp(rng.gauss(0, sigma)))
        )
        for j in workload
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--cluster", type=Path, default=ROOT / "examples" / "cluster-philly.yaml")
    parser.add_argument("--policy", default="allot")
    parser.add_argument(
        "--from-day",
        type=float,
        default=30.0,
        help="start of the measured window, in days after the first job",
    )
    parser.add_argument("--days", type=float, default=3.0, help="length of the window")
    parser.add_argument(
        "--every", type=float, default=3600.0, help="simulated seconds between forecasts"
    )
    parser.add_argument("--modes", default="exact,noisy")
    args = parser.parse_args()  # fmt: skip
    if not args.trace.exists():
        sys.exit(f"needs the Philly trace at {args.trace} (../shared/traces is absent)")
    whole = read_philly(args.trace)
    first = min(j.spec.submit_time for j in whole)
    begin = first + args.from_day * DAY
    end = begin + args.days * DAY
    # Jobs until two days past the window: those are what jump ahead of the predicted jobs.
    workload = [j for j in whole if j.spec.submit_time < end + 2 * DAY]
    cluster = load_cluster(args.cluster).cluster
    policy = get_policy(args.policy)
    table = Table(
        title=f"Start-time estimates on Philly: policy {policy.name}, {cluster.total_gpus} GPUs,"
        f" days {args.from_day:g}-{args.from_day + args.days:g}, a forecast every"
        f" {args.every / 3600:g} h ({len(workload):,} jobs replayed)"
    )
    columns = ("estimates", "forecasts", "predictions", "no estimate", "median |err|",
               "p90 |err|", "median wait", "within 1 h", "forecast wall (mean / max)")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "estimates" else "right")
    for mode in args.modes.split(","):
        jobs = with_estimates(workload, "exact") if mode == "exact" else noisy(workload, 0.7, 1)
        sim = PredictingSimulation(cluster, jobs, policy, begin=begin, end=end, every=args.every)
        result = sim.run()
        actual = {r.job_id: r.start for r in result.jobs}
        errors: list[float] = []
        waits: list[float] = []
        unknown = 0
        for p in sim.measured.predictions:
            real = actual.get(p.job_id)
            if real is None or real <= p.at:
                continue  # never started, or started by the cycle of the same instant
            if p.start is None:
                unknown += 1
                continue
            errors.append(abs(p.start - real))
            waits.append(real - p.at)
        seconds = sim.measured.forecast_seconds
        table.add_row(
            mode,
            f"{len(seconds):,}",
            f"{len(errors):,}",
            f"{unknown:,}",
            hours(statistics.median(errors)) if errors else "-",
            hours(percentile(errors, 0.9)) if errors else "-",
            hours(statistics.median(waits)) if waits else "-",
            f"{sum(e <= 3600 for e in errors) / len(errors) * 100:.0f} %" if errors else "-",
            f"{statistics.mean(seconds):.2f} / {max(seconds):.2f} s" if seconds else "-",
        )
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
