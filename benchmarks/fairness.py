"""Fairness between Philly's virtual clusters under each policy: completion times, slowdown and
how much of each team's entitlement it got while it wanted it (``allot.sim.fairness``).

The Philly trace (Sep-Oct 2017, 52,849 jobs) is replayed on ``examples/cluster-philly.yaml``
(768 GPUs). Each virtual cluster (VC) is a tenant with one queue; all queues share one cohort
and may borrow without limit. A VC's entitlement (its nominal GPU quota, and its fair-share
``share``) is proportional to its GPU-time demand over the replayed jobs, so the quotas add up
to the cluster. Every policy runs with the same quotas; ``allot`` also runs as ``allot-reclaim``
with fair-share preemption (Kueue KEP-1714 rules S2-a/S2-b) turned off, keeping only reclaim of
borrowed quota, to show what fair-share preemption adds.

Assumptions: runtime estimates are exact; Philly has no checkpointing column, so by default
jobs of an hour or more are checkpointable (``--checkpointable {all,long,none}``).

Run: ``.venv/bin/python benchmarks/fairness.py [--limit N] [--policies fifo,allot]
[--plot [PATH]]``. Needs ``../shared/traces/philly/philly-2017-09-10.csv`` (or ``--trace``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from allot.core.policy import POLICIES, Policy, get_policy
from allot.core.quota.config import (
    CohortSpec,
    FairShareRule,
    PreemptionRules,
    QueueSpec,
    QuotaConfig,
    ReclaimWithinCohort,
    ResourceQuota,
    TenantSpec,
)
from allot.sim.cluster import load_cluster
from allot.sim.engine import Simulation, with_estimates
from allot.sim.fairness import FairnessFigures, entitlement_met, plot_shares
from allot.sim.metrics import Metrics, compute_metrics
from allot.sim.result import SimResult
from allot.sim.traces import read_philly
from allot.sim.workload import TraceJob

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRACE = ROOT.parent / "shared" / "traces" / "philly" / "philly-2017-09-10.csv"
DEFAULT_PLOT = ROOT / "out" / "fairness" / "shares.png"
FLAVOR = "philly-gpu"
COHORT = "philly"
LONG_JOB_S = 3600.0
RECLAIM_ONLY = "allot-reclaim"
PLOTTED_TENANTS = 4
RULES = PreemptionRules(
    reclaim_within_cohort=ReclaimWithinCohort.ANY,
    fair_share=(FairShareRule.LTE_FINAL_SHARE, FairShareRule.LT_INITIAL_SHARE),
    grace_seconds=60,
)
CHECKPOINTABLE_NOTE = {
    "all": "every job checkpointable",
    "long": "jobs >= 1 h checkpointable",
    "none": "no job checkpointable",
}


@dataclass(frozen=True)
class Run:
    """One policy's replay and its figures."""

    name: str
    wall_s: float
    result: SimResult
    metrics: Metrics
    fairness: FairnessFigures


def mark_checkpointable(workload: Sequence[TraceJob], rule: str) -> list[TraceJob]:
    """Apply the checkpointing assumption: ``all``, ``none``, or ``long`` (run >= 1 hour)."""
    return [
        replace(job, spec=replace(job.spec, checkpointable=checkpointable))
        for job in workload
        for checkpointable in [rule == "all" or (rule == "long" and job.duration >= LONG_JOB_S)]
    ]


def gpu_time_demand(workload: Sequence[TraceJob]) -> dict[str, float]:
    """GPU-seconds each tenant's jobs ask for (run time x GPUs), largest first."""
    demand: dict[str, float] = {}
    for job in workload:
        gpus = job.spec.total.gpu_milli / 1000
        demand[job.spec.tenant] = demand.get(job.spec.tenant, 0.0) + job.duration * gpus
    return dict(sorted(demand.items(), key=lambda item: (-item[1], item[0])))


def proportional_milli(weights: Mapping[str, float], total_milli: int) -> dict[str, int]:
    """Split ``total_milli`` in proportion to ``weights`` into whole milli-GPUs that add up
    exactly, by the largest-remainder (Hamilton) method; ties go to the first name."""
    weight_sum = sum(weights.values())
    exact = {name: total_milli * weight / weight_sum for name, weight in weights.items()}
    shares = {name: int(value) for name, value in exact.items()}
    left = total_milli - sum(shares.values())
    by_remainder = sorted(exact, key=lambda name: (-(exact[name] - shares[name]), name))
    for name in by_remainder[:left]:
        shares[name] += 1
    return shares


def quota_config(demand: Mapping[str, float], cluster_milli: int) -> QuotaConfig:
    """One tenant and one queue per VC in one cohort; nominal quota proportional to demand,
    unlimited borrowing and lending; reclaim and fair-share preemption with a 60 s grace."""
    total = sum(demand.values())
    nominal = proportional_milli(demand, cluster_milli)
    return QuotaConfig(
        tenants=tuple(TenantSpec(name, share=gpu_s / total) for name, gpu_s in demand.items()),
        cohorts=(CohortSpec(COHORT),),
        queues=tuple(
            QueueSpec(
                name,
                tenant=name,
                cohort=COHORT,
                quotas={(FLAVOR, "gpu"): ResourceQuota(nominal=nominal[name])},
                preemption=RULES,
            )
            for name in demand
        ),
    )


