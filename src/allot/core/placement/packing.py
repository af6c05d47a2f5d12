"""Packing: which node (and which device) a single-task job goes to, by a score over every node
that could take it, across all the flavors it accepts equally.

The bucket walk in ``select`` is best fit by construction and costs nothing per node; a
``Packer`` instead scores every candidate, so it can weigh what a placement does to the
cluster. Packers (lower key wins; ties go to the lowest node index):
- ``allot``: the growth of the fragmentation score below plus a model-scarcity charge (the
  task's GPU times how scarce the node's flavor is for the jobs that only some flavors can
  hold, ``allot.core.placement.demand``), ties broken by best fit. It is allot's default
  placement (``default_packer``): the live loop and the simulator place single-task jobs with
  it once the workload has shares of a GPU, reading the task mix and the scarcity online from
  the jobs they show it (``AllotPacker.observe``: pending jobs, arrivals); without shares the
  bucket walk in ``select`` is best fit already and costs nothing per node.
- ``fgd``: Fragmentation Gradient Descent (Weng et al., "Beware of Fragmentation", USENIX
  ATC'23): the placement that grows the expected fragmentation of the node the least (ties:
  the tightest device, then the lowest node index).
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
CPU-only shape counts nothing (it never uses GPUs).

Cost: packers score node *states*, not nodes: the snapshot groups up nodes by capacity and free
amounts (``Snapshot.by_state``), so a decision costs one score per distinct state (ties go to
the state's lowest node index), and fragmentation values are cached per (flavor, free CPU,
free milli per device).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from allot.core.model import MILLI_PER_GPU, JobSpec, NodeState, Resources
from allot.core.placement.demand import PRIOR_JOBS, RecentDemand, scarcity
from allot.core.placement.demand import MixShape as MixShape
from allot.core.placement.demand import TaskMix as TaskMix
from allot.core.snapshot import NodeKey

if TYPE_CHECKING:
    from allot.core.snapshot import Snapshot

Choice = tuple[int, int]  # (node index, device; -1 when the task takes whole devices or none)
# The nodes a packer chooses among: (flavor, node state, bitset of the up nodes in it).
Group = tuple[str, NodeKey, int]
Option = tuple[int, int] | None  # the (free milli, free GPU memory) of the device a share takes


class Packer(Protocol):
    """Chooses the node and device for one task among groups of nodes in the same state."""

    @property
    def name(self) -> str: ...

    def choose(
        self, snap: Snapshot, spec: JobSpec, task: Resources, groups: list[Group]
    ) -> Choice | None:
        """The best (node, device) for ``task`` of ``spec`` among ``groups``; None when no
        node there can take it."""
        ...


def options(key: NodeKey, task: Resources) -> list[Option]:
    """How a node in state ``key`` could take ``task``: one option per distinct device a share
    could take, [None] for whole devices or a CPU-only task; [] when it cannot."""
    _gpus, _, gpu_memory, cpu_free, mem_free, devices = key
    if cpu_free < task.cpu_milli or mem_free < task.memory_mib:
        return []
    if task.is_fractional:
        return [
            dev
            for n, dev in enumerate(devices)
            if dev[0] >= task.gpu_milli
            and (not gpu_memory or dev[1] >= task.gpu_memory_mib)
            and (n == 0 or devices[n - 1] != dev)
        ]
    if task.gpu_milli:
        if gpu_memory and gpu_memory < task.gpu_memory_mib:
            return []
        whole = sum(1 for m, _ in devices if m == MILLI_PER_GPU)
        return [None] if whole >= task.whole_gpus else []
    return [None]


def _milli(key: NodeKey) -> tuple[int, ...]:
    return tuple(m for m, _ in key[5])


def _after(key: NodeKey, option: Option, task: Resources) -> tuple[int, ...]:
    """The sorted free milli per device of a node in ``key`` once ``task`` took ``option``."""
    free = list(_milli(key))
    if option is not None:
        free[free.index(option[0])] = option[0] - task.gpu_milli
    else:
        for _ in range(task.whole_gpus):
            free[free.index(MILLI_PER_GPU)] = 0
    return tuple(sorted(free))


def share_left(key: NodeKey, task: Resources) -> float:
    """Free GPU and CPU of a node in ``key`` after ``task``, each as a share of the node."""
    gpus, cpu_cap = key[0], key[1]
    gpu = (sum(_milli(key)) - task.gpu_milli) / (gpus * MILLI_PER_GPU) if gpus else 0.0
    cpu = (key[3] - task.cpu_milli) / cpu_cap if cpu_cap else 0.0
    return gpu + cpu


def _device_left(option: Option, task: Resources) -> int:
    return option[0] - task.gpu_milli if option is not None else 0


def _lowest(bits: int) -> int:
    return (bits & -bits).bit_length() - 1


def place_on(snap: Snapshot, i: int, option: Option) -> Choice:
    """The (node, device) for ``option`` on node ``i``: the lowest device in that state."""
    if option is None:
        return (i, -1)
    memory = snap.dev_mem_free[i]
    for d, free in enumerate(snap.dev_free[i]):
        if (free, memory[d]) == option:
            return (i, d)
    raise AssertionError(f"node {i} has no device in state {option}")


Best = tuple[tuple[float, ...], Option] | None
Cache = dict[tuple[int, int, int, int], dict[tuple[str, NodeKey], Best]]
CACHE_LIMIT = 200_000  # (state, task) entries a packer keeps before starting afresh


def _by_score(
    snap: Snapshot,
    task: Resources,
    groups: list[Group],
    score: Callable[[str, NodeKey, Option], tuple[float, ...]],
    cache: Cache | None = None,
) -> Choice | None:
    """The option with the lowest ``score``, ties to the lowest node index. ``cache`` keeps
    each state's best option per task shape, for scores that depend on nothing else."""
    known: dict[tuple[str, NodeKey], Best] | None = None
    if cache is not None:
        if sum(len(v) for v in cache.values()) > CACHE_LIMIT:
            cache.clear()
        shape = (task.gpu_milli, task.cpu_milli, task.memory_mib, task.gpu_memory_mib)
        known = cache.setdefault(shape, {})
    best: tuple[tuple[float, ...], int] | None = None
    chosen: tuple[int, Option] | None = None
    for flavor, key, bits in groups:
        entry: Best
        if known is not None and (flavor, key) in known:
            entry = known[flavor, key]
        else:
            entry = min(
                ((score(flavor, key, o), o) for o in options(key, task)),
                key=lambda so: so[0],
                default=None,
            )
            if known is not None:
                known[flavor, key] = entry
        if entry is None:
            continue
        rank = (entry[0], _lowest(bits))
        if best is None or rank < best:
            best, chosen = rank, (rank[1], entry[1])
    return None if chosen is None else place_on(snap, *chosen)


