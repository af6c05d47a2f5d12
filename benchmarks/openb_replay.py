"""The scaled openb replay: queueing delay under each placement, with departures.

The simulator replays an ``openb`` pod list (``alibaba2023`` format: pods arrive at their
creation time and run until their deletion time) on ``examples/cluster-alibaba2023-scaled.yaml``
(15 nodes, 83 GPUs, every GPU model of the trace kept; see the README, "The simulator"), as
``allot simulate`` does with the default ``--estimates none``. Each placement runs every
policy (``--policy``, default ``fifo,besteffort``):

- ``default``: what the simulator does unless told otherwise (allot's default placement);
- ``bucket``: no packer at all, the bucket walk (best fit flavor by flavor, in name order);
- a packer name (``allot.core.placement.packing.PACKERS``): that packer for every single-task
  job, built from the pod list's task mix as ``benchmarks/fragmentation.py`` does.

The table gives the mean and 95th percentile of the queueing delay, the largest queue and
the CPU seconds of each replay (``time.process_time``, so other work on the machine does not
count).

Run: ``.venv/bin/python benchmarks/openb_replay.py --trace
../shared/traces/alibaba2023/openb_pod_list_gpuspec33.csv [--packing default,bucket,allot]
[--policy fifo,besteffort] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from allot.core.placement.packing import PACKERS, Packer, TaskMix, packer_named
from allot.core.policy import get_policy
from allot.sim.cluster import load_cluster
from allot.sim.engine import Simulation, with_estimates
from allot.sim.metrics import compute_metrics
from allot.sim.traces import load_trace

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT.parent / "shared" / "traces" / "alibaba2023"
DEFAULT_TRACE = TRACES / "openb_pod_list_gpuspec33.csv"
DEFAULT_CLUSTER = ROOT / "examples" / "cluster-alibaba2023-scaled.yaml"
PLACEMENTS = ("default", "bucket", *PACKERS)


def hours(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 3600:.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE, help="openb pod list")
    parser.add_argument("--cluster", type=Path, default=DEFAULT_CLUSTER, help="cluster YAML")
    parser.add_argument("--packing", default="default,bucket", help="comma-separated")
    parser.add_argument("--policy", default="fifo,besteffort", help="comma-separated")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    if not args.trace.exists():
        parser.error(f"--trace: needs the openb pod list at {args.trace} (../shared/traces/)")
    placements = [p.strip() for p in args.packing.split(",") if p.strip()]
    unknown = [p for p in placements if p not in PLACEMENTS]
    if unknown:
        parser.error(f"--packing: unknown {', '.join(unknown)}; known: {', '.join(PLACEMENTS)}")
    policies = [get_policy(p.strip()) for p in args.policy.split(",") if p.strip()]
    cluster = load_cluster(args.cluster).cluster
    workload = with_estimates(load_trace(args.trace, "alibaba2023"), "none")
    mix = TaskMix.of(j.spec for j in workload)
    table = Table(title=f"{args.trace.name} on {args.cluster.name}: {cluster.total_gpus} GPUs")
    for column in ("placement", "policy", "mean wait (h)", "p95 wait (h)", "peak queue", "CPU s"):
        table.add_column(column, justify="left" if column in ("placement", "policy") else "right")
    rows: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for placement in placements:
        for policy in policies:
            kwargs: dict[str, Packer | None] = {}
            if placement == "bucket":
                kwargs["packing"] = None
            elif placement != "default":
                kwargs["packing"] = packer_named(placement, mix)
            began = time.process_time()
            result = Simulation(cluster, workload, policy, **kwargs).run()
            cpu = time.process_time() - began
            metrics = compute_metrics(result)
            wait = metrics.queueing_delay_s
            rows.setdefault(placement, {})[policy.name] = {
                "mean_wait_s": wait.mean,
                "p95_wait_s": wait.p95,
                "peak_queue": metrics.peak_queue_length,
                "cpu_s": round(cpu, 1),
            }
            table.add_row(
                placement,
                policy.name,
                hours(wait.mean),
                hours(wait.p95),
                str(metrics.peak_queue_length),
                f"{cpu:.1f}",
            )
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
