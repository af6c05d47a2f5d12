"""Decision time of one scheduling cycle at 5,000 nodes with shares of GPUs, GPU memory,
NVLink domains and topology-constrained gangs.

Cluster: ``--nodes`` nodes of 8 GPUs (two flavors, 80 GiB and 24 GiB devices, two NVLink
domains of 4 devices each), 32 racks in 4 blocks. It is filled to about ``--fill`` of its GPUs
by a best-effort cycle over a seeded mix of jobs, which then run. Then ``--pending`` new jobs
wait: 60 % shares of one GPU (with GPU memory), 20 % single tasks of 1-8 whole GPUs, 20 %
gangs of 2-4 tasks x 8 GPUs that require (half of them) or prefer one rack. The table gives
the CPU time of ``schedule()`` over them (``time.process_time``: the first cycle, and the
median of ``--repeat`` cycles on the same snapshot, which each cycle leaves as it found it)
for each placement, with and without throughput-aware ranking, and how many jobs the cycle
started. ``bucket best fit`` is the bucket walk (no packer); ``default`` is allot's default
placement as the live loop runs it (``default_packer``, having observed the pending jobs:
fragmentation growth plus the model-scarcity charge); ``allot`` is the same packer with the
workload's mix given; ``fgd`` and ``best-fit`` are those packers.

Run: ``.venv/bin/python benchmarks/placement_scale.py [--nodes 5000] [--pending 500]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from rich.console import Console
from rich.table import Table

from allot.core.cycle import schedule
from allot.core.model import Cluster, JobSpec, Node, Resources, RunningJob, gang
from allot.core.placement.packing import (
    Packer,
    TaskMix,
    allot_packer,
    default_packer,
    packer_named,
)
from allot.core.placement.throughput import reserve_by_flavor, speed_norms
from allot.core.policy import get_policy
from allot.core.snapshot import Snapshot

FLAVORS = (("H100", 81_920), ("L4", 24_576))


def cluster(count: int) -> Cluster:
    nodes = tuple(
        Node(
            f"n{i:05d}",
            FLAVORS[i % 2][0],
            8,
            128_000,
            1_048_576,
            topology=(f"block-{i % 4}", f"rack-{i % 32}"),
            gpu_memory_mib=FLAVORS[i % 2][1],
            nvlink=(0, 0, 0, 0, 1, 1, 1, 1),
        )
        for i in range(count)
    )
    return Cluster(nodes)


def jobs(rng: random.Random, first: int, count: int) -> list[JobSpec]:
    out = []
    for k in range(count):
        draw = rng.random()
        speeds = (("H100", round(rng.uniform(1.5, 3.5), 2)),)
        if draw < 0.6:
            task = Resources(rng.choice((100, 250, 300, 500, 700)), 2000, 8192, 4096)
            tasks: tuple[Resources, ...] = (task,)
            colocate, required = "", False
        elif draw < 0.8:
            tasks = (Resources(rng.choice((1, 2, 4, 8)) * 1000, 8000, 65_536),)
            colocate, required = "", False
        else:
            tasks = gang(rng.choice((2, 3, 4)), Resources(8000, 64_000, 262_144))
            colocate, required = "rack", rng.random() < 0.5
        out.append(
            JobSpec(
                first + k,
                f"t{k % 8}",
                "u",
                "q",
                tasks,
                speeds=speeds,
                colocate=colocate,
                colocate_required=required,
                submit_time=float(k),
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pending", type=int, default=500)
    parser.add_argument("--fill", type=float, default=0.8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    where = cluster(args.nodes)
    policy = get_policy("besteffort")
    # Fill the cluster: jobs as a best-effort cycle (with allot's packer) would start them.
    target = args.fill * where.total_gpus * 1000
    seed_jobs: list[JobSpec] = []
    asked = 0
    while True:
        (job,) = jobs(rng, 1_000_000 + len(seed_jobs), 1)
        if asked + job.total.gpu_milli > target:
            break
        seed_jobs.append(job)
        asked += job.total.gpu_milli
    began = time.perf_counter()
    fill = Snapshot(where, packing=allot_packer(TaskMix.of(seed_jobs)))
    plan = schedule(fill, seed_jobs, policy, 0.0)
    fill_s = time.perf_counter() - began
    by_id = {j.id: j for j in seed_jobs}
    running = [RunningJob(by_id[s.job_id], 0.0, s.placement, s.flavor) for s in plan.starts]
    held = sum(j.spec.total.gpu_milli for j in running) / (where.total_gpus * 1000)
    pending = jobs(rng, 1, args.pending)
    workload = pending + [j.spec for j in running]
    mix = TaskMix.of(workload)
    table = Table(
        title=f"one cycle, {args.nodes:,} nodes ({where.total_gpus:,} GPUs, {held:.0%} held by "
        f"{len(running):,} running jobs; filled in {fill_s:.1f} s), {len(pending)} pending"
    )
    for column in ("placement", "throughput", "first ms", "median ms", "min ms", "started"):
        table.add_column(column, justify="left" if column == "placement" else "right")
    for name in ("bucket best fit", "default", "allot", "fgd", "best-fit"):
        for throughput in (False, True):
            packing: Packer | None = None
            if name == "default":
                packing = default_packer()
                packing.observe(pending)  # what the live loop shows it each cycle
            elif name != "bucket best fit":
                packing = packer_named(name, mix)
            norms = speed_norms(workload, where.flavors) if throughput else None
            snap = Snapshot(where, running, packing=packing, speed_norms=norms)
            if norms is not None:
                snap.speed_reserve = reserve_by_flavor(pending, where.flavors, norms)
            times = []
            started = 0
            for _ in range(args.repeat):
                t0 = time.process_time()
                result = schedule(snap, pending, policy, 1.0)
                times.append(time.process_time() - t0)
                started = len(result.starts)
            table.add_row(
                name,
                "yes" if throughput else "no",
                f"{times[0] * 1000:.0f}",
                f"{statistics.median(times) * 1000:.0f}",
                f"{min(times) * 1000:.0f}",
                str(started),
            )
    Console().print(table)


if __name__ == "__main__":
    main()
