"""Demand: what the workload asks for, as the packers read it: the task mix, the recent jobs it
is estimated from, and how scarce each flavor is for the jobs that can use only a few.

- ``TaskMix``: task shapes weighted by how often they occur (the workload the fragmentation
  score expects, ``allot.core.placement.packing``).
- ``RecentDemand``: the tasks of the last ``window`` jobs a driver observed (arrivals, or the
  jobs pending now; a job counts once while it is in the window), so the mix follows the
  workload as it is, online, never from jobs yet to come.
- ``scarcity``: for each flavor ``f``, the GPU asked of ``f`` by tasks that only some flavors
  can hold (those they accept whose nodes are large enough for them: an 8-GPU task with 120
  CPUs that accepts any model still needs the one model with such nodes; a task ``k`` flavors
  can hold asks ``1/k`` of its GPU of each), as a share of all GPU the mix asks, over ``f``'s
  share of the cluster's GPUs. 0 when no task needs ``f`` in particular; 1 when the tasks
  that need ``f`` would fill it as much as the whole workload fills the cluster. allot's
  packer charges a task placed on ``f`` its GPU times this figure, so a task that accepts any
  model leaves the models others depend on to them.

Until the window has seen enough jobs, a prior weighs in (``PRIOR_JOBS`` jobs' worth): every
model has users of its own who ask an equal share of the workload, so a model with few GPUs
counts as scarce until the jobs show otherwise. Without it the first jobs, seeing no
constrained demand yet, would take the small models, and jobs may hold their nodes for weeks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from allot.core.model import MILLI_PER_GPU, JobId, JobSpec

ShapeKey = tuple[int, int, int, frozenset[str]]  # (cpu milli, milli per device, devices, flavors)
WINDOW = 2048  # jobs the recent demand remembers
PRIOR_JOBS = 256  # the weight of the scarcity prior, in jobs


@dataclass(frozen=True, slots=True)
class MixShape:
    """One task shape of the expected workload and its weight (share of all tasks)."""

    cpu_milli: int
    gpu_milli: int  # per device: below 1000 is a share of one GPU
    devices: int  # whole devices (0 for a share or a CPU-only task)
    flavors: frozenset[str]  # empty: any
    weight: float

    @property
    def total_gpu_milli(self) -> int:
        """The GPU one task of this shape takes, in milli-GPU."""
        return self.gpu_milli * self.devices if self.devices else self.gpu_milli


def shape_keys(spec: JobSpec) -> list[ShapeKey]:
    """The shape of each task of ``spec``."""
    flavors = frozenset(spec.flavors)
    out = []
    for task in spec.tasks:
        whole = task.whole_gpus
        per_device = MILLI_PER_GPU if whole else task.gpu_milli
        out.append((task.cpu_milli, per_device, whole, flavors))
    return out


@dataclass(frozen=True, slots=True)
class TaskMix:
    """The expected workload, as task shapes with their weights (summing to 1)."""

    shapes: tuple[MixShape, ...]

    @classmethod
    def of(cls, specs: Iterable[JobSpec]) -> TaskMix:
        """The mix of the tasks of ``specs`` (each task counts once)."""
        counts: Counter[ShapeKey] = Counter()
        for spec in specs:
            counts.update(shape_keys(spec))
        return cls.counted(counts)

    @classmethod
    def counted(cls, counts: Mapping[ShapeKey, int]) -> TaskMix:
        """The mix of task shapes counted ``counts`` times each."""
        total = sum(counts.values()) or 1
        shapes = tuple(
            MixShape(cpu, gpu, n, flavors, count / total)
            for (cpu, gpu, n, flavors), count in sorted(
                counts.items(), key=lambda kv: (kv[0][:3], sorted(kv[0][3]))
            )
            if count
        )
        return cls(shapes)


NodeSizes = Mapping[str, Iterable[tuple[int, int]]]  # flavor -> (GPUs, CPU milli) of its nodes


def scarcity(
    mix: TaskMix, capacity: Mapping[str, int], sizes: NodeSizes, prior: float = 0.0
) -> dict[str, float]:
    """How scarce each flavor of ``capacity`` (GPUs per flavor) is for the tasks of ``mix``
    that only some flavors can hold (see the module docstring): a task counts for the flavors
    it accepts whose nodes (``sizes``) are large enough for it. ``prior`` (0 to 1) is the
    weight of the prior against the mix. Flavors without GPUs get 0."""
    total_capacity = sum(capacity.values())
    asked = sum(m.weight * m.total_gpu_milli for m in mix.shapes)
    needed = dict.fromkeys(capacity, 0.0)
    largest = {f: list(sizes.get(f, ())) for f in capacity if capacity[f]}
    for m in mix.shapes:
        if not m.total_gpu_milli:
            continue
        devices = max(m.devices, 1)
        usable = [
            f
            for f, nodes in largest.items()
            if (not m.flavors or f in m.flavors)
            and any(g >= devices and cpu >= m.cpu_milli for g, cpu in nodes)
        ]
        if not usable or len(usable) == len(largest):
            continue
        for f in usable:
            needed[f] += m.weight * m.total_gpu_milli / len(usable)
    if not total_capacity:
        return dict.fromkeys(capacity, 0.0)
    share = {f: needed[f] / asked if asked else 0.0 for f in needed}
    if not asked:
        prior = 1.0
    return {
        f: ((1 - prior) * share[f] + prior / len(largest)) / (gpus / total_capacity)
        if gpus
        else 0.0
        for f, gpus in capacity.items()
    }


@dataclass(slots=True)
class RecentDemand:
    """The task shapes of the last ``window`` jobs observed, each job counted once while it is
    in the window; ``version`` grows with every job that enters."""

    window: int = WINDOW
    jobs: dict[JobId, list[ShapeKey]] = field(default_factory=dict)  # oldest first
    counts: Counter[ShapeKey] = field(default_factory=Counter)
    version: int = 0

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window: must be >= 1, got {self.window}")

    def observe(self, specs: Iterable[JobSpec]) -> None:
        """Count the jobs of ``specs`` not already in the window, dropping the oldest ones
        beyond it."""
        jobs, counts = self.jobs, self.counts
        for spec in specs:
            if spec.id in jobs:
                continue
            keys = shape_keys(spec)
            jobs[spec.id] = keys
            counts.update(keys)
            self.version += 1
            while len(jobs) > self.window:
                oldest = next(iter(jobs))
                counts.subtract(jobs.pop(oldest))
        if len(counts) > 4 * self.window:
            self.counts = +counts  # drop shapes no job in the window has any more

    def mix(self) -> TaskMix:
        """The task mix of the jobs in the window."""
        return TaskMix.counted(self.counts)
