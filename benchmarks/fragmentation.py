"""GPU fragmentation: how much of a cluster each packer can allocate before tasks stop fitting.

The experiment of the FGD paper (Weng et al., "Beware of Fragmentation", USENIX ATC'23, §6):
tasks of an ``openb`` pod list arrive in trace order, the list repeated until the GPUs asked
for pass ``--load`` (130 %) of the cluster's GPUs; nothing departs; a task that does not fit
when it arrives is dropped. Each packer (``allot.core.placement.packing``) places every task
through the core's own cycle (``schedule()`` on a ``Snapshot`` with that packer). The GPU
allocation ratio at the end, and the GPUs left unallocated, show how much each packer wastes
to fragmentation. ``allot`` is allot's default placement, as the simulator and the live loop
run it (``default_packer``: fragmentation growth plus the model-scarcity charge, ties to best
fit, reading the workload online from the pods arrived so far); ``fgd`` is plain FGD and the
others are the paper's baselines, whose fragmentation score weighs task shapes by how often
they occur in the whole pod list (as the paper does). ``bucket`` (not run unless asked for)
is the bucket walk: best fit flavor by flavor, no packer.

With ``--seeds N`` > 1, run ``i`` > 0 shuffles the pod list with seed ``i`` (run 0 keeps the
trace order) and the table shows the mean over runs, as the paper averages 10 seeds.

Published reference, openb default trace, 6,212 GPUs, 10 seeds, 130 % load (the paper's
Fig. 7): FGD 95.4 % allocated (286 GPUs unallocated), best-fit 93.1 %, GPU packing 92.0 %,
random 87.5 %.

Run: ``.venv/bin/python benchmarks/fragmentation.py --pods
../shared/traces/alibaba2023/openb_pod_list_default.csv --nodes
../shared/traces/alibaba2023/openb_node_list_gpu_node.csv [--json out.json] [--plot out.png]
[--seeds 1] [--load 1.3] [--packers allot,fgd,...]``. ``--json`` writes
``{"packer": {"allocated_fraction": f, "unallocated_gpus": n}}``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from allot.core.cycle import schedule
from allot.core.model import MILLI_PER_GPU, Cluster, JobSpec, RunningJob
from allot.core.placement.packing import (
    PACKERS,
    AllotPacker,
    Packer,
    TaskMix,
    default_packer,
    packer_named,
)
from allot.core.policy import POLICIES
from allot.core.snapshot import Snapshot
from allot.sim.traces.alibaba import read_alibaba_nodes, read_alibaba_tasks

SAMPLES = 100  # points on the allocation curve
BUCKET = "bucket"


@dataclass
class Outcome:
    """One packer's run: the final allocation and the curve (arrived %, allocated %)."""

    allocated_milli: int
    capacity_milli: int
    seconds: float
    curve: list[tuple[float, float]] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        return self.allocated_milli / self.capacity_milli

    @property
    def unallocated_gpus(self) -> float:
        return (self.capacity_milli - self.allocated_milli) / MILLI_PER_GPU


def arrivals(tasks: Sequence[JobSpec], capacity_milli: int, load: float) -> list[JobSpec]:
    """``tasks`` repeated in order until they ask for more than ``load`` x the capacity."""
    if not any(t.total.gpu_milli for t in tasks):
        raise SystemExit("--pods: the pod list asks for no GPUs")
    out: list[JobSpec] = []
    asked = 0
    while asked <= load * capacity_milli:
        for spec in tasks:
            out.append(replace(spec, id=len(out) + 1))
            asked += spec.total.gpu_milli
            if asked > load * capacity_milli:
                break
    return out