def without_fair_share(config: QuotaConfig) -> QuotaConfig:
    """The same quotas with fair-share preemption off in every queue (reclaim only)."""
    queues = tuple(
        replace(queue, preemption=replace(queue.preemption, fair_share=()))
        for queue in config.queues
    )
    return replace(config, queues=queues)


def entitled_gpus(config: QuotaConfig) -> dict[str, float]:
    """Each tenant's nominal GPU quota, in GPUs."""
    return {
        queue.tenant: sum(
            quota.nominal
            for (_, resource), quota in (queue.quotas or {}).items()
            if resource == "gpu"
        )
        / 1000
        for queue in config.queues
    }


def hours(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 3600:.2f} h"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def index(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def summary_table(runs: Sequence[Run], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    columns = (
        "policy",
        "wall",
        "JCT mean",
        "JCT p50",
        "JCT p99",
        "wait mean",
        "BSLD mean",
        "Jain (BSLD)",
        "ent. met",
        "worst tenant met",
        "Jain (met)",
        "preempt.",
        "GPU-h lost",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "policy" else "right")
    for run in runs:
        m, f = run.metrics, run.fairness
        worst = "—" if f.worst is None else f"{percent(f.worst[1])} ({f.worst[0]})"
        slowdown = m.bounded_slowdown.mean
        table.add_row(
            run.name,
            f"{run.wall_s:.0f} s",
            hours(m.jct_s.mean),
            hours(m.jct_s.median),
            hours(m.jct_s.p99),
            hours(m.queueing_delay_s.mean),
            "—" if slowdown is None else f"{slowdown:.2f}",
            index(m.jain_index),
            percent(f.overall),
            worst,
            index(f.jain),
            f"{m.preemptions:,}",
            f"{m.lost_gpu_hours:,.0f}",
        )
    return table


def tenant_table(
    runs: Sequence[Run], entitled: Mapping[str, float], demand: Mapping[str, float]
) -> Table:
    table = Table(title="Entitlement met per tenant (VC)", title_justify="left")
    for column in ("tenant", "entitled", "demand", *(run.name for run in runs)):
        table.add_column(column, justify="left" if column == "tenant" else "right")
    total = sum(demand.values())
    for tenant in sorted(entitled, key=lambda name: (-entitled[name], name)):
        table.add_row(
            tenant,
            f"{entitled[tenant]:.1f} GPUs",
            percent(demand.get(tenant, 0.0) / total),
            *(percent(run.fairness.per_tenant.get(tenant)) for run in runs),
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--cluster", type=Path, default=ROOT / "examples" / "cluster-philly.yaml")
    parser.add_argument("--policies", default="fifo,backfill,las,fairshare,kueue,allot")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--checkpointable", choices=("all", "long", "none"), default="long")
    parser.add_argument(
        "--plot",
        type=Path,
        nargs="?",
        const=DEFAULT_PLOT,
        default=None,
        help=f"write the share plot of the {PLOTTED_TENANTS} largest tenants (default path: "
        "out/fairness/shares.png)",
    )
    args = parser.parse_args()
    if not args.trace.exists():
        sys.exit(
            f"needs the Philly trace at {args.trace} (../shared/traces is absent); pass --trace"
        )
    names = [name.strip() for name in args.policies.split(",") if name.strip()]
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        sys.exit(f"--policies: unknown policy {unknown[0]!r}; known: {', '.join(POLICIES)}")

    console = Console(width=180)
    errors = Console(stderr=True)
    workload = with_estimates(read_philly(args.trace, limit=args.limit), "exact")
    workload = mark_checkpointable(workload, args.checkpointable)
    cluster = load_cluster(args.cluster).cluster
    demand = gpu_time_demand(workload)
    config = quota_config(demand, cluster.total_gpus * 1000)
    config.check_flavors(cluster.flavors)
    entitled = entitled_gpus(config)

    plan: list[tuple[str, Policy, QuotaConfig]] = []
    for name in names:
        plan.append((name, get_policy(name), config))
        if name == "allot":
            plan.append(
                (
                    RECLAIM_ONLY,
                    replace(get_policy(name), name=RECLAIM_ONLY),
                    without_fair_share(config),
                )
            )
    runs: list[Run] = []
    for name, policy, quotas in plan:
        started = time.perf_counter()
        result = Simulation(cluster, workload, policy, quotas=quotas).run()
        wall = time.perf_counter() - started
        runs.append(
            Run(name, wall, result, compute_metrics(result), entitlement_met(result, entitled))
        )
        errors.log(f"{name}: {wall:.0f} s")

    checkpointing = CHECKPOINTABLE_NOTE[args.checkpointable]
    title = (
        f"Fairness on Philly: {len(workload):,} jobs, {len(demand)} VCs on {cluster.name} "
        f"({cluster.total_gpus} GPUs); {checkpointing}"
    )
    console.print(summary_table(runs, title))
    console.print(tenant_table(runs, entitled, demand))
    console.print(
        f"Assumed: runtime estimates exact; {checkpointing} (Philly records no checkpointing); "
        "each VC's nominal GPU quota and fair-share weight proportional to its GPU-time demand "
        "in the replayed jobs, all in one cohort with unlimited borrowing. ent. met = GPU-time "
        "held within min(demand, entitlement) over GPU-time owed; BSLD = bounded slowdown "
        "(tau = 10 s)."
    )
    if args.plot is not None:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        largest = sorted(entitled, key=lambda name: (-entitled[name], name))[:PLOTTED_TENANTS]
        plot_shares([run.result for run in runs], entitled, cluster.total_gpus, args.plot, largest)
        console.print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
