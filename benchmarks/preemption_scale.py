"""Scale of the victim search: one ``find_preemptions`` call per preemptor on a full
5,000-node / 40,000-GPU cluster whose queues share one cohort.

The cluster is filled by eight queues of one cohort; two of them borrow heavily (their jobs
are the reclaim candidates), and the preemptors' own queue runs lower-priority jobs too, so
the searches mix within-queue and reclaim victims (the case reclaim eligibility is re-checked
for as victims are removed). Each row times one preemptor shape (a single task of 1, 4 or 8
GPUs, or a gang of 2 or 4 full nodes) over ``--repeat`` searches, each on a fresh candidate
pool, and prints the median and worst search time and the victims found.

Run: ``.venv/bin/python benchmarks/preemption_scale.py [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from rich.console import Console
from rich.table import Table

from allot.core.model import Cluster, JobSpec, Node, Resources, RunningJob, gang
from allot.core.placement.select import choose_placement
from allot.core.policy import get_policy
from allot.core.preemption.candidates import CandidatePool
from allot.core.preemption.finder import find_preemptions
from allot.core.quota.config import (
    CohortSpec,
    PreemptionRules,
    QueueSpec,
    QuotaConfig,
    ResourceQuota,
    TenantSpec,
)
from allot.core.snapshot import Snapshot

NODES = 5_000
GPUS = 8
FLAVOR = "H100-80G"
QUEUES = [f"team-{k}" for k in range(8)]
SHAPES = {"1 GPU": (1, 1), "4 GPUs": (1, 4), "8 GPUs": (1, 8), "gang 2x8": (2, 8),
          "gang 4x8": (4, 8)}  # fmt: skip


def build() -> Snapshot:
    nominal = NODES * GPUS * 1000 // len(QUEUES)
    rules = PreemptionRules(grace_seconds=30.0)
    config = QuotaConfig(
        tuple(TenantSpec(q) for q in QUEUES),
        tuple(
            QueueSpec(q, q, "org", {(FLAVOR, "gpu"): ResourceQuota(nominal)}, preemption=rules)
            for q in QUEUES
        ),
        (CohortSpec("org"),),
    )
    nodes = tuple(
        Node(f"node-{i:05d}", FLAVOR, GPUS, 128_000, 1_048_576, (f"rack-{i // 32:03d}",))
        for i in range(NODES)
    )
    snap = Snapshot(Cluster(nodes), quotas=config)
    rng = random.Random(7)
    # team-0 (the preemptors' queue) at 40% of its nominal, at priority -1; team-1 and team-2
    # borrow what team-0 leaves idle; the others at nominal.
    share = dict.fromkeys(QUEUES, 1.0)
    share["team-0"], share["team-1"], share["team-2"] = 0.4, 1.3, 1.3
    job_id = 1
    for queue in QUEUES:
        budget = share[queue] * nominal
        while budget > 0:
            gpus = rng.choice((1, 1, 2, 4, 8))
            spec = JobSpec(
                job_id,
                queue,
                "u",
                queue,
                (Resources.of(gpus=gpus, cpus=gpus, memory_mib=1024 * gpus),),
                priority=-1 if queue == "team-0" else 0,
                submit_time=float(job_id),
            )
            placement = choose_placement(snap, spec, FLAVOR)
            if placement is None:
                break
            snap.start(RunningJob(spec, -rng.uniform(0, 3600), placement, FLAVOR))
            budget -= gpus * 1000
            job_id += 1
    # Fill the last holes with the borrowers' single GPUs: the cluster is full.
    while True:
        queue = ("team-1", "team-2")[job_id % 2]
        spec = JobSpec(job_id, queue, "u", queue, (Resources.of(gpus=1, cpus=1, memory_mib=1024),),
                       submit_time=float(job_id))  # fmt: skip
        placement = choose_placement(snap, spec, FLAVOR)
        if placement is None:
            return snap
        snap.start(RunningJob(spec, -rng.uniform(0, 3600), placement, FLAVOR))
        job_id += 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    snap = build()
    setup = time.perf_counter() - started
    policy = get_policy("allot")
    grid = Table(title=f"victim search on {NODES:,} nodes / {NODES * GPUS:,} GPUs (full)")
    for column in ("preemptor", "median ms", "worst ms", "victims", "strategies"):
        grid.add_column(
            column, justify="right" if "ms" in column or column == "victims" else "left"
        )
    for name, (tasks, gpus) in SHAPES.items():
        spec = JobSpec(
            9_000_000,
            "team-0",
            "u",
            "team-0",
            gang(tasks, Resources.of(gpus=gpus, cpus=gpus, memory_mib=1024 * gpus)),
            submit_time=1e6,
        )
        times, found = [], None
        for _ in range(args.repeat):
            pool = CandidatePool(snap, 0.0, policy.las_thresholds, set(), set(), False)
            t0 = time.perf_counter()
            found = find_preemptions(snap, spec, policy, 0.0, pool)
            times.append(time.perf_counter() - t0)
        assert found is not None
        strategies = ", ".join(sorted({str(p.strategy) for p in found.preemptions})) or "-"
        grid.add_row(
            name,
            f"{statistics.median(times) * 1000:.1f}",
            f"{max(times) * 1000:.1f}",
            str(len(found.preemptions)),
            strategies,
        )
    console = Console()
    console.print(grid)
    console.print(f"{len(snap.running):,} running jobs; snapshot built in {setup:.1f} s")


if __name__ == "__main__":
    main()