@dataclass(slots=True)
class Fragmentation:
    """Expected fragmentation of node states against a ``TaskMix``, cached per state."""

    mix: TaskMix
    cache: dict[tuple[str, int, tuple[int, ...]], float] = field(default_factory=dict)

    def of(self, flavor: str, cpu_free: int, devices: tuple[int, ...]) -> float:
        """The weighted free milli-GPU of a node (free CPU, sorted free milli per device)
        that the mix could not use."""
        state = (flavor, cpu_free, devices)
        known = self.cache.get(state)
        if known is not None:
            return known
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

    def delta(self, flavor: str, key: NodeKey, option: Option, task: Resources) -> float:
        """How much a node's fragmentation grows if ``task`` takes ``option`` there."""
        before = self.of(flavor, key[3], _milli(key))
        after = self.of(flavor, key[3] - task.cpu_milli, _after(key, option, task))
        return after - before


@dataclass(frozen=True, slots=True)
class BestFit:
    """The node left with the least free GPU and CPU; within it, the tightest device."""

    name: str = "best-fit"

    def choose(
        self, snap: Snapshot, spec: JobSpec, task: Resources, groups: list[Group]
    ) -> Choice | None:
        return _by_score(
            snap,
            task,
            groups,
            lambda f, key, option: (share_left(key, task), _device_left(option, task)),
        )


