"""Heterogeneous GPUs: job completion time and makespan with throughput-aware placement against
flavor-blind placement, on the Philly trace.

Cluster: the first ``--nodes`` (default 64) nodes of ``examples/cluster-philly.yaml`` (8 GPUs
each; 64 nodes keep Philly's queue loaded, which is when the choice of flavor matters) with
half of them turned into a faster flavor (``--fast``, default ``H100-SXM``) and the other half
a slower one (``--slow``, default ``A100-80G``).

Per-job speeds: the Philly trace says nothing about the models, so each job's arithmetic
intensity is drawn, seeded, log-uniform between 1 and 1,000 FLOP/byte (from embedding-bound
and memory-bound work to large dense matmuls), and its speed on each flavor is the roofline
estimate from the flavor catalogue (``src/allot/profile/flavors.yaml``, bf16 peak and memory
bandwidth): ``min(peak, intensity x bandwidth)``, relative to the slow flavor. With the default
flavors a job runs 1.64x (memory-bound) to 3.17x (compute-bound) faster on the fast one. The
trace's duration is the run time on the slow flavor.

Placement: every job accepts either flavor. ``flavor-blind, fast first`` tries the fast flavor
first for every job and falls back to the slow one when it is full (the strongest blind
baseline); ``flavor-blind, slow first`` does the same the other way round (a scheduler that
does not know which flavor is fast and tries them in name order, as allot does for "any");
``throughput-aware`` ranks the flavors by each job's comparative advantage
(``allot.core.placement.throughput``). All run the same policy (``--policy``, default
``besteffort``) on the same jobs.

Run: ``.venv/bin/python benchmarks/heterogeneity.py [--limit 10000] [--seed 0]``. Needs
``../shared/traces/philly/philly-2017-09-10.csv`` (or ``--trace``).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from allot.core.model import Cluster
from allot.core.policy import get_policy
from allot.profile.catalog import load_catalog
from allot.profile.roofline import Roof
from allot.sim.cluster import load_cluster
from allot.sim.engine import Simulation, with_estimates
from allot.sim.metrics import compute_metrics
from allot.sim.traces import read_philly
from allot.sim.workload import TraceJob

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRACE = ROOT.parent / "shared" / "traces" / "philly" / "philly-2017-09-10.csv"
INTENSITY = (1.0, 1000.0)  # FLOP/byte, log-uniform


def hetero_cluster(base: Cluster, count: int, fast: str, slow: str) -> Cluster:
    """The first ``count`` nodes of ``base``, the first half made ``fast`` and the rest
    ``slow``; the fast flavor is listed first, so a flavor-blind job tries it first."""
    kept = base.nodes[:count]
    half = len(kept) // 2
    nodes = tuple(replace(n, flavor=fast if i < half else slow) for i, n in enumerate(kept))
    return Cluster(nodes, name=f"{base.name}-hetero", flavors=(fast, slow))


def with_speeds(workload: list[TraceJob], fast: str, slow: str, seed: int) -> list[TraceJob]:
    """Each job with a roofline speed on ``fast`` relative to ``slow`` (see the docstring)."""
    catalog = load_catalog()
    specs = {f: catalog.find(f) for f in (fast, slow)}
    missing = [f for f, s in specs.items() if s is None]
    if missing:
        sys.exit(f"flavor(s) {', '.join(missing)} are not in the flavor catalogue")
    roofs = {f: Roof.of(s, "bf16") for f, s in specs.items() if s is not None}
    rng = random.Random(seed)
    lo, hi = math.log(INTENSITY[0]), math.log(INTENSITY[1])
    out = []
    for job in workload:
        intensity = math.exp(rng.uniform(lo, hi))
        ratio = roofs[fast].attainable(intensity) / roofs[slow].attainable(intensity)
        spec = replace(job.spec, speeds=((fast, round(ratio, 4)), (slow, 1.0)))
        out.append(TraceJob(spec, job.duration))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--cluster", type=Path, default=ROOT / "examples" / "cluster-philly.yaml")
    parser.add_argument("--limit", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", default="besteffort")
    parser.add_argument("--fast", default="H100-SXM")
    parser.add_argument("--slow", default="A100-80G")
    args = parser.parse_args()
    if not args.trace.exists():
        sys.exit(f"needs the Philly trace at {args.trace}; pass --trace")
    cluster = hetero_cluster(load_cluster(args.cluster).cluster, args.nodes, args.fast, args.slow)
    workload = with_speeds(
        with_estimates(read_philly(args.trace, limit=args.limit), "exact"),
        args.fast,
        args.slow,
        args.seed,
    )
    ratios = sorted(j.spec.speed_on(args.fast) for j in workload)
    policy = get_policy(args.policy)
    table = Table(
        title=f"Philly, {len(workload):,} jobs on {cluster.total_gpus} GPUs "
        f"(half {args.fast}, half {args.slow}); speed-up on {args.fast}: "
        f"{ratios[0]:.2f}-{ratios[-1]:.2f}x, median {ratios[len(ratios) // 2]:.2f}x; "
        f"policy {policy.name}"
    )
    for column in ("placement", "mean JCT (h)", "median JCT (h)", "makespan (h)", "wall (s)"):
        table.add_column(column, justify="left" if column == "placement" else "right")
    slow_first = Cluster(cluster.nodes, name=cluster.name, flavors=(args.slow, args.fast))
    for label, where, throughput in (
        ("flavor-blind, slow first", slow_first, False),
        ("flavor-blind, fast first", cluster, False),
        ("throughput-aware", cluster, True),
    ):
        began = time.perf_counter()
        result = Simulation(where, workload, policy, throughput=throughput).run()
        wall = time.perf_counter() - began
        metrics = compute_metrics(result)
        jct = metrics.jct_s
        table.add_row(
            label,
            f"{(jct.mean or 0) / 3600:.2f}",
            f"{(jct.median or 0) / 3600:.2f}",
            f"{(metrics.makespan_s or 0) / 3600:.1f}",
            f"{wall:.1f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