def run(cluster: Cluster, stream: Sequence[JobSpec], packer_name: str, mix: TaskMix, seed: int):
    """Feed ``stream`` to the core with one packer; returns the ``Outcome``."""
    packer: Packer | None = None
    if packer_name == "allot":
        packer = default_packer()
    elif packer_name != BUCKET:
        packer = packer_named(packer_name, mix, seed)
    snap = Snapshot(cluster, packing=packer)
    policy = POLICIES["besteffort"]
    capacity = cluster.total_gpus * MILLI_PER_GPU
    asked = 0
    every = max(1, len(stream) // SAMPLES)
    outcome = Outcome(0, capacity, 0.0)
    began = time.process_time()
    for n, spec in enumerate(stream):
        asked += spec.total.gpu_milli
        if isinstance(packer, AllotPacker):
            packer.observe((spec,))  # as the simulator does on each arrival
        plan = schedule(snap, [spec], policy, 0.0)
        for start in plan.starts:
            snap.start(RunningJob(spec, 0.0, start.placement, start.flavor))
        if n % every == 0 or n == len(stream) - 1:
            outcome.curve.append(
                (100 * asked / capacity, 100 * snap.allocated_gpu_milli / capacity)
            )
    outcome.seconds = time.process_time() - began
    outcome.allocated_milli = snap.allocated_gpu_milli
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", required=True, type=Path, help="openb pod list (CSV)")
    parser.add_argument("--nodes", required=True, type=Path, help="openb node list (CSV)")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    parser.add_argument("--plot", type=Path, help="plot allocation vs arrived workload here")
    parser.add_argument("--seeds", type=int, default=1, help="runs (run 0: trace order)")
    parser.add_argument("--load", type=float, default=1.3, help="offered load (share of GPUs)")
    parser.add_argument("--packers", default=",".join(PACKERS))
    args = parser.parse_args(argv)
    packers = [p.strip() for p in args.packers.split(",") if p.strip()]
    known = (*PACKERS, BUCKET)
    unknown = [p for p in packers if p not in known]
    if unknown:
        parser.error(f"--packers: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    if args.seeds < 1:
        parser.error("--seeds: must be >= 1")
    cluster = read_alibaba_nodes(args.nodes)
    gpu_nodes = Cluster(tuple(n for n in cluster.nodes if n.gpus), name=cluster.name)
    tasks = read_alibaba_tasks(args.pods)
    mix = TaskMix.of(tasks)
    capacity = gpu_nodes.total_gpus * MILLI_PER_GPU
    results: dict[str, list[Outcome]] = {p: [] for p in packers}
    for seed in range(args.seeds):
        order = list(tasks)
        if seed:
            random.Random(seed).shuffle(order)
        stream = arrivals(order, capacity, args.load)
        for name in packers:
            results[name].append(run(gpu_nodes, stream, name, mix, seed))
    console = Console()
    table = Table(
        title=f"{args.pods.name} on {args.nodes.name}: {gpu_nodes.total_gpus} GPUs, "
        f"{len(gpu_nodes.nodes)} nodes, {args.load:.0%} load, {args.seeds} run(s)"
    )
    for column in ("packer", "GPUs allocated", "GPUs unallocated", "CPU s per run"):
        table.add_column(column, justify="left" if column == "packer" else "right")
    rows: dict[str, dict[str, float]] = {}
    for name, outcomes in results.items():
        fraction = sum(o.fraction for o in outcomes) / len(outcomes)
        unallocated = sum(o.unallocated_gpus for o in outcomes) / len(outcomes)
        seconds = sum(o.seconds for o in outcomes) / len(outcomes)
        rows[name] = {
            "allocated_fraction": round(fraction, 4),
            "unallocated_gpus": round(unallocated, 1),
        }
        table.add_row(name, f"{fraction:.1%}", f"{unallocated:.1f}", f"{seconds:.1f}")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if args.plot:
        plot(results, args.plot, f"{args.pods.stem} on {gpu_nodes.total_gpus} GPUs")
    return 0


def plot(results: dict[str, list[Outcome]], path: Path, title: str) -> None:
    """GPU allocation (%) against arrived workload (% of capacity), first run of each packer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, outcomes in results.items():
        xs, ys = zip(*outcomes[0].curve, strict=True)
        ax.plot(xs, ys, label=name)
    ax.plot([0, 100], [0, 100], color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("arrived workload (% of cluster GPUs)")
    ax.set_ylabel("GPUs allocated (%)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