@dataclass(frozen=True, slots=True)
class DotProduct:
    """Tetris: the largest dot product of the request and the node's free GPU and CPU, both
    normalised by the node's capacity; within the node, the tightest device."""

    name: str = "dot-product"

    def choose(
        self, snap: Snapshot, spec: JobSpec, task: Resources, groups: list[Group]
    ) -> Choice | None:
        def score(flavor: str, key: NodeKey, option: Option) -> tuple[float, ...]:
            gpus, cpu_cap = key[0], key[1]
            dot = 0.0
            if gpus:
                cap = gpus * MILLI_PER_GPU
                dot += (task.gpu_milli / cap) * (sum(_milli(key)) / cap)
            if cpu_cap:
                dot += (task.cpu_milli / cpu_cap) * (key[3] / cpu_cap)
            return (-dot, _device_left(option, task))

        return _by_score(snap, task, groups, score)


@dataclass(frozen=True, slots=True)
class GpuPacking:
    """Partly used devices first, then free devices on nodes in use, then idle nodes."""

    name: str = "gpu-packing"

    def choose(
        self, snap: Snapshot, spec: JobSpec, task: Resources, groups: list[Group]
    ) -> Choice | None:
        def score(flavor: str, key: NodeKey, option: Option) -> tuple[float, ...]:
            node_used = sum(_milli(key)) < key[0] * MILLI_PER_GPU
            partly_used = option is not None and option[0] < MILLI_PER_GPU
            tier = 0 if partly_used else 1 if node_used else 2
            return (tier, _device_left(option, task))

        return _by_score(snap, task, groups, score)


@dataclass(frozen=True, slots=True)
class RandomFit:
    """Any node that fits, drawn by a hash of the seed, the job and the node (reproducible)."""

    seed: int = 0
    name: str = "random-fit"

    def choose(
        self, snap: Snapshot, spec: JobSpec, task: Resources, groups: list[Group]
    ) -> Choice | None:
        def draw(i: int) -> int:
            # splitmix64-style mixing: well spread, and the same inputs draw the same node.
            mask = 2**64 - 1
            x = (self.seed * 0x9E3779B97F4A7C15 + spec.id * 0xBF58476D1CE4E5B9 + i) & mask
            x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
            x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
            return x ^ (x >> 31)

        best: tuple[int, int, Option] | None = None
        for _, key, bits in groups:
            found = options(key, task)
            if not found:
                continue
            while bits:
                i = _lowest(bits)
                bits &= bits - 1
                ticket = draw(i)
                if best is None or ticket < best[0]:
                    best = (ticket, i, found[0])
        return None if best is None else place_on(snap, best[1], best[2])


@dataclass(slots=True)
class FragmentationGradient:
    """FGD: the (node, device) whose fragmentation grows least under ``mix``."""

    mix: TaskMix
    name: str = "fgd"
    frag: Fragmentation = field(init=False)
    best: Cache = field(init=False)

    def __post_init__(self) -> None:
        self.frag = Fragmentation(self.mix)
        self.best = {}

    def choose(
        self, snap: Snapshot, spec: JobSpec, task: Resources, groups: list[Group]
    ) -> Choice | None:
        frag = self.frag

        def score(flavor: str, key: NodeKey, option: Option) -> tuple[float, ...]:
            # Rounded so equal growths compare equal despite float sums in other orders.
            grow = round(frag.delta(flavor, key, option, task), 6)
            return (grow, _device_left(option, task))

        return _by_score(snap, task, groups, score, self.best)


