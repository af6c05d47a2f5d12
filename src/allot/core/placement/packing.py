"""Packing: which node (and which device) a single-task job goes to, by a score over every node
that could take it, across all the flavors it accepts equally.

The bucket walk in ``select`` is best fit by construction and costs nothing per node; a
``Packer`` instead scores every candidate, so it can weigh what a placement does to the
cluster. Packers (lower key wins; ties go to the lowest node index, then device):
- ``allot``: the fragmentation score below, ties broken by best fit (the default in the
  simulator and the fragmentation benchmark).
- ``fgd``: Fragmentation Gradient Descent (Weng et al., "Beware of Fragmentation", USENIX
  ATC'23): the placement that grows the expected fragmentation of the node the least.
- ``best-fit``: the node left with the least free GPU and CPU (each as a share of the node).
- ``dot-product``: Tetris (Grandl et al., SIGCOMM'14): the node whose free GPU and CPU align
  best with the request (largest dot product of the normalised vectors).
- ``gpu-packing``: partly used devices first, then free devices on nodes already in use, then
  idle nodes (the GPU-packing heuristic the FGD paper compares against).
- ``random-fit``: any node that fits, drawn by a seeded hash, so the same inputs give the same
  choice (the core has no randomness).

Fragmentation (FGD's definition): for a task shape ``m`` of the expected workload (``TaskMix``,
shapes weighted by how often they occur), the free GPU of a node that ``m`` could not use: all
of it when ``m`` cannot fit the node at all (wrong flavor, too little CPU, no device with room),
else the free milli-GPU on devices with less room than ``m`` needs per device (for whole-GPU
shapes, every partly used device). A node's fragmentation is the weighted sum over the mix; a
CPU-only shape counts nothing (it never uses GPUs). Values are cached per node state (flavor,
free CPU, sorted free milli per device), so a decision costs one dictionary look-up per node.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from allot.core.model import MILLI_PER_GPU, JobSpec, Resources

if TYPE_CHECKING:
    from allot.core.snapshot import Snapshot

NodeState_ = tuple[str, int, tuple[int, ...]]
Choice = tuple[int, int]  # (node index, device; -1 when the task takes whole devices or none)


class Packer(Protocol):
    """Chooses the node and device for one task among the nodes that can take it."""

    @property
    def name(self) -> str: ...

    def choose(self, snap: Snapshot, spec: JobSpec, task: Resources, nodes: list[int]) -> Choice:
        """The best (node, device) for ``task`` of ``spec``; ``nodes`` is non-empty and every
        node in it can take the task (for a share of a GPU: on at least one device)."""
        ...


@dataclass(frozen=True, slots=True)
class MixShape:
    """One task shape of the expected workload and its weight (share of all tasks)."""

    cpu_milli: int
    gpu_milli: int  # per device: below 1000 is a share of one GPU
    devices: int  # whole devices (0 for a share or a CPU-only task)
    flavors: frozenset[str]  # empty: any
    weight: float


@dataclass(frozen=True, slots=True)
class TaskMix:
    """The expected workload, as task shapes with their weights (summing to 1)."""

    shapes: tuple[MixShape, ...]

    @classmethod
    def of(cls, specs: Iterable[JobSpec]) -> TaskMix:
        """The mix of the tasks of ``specs`` (each task counts once)."""
        counts: Counter[tuple[int, int, int, frozenset[str]]] = Counter()
        for spec in specs:
            flavors = frozenset(spec.flavors)
            for task in spec.tasks:
                whole = task.whole_gpus
                per_device = MILLI_PER_GPU if whole else task.gpu_milli
                counts[(task.cpu_milli, per_device, whole, flavors)] += 1
        total = sum(counts.values()) or 1
        shapes = tuple(
            MixShape(cpu, gpu, n, flavors, count / total)
            for (cpu, gpu, n, flavors), count in sorted(
                counts.items(), key=lambda kv: (kv[0][:3], sorted(kv[0][3]))
            )
        )
        return cls(shapes)


def _state(snap: Snapshot, i: int) -> NodeState_:
    return (snap.flavor_of[i], snap.cpu_free[i], tuple(sorted(snap.dev_free[i])))


@dataclass(slots=True)
class Fragmentation:
    """Expected fragmentation of node states against a ``TaskMix``, cached per state."""

    mix: TaskMix
    cache: dict[NodeState_, float] = field(default_factory=dict)

    def of(self, state: NodeState_) -> float:
        """The weighted free milli-GPU of a node in ``state`` that the mix could not use."""
        known = self.cache.get(state)
        if known is not None:
            return known
        flavor, cpu_free, devices = state
        total = sum(devices)
        whole = devices.count(MILLI_PER_GPU)
        partial = total - whole * MILLI_PER_GPU
        largest = devices[-1] if devices else 0
        frag = 0.0
        for m in self.mix.shapes:
            if m.gpu_milli == 0:
                continue
            if (m.flavors and flavor not in m.flavors) or m.cpu_milli > cpu_free:
                frag += m.weight * total
            elif m.devices:
                frag += m.weight * (total if whole < m.devices else partial)
            elif largest < m.gpu_milli:
                frag += m.weight * total
            else:
                frag += m.weight * sum(f for f in devices if f < m.gpu_milli)
        self.cache[state] = frag
        return frag

    def delta(self, snap: Snapshot, i: int, device: int, task: Resources) -> float:
        """How much node ``i``'s fragmentation grows if ``task`` takes ``device`` (-1: whole
        devices, the most free ones; a CPU-only task takes none)."""
        before = _state(snap, i)
        flavor, cpu, devices = before
        free = list(devices)
        if device >= 0:
            amount = snap.dev_free[i][device]
            free[free.index(amount)] = amount - task.gpu_milli
        else:
            for _ in range(task.whole_gpus):
                free[free.index(MILLI_PER_GPU)] = 0
        after = (flavor, cpu - task.cpu_milli, tuple(sorted(free)))
        return self.of(after) - self.of(before)


def _devices(snap: Snapshot, i: int, task: Resources) -> Sequence[int]:
    """The devices of node ``i`` a share-of-a-GPU task could take, one per distinct free
    amount (devices with the same free amount are interchangeable); [-1] otherwise."""
    if not task.is_fractional:
        return (-1,)
    seen: dict[int, int] = {}
    for d, free in enumerate(snap.dev_free[i]):
        if free not in seen and snap.device_fits(i, d, task.gpu_milli, task.gpu_memory_mib):
            seen[free] = d
    return list(seen.values())


def _share_left(snap: Snapshot, i: int, task: Resources) -> float:
    """Free GPU and CPU of node ``i`` after ``task``, each as a share of the node."""
    node = snap.nodes[i]
    gpu = (snap.free_on(i) - task.gpu_milli) / (node.gpus * MILLI_PER_GPU) if node.gpus else 0.0
    cpu = (snap.cpu_free[i] - task.cpu_milli) / node.cpu_milli if node.cpu_milli else 0.0
    return gpu + cpu


def _device_left(snap: Snapshot, i: int, d: int, task: Resources) -> int:
    return snap.dev_free[i][d] - task.gpu_milli if d >= 0 else 0


@dataclass(frozen=True, slots=True)
class BestFit:
    """The node left with the least free GPU and CPU; within it, the tightest device."""

    name: str = "best-fit"

    def choose(self, snap: Snapshot, spec: JobSpec, task: Resources, nodes: list[int]) -> Choice:
        return min(
            ((i, d) for i in nodes for d in _devices(snap, i, task)),
            key=lambda c: (_share_left(snap, c[0], task), _device_left(snap, c[0], c[1], task), c),
        )


@dataclass(frozen=True, slots=True)
class DotProduct:
    """Tetris: the largest dot product of the request and the node's free GPU and CPU, both
    normalised by the node's capacity; within the node, the tightest device."""

    name: str = "dot-product"

    def choose(self, snap: Snapshot, spec: JobSpec, task: Resources, nodes: list[int]) -> Choice:
        def key(c: Choice) -> tuple[float, int, Choice]:
            i, d = c
            node = snap.nodes[i]
            dot = 0.0
            if node.gpus:
                cap = node.gpus * MILLI_PER_GPU
                dot += (task.gpu_milli / cap) * (snap.free_on(i) / cap)
            if node.cpu_milli:
                dot += (task.cpu_milli / node.cpu_milli) * (snap.cpu_free[i] / node.cpu_milli)
            return (-dot, _device_left(snap, i, d, task), c)

        return min(((i, d) for i in nodes for d in _devices(snap, i, task)), key=key)


