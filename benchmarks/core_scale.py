"""Scale of the scheduling core: one ``schedule()`` call on a 5,000-node / 40,000-GPU snapshot
with 100,000 pending jobs of mixed sizes.

Two situations per policy:
- "empty": the cluster starts empty, so the call places jobs until it is full; this measures
  placements per second.
- "busy": the cluster is 90% allocated by running jobs with staggered ends, so the call mostly
  walks and explains the queue (and, for backfill, computes a reservation).

Each situation calls ``schedule()`` ``--repeat`` times on the same snapshot with the same
jobs, as a driver does between events (each policy on its own copy of the busy cluster): the
first call builds the snapshot's pending index (order and decision keys), the later ones reuse
it. "first call" is the cold one, "call" the
median of the later ones (wall time; "CPU" is this process's CPU time, which a loaded machine
does not inflate); "placements/s" is starts over the median call. With ``--freeze`` the
fixtures (100,000 pending jobs, the busy snapshot) are moved out of the cyclic garbage
collector's reach (``gc.freeze()``), as a long-running driver may do with its start-up state:
without it, a full collection over them (~0.3 s) lands on whichever call triggers it. The
pending jobs' explanations are read back (all of them, the settled tail on demand) in
"explain all", outside the call.

Run: ``.venv/bin/python benchmarks/core_scale.py [--repeat 5] [--pending 100000] [--freeze]
[--situations empty,busy] [--policies fifo,las]``.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import time

from rich.console import Console
from rich.table import Table

from allot.core.cycle import schedule
from allot.core.model import Cluster, JobSpec, Node, Resources, RunningJob, gang
from allot.core.policy import get_policy
from allot.core.snapshot import Snapshot

NODES = 5_000
GPUS_PER_NODE = 8
# (tasks, GPUs per task) -> weight: mostly small jobs, some full-node and multi-node gangs, and
# shares of a GPU.
MIX = {(1, 0.5): 5, (1, 1): 45, (1, 2): 15, (1, 4): 15, (1, 8): 12, (2, 8): 5, (4, 8): 3}


def build_cluster() -> Cluster:
    return Cluster(
        tuple(
            Node(
                f"node-{i:05d}",
                "H100-80G",
                GPUS_PER_NODE,
                128_000,
                1_048_576,
                (f"rack-{i // 32:03d}",),
            )
            for i in range(NODES)
        ),
        name="scale",
    )


def build_jobs(count: int, rng: random.Random, first_id: int = 1) -> list[JobSpec]:
    shapes, weights = list(MIX), list(MIX.values())
    jobs = []
    for k in range(count):
        tasks, gpus = rng.choices(shapes, weights)[0]
        per_task = Resources.of(
            gpus=gpus, cpus=max(1, 8 * gpus), memory_mib=int(65_536 * max(gpus, 0.5))
        )
        jobs.append(
            JobSpec(
                first_id + k,
                f"team-{k % 7}",
                f"user-{k % 31}",
                f"team-{k % 7}",
                gang(tasks, per_task),
                submit_time=float(k),
                runtime_estimate=rng.uniform(600, 86_400),
            )
        )
    return jobs


def busy_snapshot(cluster: Cluster, rng: random.Random) -> Snapshot:
    """Fill the cluster to ~90% of its GPUs with running single-node jobs."""
    snap = Snapshot(cluster)
    policy = get_policy("besteffort")
    target = 0.9 * cluster.total_gpus * 1000
    filler = build_jobs(60_000, rng, first_id=10_000_000)
    plan = schedule(snap, [j for j in filler if not j.is_gang], policy, 0.0)
    spec_by_id = {j.id: j for j in filler}
    for start in plan.starts:
        if snap.allocated_gpu_milli >= target:
            break
        spec = spec_by_id[start.job_id]
        snap.start(RunningJob(spec, -rng.uniform(0, 3_600), start.placement, start.flavor))
    return snap


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() the fixtures")
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument(
        "--policies", default="fifo,besteffort,priority,sjf,backfill,las,fairshare,kueue,allot"
    )
    parser.add_argument(
        "--situations", default="empty,busy", help="which of empty,busy to run (default: both)"
    )
    args = parser.parse_args()

    rng = random.Random(7)
    cluster = build_cluster()
    jobs = build_jobs(args.pending, rng)
    busy = busy_snapshot(cluster, random.Random(11))
    if args.freeze:
        gc.collect()
        gc.freeze()
    table = Table(
        title=f"schedule() on {NODES:,} nodes / {cluster.total_gpus:,} GPUs, {len(jobs):,} pending"
    )
    for column in (
        "policy",
        "cluster",
        "running",
        "first call",
        "call (median)",
        "CPU/call (median)",
        "starts",
        "placements/s",
        "placements/CPU-s",
        "explain all",
    ):
        table.add_column(column, justify="right" if column not in ("policy", "cluster") else "left")
    for name in args.policies.split(","):
        policy = get_policy(name)
        # Each policy gets its own copy of the busy cluster: what one keeps on a snapshot
        # (its order, victim lists) must not speed up or slow down the next.
        for label, make in (
            ("empty", lambda: Snapshot(cluster)),
            ("busy 90%", lambda: Snapshot(cluster, tuple(busy.running.values()))),
        ):
            if label.split()[0] not in args.situations.split(","):
                continue
            snap = make()
            times, cpu_times, plan = [], [], None
            for _ in range(args.repeat):
                started, cpu_started = time.perf_counter(), time.process_time()
                plan = schedule(snap, jobs, policy, 0.0)
                times.append(time.perf_counter() - started)
                cpu_times.append(time.process_time() - cpu_started)
            assert plan is not None
            warm = slice(1, None) if len(times) > 1 else slice(None)
            call, cpu = statistics.median(times[warm]), statistics.median(cpu_times[warm])
            started = time.perf_counter()
            explained = sum(1 for _ in plan.pending.values())
            explain_s = time.perf_counter() - started
            assert explained + len(plan.starts) == len(jobs)
            table.add_row(
                name,
                label,
                f"{len(snap.running):,}",
                f"{times[0] * 1000:,.0f} ms",
                f"{call * 1000:,.0f} ms",
                f"{cpu * 1000:,.0f} ms",
                f"{len(plan.starts):,}",
                f"{len(plan.starts) / call:,.0f}",
                f"{len(plan.starts) / cpu:,.0f}",
                f"{explain_s * 1000:,.0f} ms",
            )
    Console(width=180).print(table)
    print(f"load average: {os.getloadavg()[0]:.2f}; gc frozen: {args.freeze}")


if __name__ == "__main__":
    main()
