"""Frozen values the scheduling core decides over.

Nomenclature
- ``Resources``: an amount of GPU (milli-GPU), CPU (milli-cores) and memory (MiB), and for a task
  the GPU memory (MiB) it needs on each device it holds. Integers only, so sums are exact and
  comparisons never drift.
- ``flavor``: a GPU type such as ``H100-80G``; every node has exactly one. CPU-only nodes use a
  flavor of their own (conventionally ``cpu``).
- ``Node``: one machine: flavor, GPU count, CPU, memory, topology path and state.
- ``JobSpec``: what a user asked for: tenant, user, queue, priority, and one ``Resources`` per
  task. A job with more than one task is a gang: all tasks start together or none does.
- ``TaskPlacement``: where one task of a started job runs: a node and device indices.

Invariants (checked in ``__post_init__``, so an invalid value cannot be built):
- amounts are non-negative integers;
- a task asks for either a share of one GPU (1..999 milli) or whole GPUs (a multiple of 1000);
- GPU memory is asked for only with GPUs, and a node's device memory (0: not tracked) bounds it;
- a job has at least one task; estimates and time limits are positive when given.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

MILLI_PER_GPU = 1000
MILLI_PER_CPU = 1000
MIB_PER_GIB = 1024
SECONDS_PER_HOUR = 3600.0

JobId = int


class SpecError(ValueError):
    """A value broke one of the core's rules; the message names the field and the rule."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.rule = message


@dataclass(frozen=True, slots=True)
class Resources:
    """An amount of resources: GPU in milli-GPU, CPU in milli-cores, memory in MiB.

    ``gpu_memory_mib`` is per device: what a task needs on each GPU it holds (for a share of one
    GPU, its part of that GPU's memory). Sums leave it as the larger of the two, so a job's
    total keeps the most any of its tasks needs on one device.
    """

    gpu_milli: int = 0
    cpu_milli: int = 0
    memory_mib: int = 0
    gpu_memory_mib: int = 0

    def __post_init__(self) -> None:
        for name in ("gpu_milli", "cpu_milli", "memory_mib", "gpu_memory_mib"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise SpecError(name, f"must be an integer, got {value!r}")
            if value < 0:
                raise SpecError(name, f"must be >= 0, got {value}")
        if self.gpu_memory_mib and not self.gpu_milli:
            raise SpecError("gpu_memory_mib", "GPU memory can only be asked for with GPUs")

    @classmethod
    def of(cls, gpus: float = 0, cpus: float = 0, memory_mib: int = 0) -> Resources:
        """Build from whole units: ``Resources.of(gpus=0.5, cpus=4, memory_mib=16384)``."""
        return cls(round(gpus * MILLI_PER_GPU), round(cpus * MILLI_PER_CPU), memory_mib)

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.gpu_milli + other.gpu_milli,
            self.cpu_milli + other.cpu_milli,
            self.memory_mib + other.memory_mib,
            max(self.gpu_memory_mib, other.gpu_memory_mib),
        )

    def scaled(self, factor: int) -> Resources:
        """This amount ``factor`` times over (``factor`` >= 0)."""
        return Resources(
            self.gpu_milli * factor,
            self.cpu_milli * factor,
            self.memory_mib * factor,
            self.gpu_memory_mib if factor else 0,
        )

    @property
    def gpus(self) -> float:
        """GPUs as a float, for display."""
        return self.gpu_milli / MILLI_PER_GPU

    @property
    def whole_gpus(self) -> int:
        """Whole devices this amount needs (0 for a fractional or CPU-only task)."""
        return self.gpu_milli // MILLI_PER_GPU if self.gpu_milli >= MILLI_PER_GPU else 0

    @property
    def is_fractional(self) -> bool:
        """True for a share of a single device (1..999 milli-GPU)."""
        return 0 < self.gpu_milli < MILLI_PER_GPU


def sum_resources(items: Iterable[Resources]) -> Resources:
    """The component-wise sum of ``items``."""
    gpu = cpu = mem = gpu_mem = 0
    for r in items:
        gpu += r.gpu_milli
        cpu += r.cpu_milli
        mem += r.memory_mib
        gpu_mem = max(gpu_mem, r.gpu_memory_mib)
    return Resources(gpu, cpu, mem, gpu_mem)


class NodeState(StrEnum):
    """Whether a node takes new work."""

    UP = "up"
    DRAINING = "draining"  # running work continues, nothing new is placed
    DOWN = "down"  # nothing runs or is placed