@dataclass(frozen=True, slots=True)
class GpuPacking:
    """Partly used devices first, then free devices on nodes in use, then idle nodes."""

    name: str = "gpu-packing"

    def choose(self, snap: Snapshot, spec: JobSpec, task: Resources, nodes: list[int]) -> Choice:
        def key(c: Choice) -> tuple[int, int, Choice]:
            i, d = c
            node_used = snap.free_on(i) < snap.nodes[i].gpus * MILLI_PER_GPU
            partly_used = d >= 0 and snap.dev_free[i][d] < MILLI_PER_GPU
            tier = 0 if partly_used else 1 if node_used else 2
            return (tier, _device_left(snap, i, d, task), c)

        return min(((i, d) for i in nodes for d in _devices(snap, i, task)), key=key)


@dataclass(frozen=True, slots=True)
class RandomFit:
    """Any node that fits, drawn by a hash of the seed, the job and the node (reproducible)."""

    seed: int = 0
    name: str = "random-fit"

    def choose(self, snap: Snapshot, spec: JobSpec, task: Resources, nodes: list[int]) -> Choice:
        def draw(c: Choice) -> int:
            # splitmix64-style mixing: well spread, and the same inputs draw the same node.
            x = (self.seed * 0x9E3779B97F4A7C15 + spec.id * 0xBF58476D1CE4E5B9 + c[0]) & (2**64 - 1)
            x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
            x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
            return x ^ (x >> 31)

        i = min(nodes, key=lambda n: draw((n, 0)))
        return min(((i, d) for d in _devices(snap, i, task)), key=lambda c: c[1])


