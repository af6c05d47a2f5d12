"""What billed fair share and preempting budgets cost: CPU time of a replay and of a cycle.

1. The synthetic workload (``examples/synthetic.yaml``: 2,000 jobs of four teams over five
   days) on ``examples/cluster-small.yaml`` (64 A100-80G GPUs) with
   ``examples/quotas-small.yaml``, policy ``fairshare`` (orders by decayed usage), once with
   ``fair_share_usage: gpu_seconds`` and once with ``billed`` (weights 1 per GPU, 0.1 per core,
   0.01 per GiB; 2.00 per unit-hour, 1.50 from day 2, so usage is advanced across a price
   change). Printed: the replay's CPU time, its cycles, and the mean wait per team. (Every
   synthetic job holds the same CPU and memory per GPU on one flavor, so billed usage is
   GPU-seconds times the price and the order hardly changes: this measures the cost.)
2. One scheduling cycle over ``--running`` running jobs of ``--tenants`` tenants (each with a
   monthly budget) and ``--pending`` pending jobs, with every budget ``hold`` and with every
   budget ``preempt`` (set so that a few tenants must preempt): CPU time per ``schedule()``
   call, median of ``--repeat``.

CPU time (``time.process_time``) rather than wall time, since the machine may be shared.

Run: ``.venv/bin/python benchmarks/billing.py [--running 2000] [--pending 2000] [--tenants 20]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from allot.config.quotas import load_quotas
from allot.core.budget import BudgetCheck, BudgetLimit, OnExhausted
from allot.core.cycle import schedule
from allot.core.model import Cluster, JobSpec, Node, Resources, RunningJob, TaskPlacement
from allot.core.policy import get_policy
from allot.core.quota.fair_share import FairShareUsage
from allot.core.snapshot import Snapshot
from allot.metering.prices import BillingWeights, Price, PriceCatalog
from allot.sim.cluster import load_cluster
from allot.sim.engine import Simulation
from allot.sim.traces.synthetic import generate, load_synthetic_spec

ROOT = Path(__file__).resolve().parents[1]
DAY = 86400.0


def replay(usage: FairShareUsage) -> tuple[float, int, dict[str, float]]:
    """CPU seconds, cycles and mean wait (hours) per tenant of the synthetic replay."""
    cluster = load_cluster(ROOT / "examples" / "cluster-small.yaml").cluster
    quotas = replace(load_quotas(ROOT / "examples" / "quotas-small.yaml"), fair_share_usage=usage)
    workload = generate(load_synthetic_spec(ROOT / "examples" / "synthetic.yaml"))
    prices = PriceCatalog(
        (Price("A100-80G", 2.0), Price("A100-80G", 1.5, since=2 * DAY)),
        BillingWeights(gpu=1.0, cpu=0.1, memory_gib=0.01),
    )
    started = time.process_time()
    sim = Simulation(cluster, workload, get_policy("fairshare"), quotas=quotas, billing=prices)
    result = sim.run()
    cpu = time.process_time() - started
    waits: dict[str, list[float]] = {}
    for job in result.jobs:
        if job.start is not None:
            waits.setdefault(job.tenant, []).append((job.start - job.submit) / 3600)
    return cpu, result.cycles, {t: statistics.fmean(w) for t, w in sorted(waits.items())}


def cycle_cost(
    running: int, pending: int, tenants: int, mode: OnExhausted, repeat: int
) -> tuple[float, int]:
    """Median CPU seconds of one cycle, and the budget preemptions it decides."""
    per_node = 8
    nodes = [Node(f"n{i}", "H100", per_node, 256_000, 2_048_000) for i in range(running // 8 + 8)]
    rate = 2.0 / 3600 / 1000  # 2 per GPU-hour, per milli-GPU-second
    specs: list[JobSpec] = []
    run_jobs: list[RunningJob] = []
    accrued: dict[str, dict[int, float]] = {}
    for i in range(running):
        tenant = f"t{i % tenants}"
        spec = JobSpec(i, tenant, "u", f"q{i % tenants}", (Resources.of(gpus=1, cpus=1),))
        start = float(i % 3600)
        node = nodes[i // per_node]
        run_jobs.append(
            RunningJob(spec, start, (TaskPlacement(node.name, (i % per_node,)),), "H100")
        )
        accrued.setdefault(tenant, {})[i] = rate * 1000 * (3600.0 - start)
    for j in range(pending):
        tenant = f"t{j % tenants}"
        specs.append(
            JobSpec(
                running + j, tenant, "u", f"q{j % tenants}", (Resources.of(gpus=1, cpus=1),),
                runtime_estimate=600.0,
            )
        )  # fmt: skip
    limits = {}
    for k in range(tenants):
        tenant = f"t{k}"
        spent = sum(accrued.get(tenant, {}).values())
        # Every fifth tenant is at its limit: it must preempt (under preempt).
        limit = spent * (0.9 if k % 5 == 0 else 3.0)
        limits[tenant] = (
            BudgetLimit(tenant, limit, 0.0, accrued.get(tenant, {}), on_exhausted=mode),
        )
    check = BudgetCheck(limits, {"H100": (rate, 0.0, 0.0)}, now=3600.0, currency="USD")
    snap = Snapshot(Cluster(tuple(nodes)), run_jobs, checks=(check,))
    policy = get_policy("allot")
    times: list[float] = []
    stops = 0
    for _ in range(repeat):
        started = time.process_time()
        plan = schedule(snap, specs, policy, 3600.0)
        times.append(time.process_time() - started)
        stops = sum(1 for p in plan.preemptions if p.preemptor is None)
    return statistics.median(times), stops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--running", type=int, default=2000)
    parser.add_argument("--pending", type=int, default=2000)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-replay", action="store_true")
    args = parser.parse_args()
    console = Console()
    console.print(f"load average before: {os.getloadavg()[0]:.2f}")
    if not args.skip_replay:
        table = Table(title="Synthetic replay, policy fairshare", title_justify="left")
        for header in ("fair_share_usage", "CPU s", "cycles", "mean wait h per team"):
            table.add_column(header)
        for usage in FairShareUsage:
            cpu, cycles, waits = replay(usage)
            shown = ", ".join(f"{t} {w:.2f}" for t, w in waits.items())
            table.add_row(usage.value, f"{cpu:.2f}", f"{cycles:,}", shown)
        console.print(table)
        console.print(f"load average: {os.getloadavg()[0]:.2f}")
    table = Table(
        title=f"One cycle: {args.running:,} running, {args.pending:,} pending,"
        f" {args.tenants} budgets",
        title_justify="left",
    )
    for header in ("on_exhausted", "CPU ms per cycle (median)", "budget preemptions"):
        table.add_column(header)
    for mode in OnExhausted:
        seconds, stops = cycle_cost(args.running, args.pending, args.tenants, mode, args.repeat)
        table.add_row(mode.value, f"{seconds * 1000:.1f}", f"{stops:,}")
    console.print(table)
    console.print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