@dataclass(slots=True)
class AllotPacker:
    """allot's packer: fragmentation growth plus the scarcity charge, then best fit.

    With a fixed ``mix`` it scores against that workload; without one it follows the jobs a
    driver shows it (``observe``), re-reading the mix whenever the window has taken in an
    eighth of its size (or doubled, while it fills), so the caches survive between."""

    mix: TaskMix | None = None
    window: int = 2048
    name: str = "allot"
    demand: RecentDemand = field(init=False)
    frag: Fragmentation = field(init=False)
    best: Cache = field(init=False, default_factory=dict)
    charge: dict[str, float] = field(init=False, default_factory=dict)
    capacity: dict[str, int] = field(init=False, default_factory=dict)
    read_at: int = field(init=False, default=-1)  # the demand's version the mix was read at
    fresh: int = field(init=False, default=0)  # size of the window when the mix was read

    def __post_init__(self) -> None:
        self.demand = RecentDemand(self.window)
        self.frag = Fragmentation(self.mix or TaskMix(()))

    def observe(self, specs: Iterable[JobSpec]) -> None:
        """Count ``specs`` (arrived or pending jobs) into the recent demand; with a fixed mix
        this does nothing."""
        if self.mix is None:
            self.demand.observe(specs)

    def _refresh(self, snap: Snapshot) -> None:
        capacity, sizes = _capacity(snap)
        grown = self.demand.version - self.read_at
        stale = self.read_at < 0 or (
            self.mix is None and grown >= max(1, min(self.fresh, self.window // 8))
        )
        if stale:
            self.frag = Fragmentation(self.mix or self.demand.mix())
            self.read_at, self.fresh = self.demand.version, len(self.demand.jobs)
        if stale or capacity != self.capacity:
            self.capacity = capacity
            seen = len(self.demand.jobs)
            prior = 0.0 if self.mix is not None else PRIOR_JOBS / (PRIOR_JOBS + seen)
            self.charge = scarcity(self.frag.mix, capacity, sizes, prior)
            self.best.clear()

    def choose(
        self, snap: Snapshot, spec: JobSpec, task: Resources, groups: list[Group]
    ) -> Choice | None:
        self._refresh(snap)
        frag, charge = self.frag, self.charge

        def score(flavor: str, key: NodeKey, option: Option) -> tuple[float, ...]:
            cost = frag.delta(flavor, key, option, task) + task.gpu_milli * charge.get(flavor, 0)
            # Rounded so equal costs compare equal despite float sums in other orders.
            return (round(cost, 6), share_left(key, task), _device_left(option, task))

        return _by_score(snap, task, groups, score, self.best)


Sizes = dict[str, set[tuple[int, int]]]


def _capacity(snap: Snapshot) -> tuple[dict[str, int], Sizes]:
    """GPUs per flavor of the up nodes, and their distinct (GPUs, CPU) sizes; kept in the
    snapshot's memo, which node state changes clear."""
    known = snap.memo.get(_capacity)
    if known is None:
        capacity: dict[str, int] = dict.fromkeys(snap.flavors, 0)
        sizes: Sizes = {f: set() for f in snap.flavors}
        for i, node in enumerate(snap.nodes):
            if snap.state[i] is NodeState.UP:
                capacity[node.flavor] += node.gpus
                sizes[node.flavor].add((node.gpus, node.cpu_milli))
        known = snap.memo[_capacity] = (capacity, sizes)
    return known  # type: ignore[return-value]


def allot_packer(mix: TaskMix) -> AllotPacker:
    """allot's packer for a known workload of ``mix``."""
    return AllotPacker(mix)


def default_packer() -> AllotPacker:
    """allot's default placement for single-task jobs: its packer, reading the workload
    online from the jobs the driver observes (``AllotPacker.observe``)."""
    return AllotPacker()


def uses_packer(specs: Iterable[JobSpec]) -> bool:
    """True when a workload of ``specs`` is placed by the default packer: once some task
    asks for a share of a GPU (without, the bucket walk is best fit already and costs nothing
    per node)."""
    return any(t.is_fractional for s in specs for t in s.tasks)


def packer_named(name: str, mix: TaskMix, seed: int = 0) -> Packer:
    """The packer called ``name`` (see the module docstring), scoring against ``mix``;
    ValueError for another name."""
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