@dataclass(slots=True)
class FragmentationGradient:
    """FGD: the (node, device) whose fragmentation grows least under ``mix``. With
    ``tie_break`` set (the ``allot`` packer), equal growths go to the best fit instead of the
    lowest node index, which keeps whole nodes free for whole-GPU work."""

    mix: TaskMix
    name: str = "fgd"
    tie_break: bool = False
    frag: Fragmentation = field(init=False)

    def __post_init__(self) -> None:
        self.frag = Fragmentation(self.mix)

    def choose(self, snap: Snapshot, spec: JobSpec, task: Resources, nodes: list[int]) -> Choice:
        frag = self.frag
        best: Choice = (-1, -1)
        best_key: tuple[float, float, int] | None = None
        for i in nodes:
            for d in _devices(snap, i, task):
                # Rounded so equal growths compare equal despite float sums in other orders.
                grow = round(frag.delta(snap, i, d, task), 6)
                if self.tie_break:
                    key = (grow, _share_left(snap, i, task), _device_left(snap, i, d, task))
                else:
                    key = (grow, 0.0, 0)
                if best_key is None or key < best_key:
                    best, best_key = (i, d), key
        return best


def allot_packer(mix: TaskMix) -> FragmentationGradient:
    """allot's packer for a workload of ``mix``: fragmentation growth, then best fit."""
    return FragmentationGradient(mix, name="allot", tie_break=True)


def default_packer(specs: Iterable[JobSpec]) -> Packer | None:
    """The packer a driver uses for a workload of ``specs`` (pending and running): allot's
    fragmentation-aware packer when some task asks for a share of a GPU, else None (best fit
    by the bucket walk, which is exact for whole GPUs and costs nothing per node)."""
    specs = list(specs)
    if not any(t.is_fractional for s in specs for t in s.tasks):
        return None
    return allot_packer(TaskMix.of(specs))


def packer_named(name: str, mix: TaskMix, seed: int = 0) -> Packer:
    """The packer called ``name`` (see the module docstring); ValueError for another name."""
    if name == "allot":
        return allot_packer(mix)
    if name == "fgd":
        return FragmentationGradient(mix)
    if name == "best-fit":
        return BestFit()
    if name == "dot-product":
        return DotProduct()
    if name == "gpu-packing":
        return GpuPacking()
    if name == "random-fit":
        return RandomFit(seed)
    raise ValueError(f"packing: unknown packer {name!r}; known: {', '.join(PACKERS)}")


PACKERS = ("allot", "fgd", "best-fit", "dot-product", "gpu-packing", "random-fit")
