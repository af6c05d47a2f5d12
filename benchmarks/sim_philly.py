"""Full replay of the Microsoft Philly trace (Sep-Oct 2017, 52,849 jobs) for each policy on
``examples/cluster-philly.yaml``; prints wall time and events per second.

Run: ``.venv/bin/python benchmarks/sim_philly.py [--policies fifo,backfill] [--limit N]``.
Needs ``../shared/traces/philly/philly-2017-09-10.csv`` (or ``--trace PATH``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from allot.core.policy import get_policy
from allot.sim.cluster import load_cluster
from allot.sim.engine import Simulation, with_estimates
from allot.sim.metrics import compute_metrics
from allot.sim.traces import read_philly

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRACE = ROOT.parent / "shared" / "traces" / "philly" / "philly-2017-09-10.csv"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--cluster", type=Path, default=ROOT / "examples" / "cluster-philly.yaml")
    parser.add_argument("--policies", default="fifo,besteffort,priority,sjf,backfill")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    if not args.trace.exists():
        sys.exit(
            f"needs the Philly trace at {args.trace} (../shared/traces is absent); pass --trace"
        )

    started = time.perf_counter()
    workload = with_estimates(read_philly(args.trace, limit=args.limit), "exact")
    read_s = time.perf_counter() - started
    cluster = load_cluster(args.cluster).cluster
    table = Table(
        title=f"Philly replay: {len(workload):,} jobs on {cluster.name} "
        f"({cluster.total_gpus} GPUs); trace read in {read_s:.2f} s"
    )
    for column in (
        "policy",
        "wall",
        "events",
        "events/s",
        "cycles",
        "mean JCT",
        "mean wait",
        "GPU alloc",
    ):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for name in args.policies.split(","):
        started = time.perf_counter()
        result = Simulation(cluster, workload, get_policy(name)).run()
        wall = time.perf_counter() - started
        m = compute_metrics(result)
        table.add_row(
            name,
            f"{wall:.1f} s",
            f"{result.events:,}",
            f"{result.events / wall:,.0f}",
            f"{result.cycles:,}",
            f"{(m.jct_s.mean or 0) / 3600:.2f} h",
            f"{(m.queueing_delay_s.mean or 0) / 3600:.2f} h",
            f"{(m.gpu_allocation_fraction or 0) * 100:.1f} %",
        )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