@dataclass(frozen=True, slots=True)
class Node:
    """One machine."""

    name: str
    flavor: str
    gpus: int
    cpu_milli: int
    memory_mib: int
    topology: tuple[str, ...] = ()
    state: NodeState = NodeState.UP
    # The node pool whose executor runs work here (the local machine, a Slurm partition, a
    # Ray cluster); a gang never spans pools.
    pool: str = ""
    # Memory of each device in MiB; 0 when not tracked (GPU memory requests are then not
    # bounded on this node).
    gpu_memory_mib: int = 0
    # NVLink domains: a domain number per device (devices with the same number talk over
    # NVLink); empty when every device is in one domain.
    nvlink: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.name:
            raise SpecError("node.name", "must not be empty")
        if not self.flavor:
            raise SpecError(f"node {self.name}.flavor", "must not be empty")
        if self.nvlink and len(self.nvlink) != self.gpus:
            raise SpecError(
                f"node {self.name}.nvlink",
                f"must give one domain per device ({self.gpus}), got {len(self.nvlink)}",
            )
        for name in ("gpus", "cpu_milli", "memory_mib", "gpu_memory_mib"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SpecError(
                    f"node {self.name}.{name}", f"must be an integer >= 0, got {value!r}"
                )

    @property
    def capacity(self) -> Resources:
        """Everything the node has."""
        return Resources(self.gpus * MILLI_PER_GPU, self.cpu_milli, self.memory_mib)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a user asked for. ``tasks`` holds one ``Resources`` per task; more than one is a gang.

    ``flavors`` lists the accepted GPU flavors in order of preference; empty accepts any. With
    ``flavor_order`` False the listed flavors are alternatives of equal standing (the scheduler
    picks among them, as it does for "any"). ``speeds`` gives the job's relative speed on
    flavors (1.0 on its reference; a flavor not listed runs at 1.0): throughput-aware placement
    prefers the flavors it runs fastest on, and the simulator scales its run time by it.
    ``runtime_estimate`` and ``time_limit`` are seconds; backfill uses the estimate, else the
    limit. ``checkpointable`` jobs lose less when preempted and are preferred as victims.
    """

    id: JobId
    tenant: str
    user: str
    queue: str
    tasks: tuple[Resources, ...]
    flavors: tuple[str, ...] = ()
    priority: int = 0
    submit_time: float = 0.0
    runtime_estimate: float | None = None
    time_limit: float | None = None
    name: str = ""
    checkpointable: bool = False
    preemptible: bool = True
    flavor_order: bool = True
    speeds: tuple[tuple[str, float], ...] = ()
    # Keep the tasks within one "node", "rack" or "block" of the topology ("" for anywhere);
    # required, or only preferred.
    colocate: str = ""
    colocate_required: bool = False
    # Derived once at construction: the hot path compares and hashes these on every cycle.
    total: Resources = field(init=False, repr=False, compare=False)
    shape: tuple[object, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Accept any sequence but keep tuples, so specs stay hashable and immutable.
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "flavors", tuple(self.flavors))
        if not self.tasks:
            raise SpecError("tasks", "a job needs at least one task")
        for i, task in enumerate(self.tasks):
            if not isinstance(task, Resources):
                raise SpecError(f"tasks[{i}]", "must be a Resources value")
            if task.gpu_milli >= MILLI_PER_GPU and task.gpu_milli % MILLI_PER_GPU:
                raise SpecError(
                    f"tasks[{i}].gpu_milli",
                    f"must be below {MILLI_PER_GPU} (a share of one GPU) or a multiple of "
                    f"{MILLI_PER_GPU} (whole GPUs), got {task.gpu_milli}",
                )
        for name in ("runtime_estimate", "time_limit"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise SpecError(name, f"must be > 0 seconds when given, got {value!r}")
        if len(set(self.flavors)) != len(self.flavors):
            raise SpecError("flavors", f"lists a flavor twice: {list(self.flavors)}")
        if self.colocate not in ("", "node", "rack", "block"):
            raise SpecError(
                "colocate", f"must be one of node, rack, block (or empty), got {self.colocate!r}"
            )
        if self.colocate_required and not self.colocate:
            raise SpecError("colocate_required", "needs colocate (node, rack or block)")
        object.__setattr__(self, "speeds", tuple((str(f), float(v)) for f, v in self.speeds))
        if len({f for f, _ in self.speeds}) != len(self.speeds):
            raise SpecError("speeds", "lists a flavor twice")
        for flavor, speed in self.speeds:
            if not speed > 0:
                raise SpecError(f"speeds[{flavor}]", f"must be > 0, got {speed!r}")
        # ``total``: everything the job asks for across its tasks; ``shape``: what placement
        # depends on (tasks and accepted flavors), as plain tuples that hash fast.
        object.__setattr__(self, "total", sum_resources(self.tasks))
        shape = tuple(
            (t.gpu_milli, t.cpu_milli, t.memory_mib, t.gpu_memory_mib) for t in self.tasks
        )
        object.__setattr__(self, "shape", (shape, self.flavors))
        if self.colocate:
            # Placement depends on the colocation rule too: jobs differing in it are not twins.
            object.__setattr__(
                self, "shape", (shape, self.flavors, self.colocate, self.colocate_required)
            )

    def speed_on(self, flavor: str) -> float:
        """The job's relative speed on ``flavor`` (1.0 when not given)."""
        for name, speed in self.speeds:
            if name == flavor:
                return speed
        return 1.0

    @property
    def is_gang(self) -> bool:
        """True when the job has more than one task."""
        return len(self.tasks) > 1

    @property
    def expected_runtime(self) -> float | None:
        """The runtime backfill plans with: the estimate, else the time limit, else unknown."""
        return self.runtime_estimate if self.runtime_estimate is not None else self.time_limit


def gang(count: int, per_task: Resources) -> tuple[Resources, ...]:
    """``count`` identical tasks, for ``JobSpec.tasks``."""
    if count < 1:
        raise SpecError("tasks", f"count must be >= 1, got {count}")
    return (per_task,) * count


@dataclass(frozen=True, slots=True)
class TaskPlacement:
    """Where one task runs: a node and the device indices it holds on it.

    ``gpu_milli_per_device`` is 1000 for whole GPUs and the share for a fractional task.
    """

    node: str
    devices: tuple[int, ...] = ()
    gpu_milli_per_device: int = 0


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job holding resources: its spec, when it started, where its tasks run, on which flavor."""

    spec: JobSpec
    start_time: float
    placement: tuple[TaskPlacement, ...]
    flavor: str
    attained_service: float = 0.0  # GPU-seconds received before this start (kept across requeues)
    stopping_until: float | None = None  # set once preempted: it stops by then

    @property
    def expected_end(self) -> float:
        """When the job is expected to finish (or to have stopped, once preempted); infinity
        when neither estimate nor limit is set."""
        runtime = self.spec.expected_runtime
        end = float("inf") if runtime is None else self.start_time + runtime
        if self.stopping_until is not None:
            return min(end, self.stopping_until)
        return end

    def attained_at(self, now: float) -> float:
        """GPU-seconds this job has received by ``now``, over all its runs (2D attained
        service, as in Tiresias)."""
        held = self.spec.total.gpu_milli / MILLI_PER_GPU
        return self.attained_service + held * max(0.0, now - self.start_time)


class JobState(StrEnum):
    """The job state machine: pending -> running -> succeeded | failed | cancelled;
    running -> preempted -> pending; pending -> cancelled."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PREEMPTED = "preempted"

    @property
    def is_terminal(self) -> bool:
        """True once the job will never run again."""
        return self in _TERMINAL


_TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})

ALLOWED_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset(
        {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.PREEMPTED}
    ),
    JobState.PREEMPTED: frozenset({JobState.PENDING, JobState.CANCELLED, JobState.FAILED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


class TransitionError(ValueError):
    """A job was asked to move between two states the state machine does not connect."""


def transition(current: JobState, target: JobState) -> JobState:
    """Return ``target`` if the state machine allows ``current -> target``; raise otherwise."""
    if target not in ALLOWED_TRANSITIONS[current]:
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[current])) or "none (terminal)"
        raise TransitionError(
            f"job state: cannot go from {current} to {target}; allowed: {allowed}"
        )
    return target


@dataclass(frozen=True, slots=True)
class Cluster:
    """The nodes the core may place on, in a fixed order (the order breaks ties)."""

    nodes: tuple[Node, ...]
    name: str = "cluster"
    flavors: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for node in self.nodes:
            if node.name in seen:
                raise SpecError("nodes", f"node name {node.name!r} appears twice")
            seen.add(node.name)
        if not self.flavors:
            object.__setattr__(self, "flavors", tuple(sorted({n.flavor for n in self.nodes})))

    @property
    def total_gpus(self) -> int:
        """Whole GPUs across all nodes."""
        return sum(n.gpus for n in self.nodes)
