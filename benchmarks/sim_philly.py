"""Replay of the Microsoft Philly trace (Sep-Oct 2017, 52,849 jobs) for each policy; prints
wall time, events per second and the figures that judge a policy: mean, p50 and p99 JCT,
mean bounded slowdown, Jain's index across tenants, preemptions and lost GPU-hours.

Default cluster: ``examples/cluster-philly-contended.yaml`` (384 GPUs; strict FIFO's mean wait
is over a day). Estimates default to what a live system has (``none``); ``--estimates
predicted`` learns them online. ``--checkpointable all`` (the default here) lets 2D-LAS
preempt as Tiresias assumes; lost work follows ``Checkpointing``'s defaults.

"wall" is elapsed time, "CPU" this process's CPU time (what a loaded machine does not inflate).

Run: ``.venv/bin/python benchmarks/sim_philly.py [--policies fifo,backfill] [--limit N]
[--skip N] [--cluster FILE] [--estimates none|predicted|exact]``; ``--skip N`` replays a
later period: the jobs after the first N, from an empty cluster. Needs ``../shared/traces/philly/
philly-2017-09-10.csv`` next to the project (or ``--trace PATH``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from allot.core.policy import get_policy
from allot.sim.cluster import load_cluster
from allot.sim.engine import Simulation, with_estimates
from allot.sim.metrics import compute_metrics
from allot.sim.predict import RuntimePredictor
from allot.sim.traces import read_philly
from allot.sim.workload import TraceJob, with_checkpointing

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRACE = ROOT.parent / "shared" / "traces" / "philly" / "philly-2017-09-10.csv"
POLICIES = "fifo,besteffort,backfill,fairshare,kueue,las,allot"


def _hours(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 3600:.2f} h"


def _later(jobs: list[TraceJob], skip: int) -> list[TraceJob]:
    """The jobs after the first ``skip``, submit times counted from the first one kept (an
    empty cluster at the start of the window, as at the start of the trace)."""
    kept = jobs[skip:]
    if not skip or not kept:
        return kept
    start = kept[0].spec.submit_time
    return [replace(j, spec=replace(j.spec, submit_time=j.spec.submit_time - start)) for j in kept]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument(
        "--cluster", type=Path, default=ROOT / "examples" / "cluster-philly-contended.yaml"
    )
    parser.add_argument("--policies", default=POLICIES)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument(
        "--skip", type=int, default=0, help="leave out the first N jobs (a later trace period)"
    )
    parser.add_argument("--estimates", default="none", choices=("none", "predicted", "exact"))
    parser.add_argument("--checkpointable", default="all", choices=("keep", "all", "none"))
    args = parser.parse_args()
    if not args.trace.exists():
        sys.exit(f"needs the Philly trace at {args.trace}; pass --trace")

    started = time.perf_counter()
    if args.skip < 0:
        sys.exit(f"--skip: must be >= 0, got {args.skip}")
    limit = None if args.limit is None else args.skip + args.limit
    jobs = _later(read_philly(args.trace, limit=limit), args.skip)
    workload = with_checkpointing(with_estimates(jobs, args.estimates), args.checkpointable)
    read_s = time.perf_counter() - started
    cluster = load_cluster(args.cluster).cluster
    table = Table(
        title=f"Philly replay: {len(workload):,} jobs (after {args.skip:,}) on {cluster.name} "
        f"({cluster.total_gpus} GPUs), estimates {args.estimates}; trace read in {read_s:.2f} s"
    )
    columns = (
        "policy",
        "wall",
        "CPU",
        "events/s",
        "cycles",
        "mean JCT",
        "p50 JCT",
        "p99 JCT",
        "mean bsld",
        "Jain",
        "preempt.",
        "lost GPU-h",
        "pred. err",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "policy" else "right")
    console = Console(width=160)
    for name in args.policies.split(","):
        predictor = RuntimePredictor() if args.estimates == "predicted" else None
        started, cpu_started = time.perf_counter(), time.process_time()
        result = Simulation(cluster, workload, get_policy(name), predictor=predictor).run()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        m = compute_metrics(result)
        error = m.prediction.median_relative_error
        table.add_row(
            name,
            f"{wall:.1f} s",
            f"{cpu:.1f} s",
            f"{result.events / wall:,.0f}",
            f"{result.cycles:,}",
            _hours(m.jct_s.mean),
            _hours(m.jct_s.median),
            _hours(m.jct_s.p99),
            f"{m.bounded_slowdown.mean or 0:,.1f}",
            f"{m.jain_index or 0:.3f}",
            f"{m.preemptions:,}",
            f"{m.lost_gpu_hours:,.0f}",
            "-" if error is None else f"{error:.2f}",
        )
        console.print(
            f"{name}: {wall:.1f} s, CPU {cpu:.1f} s, load average {os.getloadavg()[0]:.2f}",
            highlight=False,
        )
    console.print(table)


if __name__ == "__main__":
    main()
