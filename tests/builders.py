"""Fluent builders for readable test cases: ``job(7).gpus(8).tasks(2).estimate(3600).build()``.

Defaults are small and valid, so a test states only what it is about.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from allot.core.model import (
    MILLI_PER_CPU,
    MILLI_PER_GPU,
    Cluster,
    JobSpec,
    Node,
    NodeState,
    Resources,
)


@dataclass
class JobBuilder:
    """Builds a ``JobSpec``; every setter returns the builder."""

    spec: JobSpec

    def _set(self, **changes: object) -> JobBuilder:
        self.spec = replace(self.spec, **changes)  # type: ignore[arg-type]
        return self

    def gpus(self, per_task: float) -> JobBuilder:
        """GPUs per task (0.5 for half a device)."""
        task = self.spec.tasks[0]
        shape = Resources(round(per_task * MILLI_PER_GPU), task.cpu_milli, task.memory_mib)
        return self._set(tasks=(shape,) * len(self.spec.tasks))

    def cpus(self, per_task: float) -> JobBuilder:
        task = self.spec.tasks[0]
        shape = Resources(task.gpu_milli, round(per_task * MILLI_PER_CPU), task.memory_mib)
        return self._set(tasks=(shape,) * len(self.spec.tasks))

    def memory_mib(self, per_task: int) -> JobBuilder:
        task = self.spec.tasks[0]
        return self._set(
            tasks=(Resources(task.gpu_milli, task.cpu_milli, per_task),) * len(self.spec.tasks)
        )

    def tasks(self, count: int) -> JobBuilder:
        return self._set(tasks=(self.spec.tasks[0],) * count)

    def flavors(self, *names: str) -> JobBuilder:
        return self._set(flavors=names)

    def priority(self, value: int) -> JobBuilder:
        return self._set(priority=value)

    def queue(self, name: str) -> JobBuilder:
        return self._set(queue=name)

    def tenant(self, name: str) -> JobBuilder:
        return self._set(tenant=name)

    def submitted(self, at: float) -> JobBuilder:
        return self._set(submit_time=at)

    def estimate(self, seconds: float | None) -> JobBuilder:
        return self._set(runtime_estimate=seconds)

    def limit(self, seconds: float | None) -> JobBuilder:
        return self._set(time_limit=seconds)

    def build(self) -> JobSpec:
        return self.spec


def job(job_id: int) -> JobBuilder:
    """A one-task, one-GPU job submitted at t = job_id (so ids also give FIFO order)."""
    return JobBuilder(
        JobSpec(
            job_id,
            "team",
            "user",
            "default",
            (Resources(MILLI_PER_GPU, MILLI_PER_CPU, 1024),),
            submit_time=float(job_id),
        )
    )


@dataclass
class NodeBuilder:
    """Builds a ``Node``; every setter returns the builder."""

    name: str
    flavor_name: str = "H100"
    gpu_count: int = 8
    cpu_milli: int = 64 * MILLI_PER_CPU
    mem_mib: int = 512 * 1024
    path: tuple[str, ...] = field(default_factory=tuple)
    node_state: NodeState = NodeState.UP

    def flavor(self, name: str) -> NodeBuilder:
        self.flavor_name = name
        return self

    def gpus(self, count: int) -> NodeBuilder:
        self.gpu_count = count
        return self

    def cpus(self, count: float) -> NodeBuilder:
        self.cpu_milli = round(count * MILLI_PER_CPU)
        return self

    def memory_mib(self, mib: int) -> NodeBuilder:
        self.mem_mib = mib
        return self

    def topology(self, *path: str) -> NodeBuilder:
        self.path = path
        return self

    def state(self, value: NodeState) -> NodeBuilder:
        self.node_state = value
        return self

    def build(self) -> Node:
        return Node(
            self.name,
            self.flavor_name,
            self.gpu_count,
            self.cpu_milli,
            self.mem_mib,
            self.path,
            self.node_state,
        )


def node(name: str) -> NodeBuilder:
    """An 8-GPU H100 node with 64 CPUs and 512 GiB, up."""
    return NodeBuilder(name)


def cluster(*nodes: NodeBuilder | Node) -> Cluster:
    """A cluster of the given nodes, in order."""
    return Cluster(tuple(n.build() if isinstance(n, NodeBuilder) else n for n in nodes))


def nodes(count: int, prefix: str = "n", *, gpus: int = 8, flavor: str = "H100") -> list[Node]:
    """``count`` identical nodes named prefix0, prefix1, ..."""
    return [node(f"{prefix}{i}").gpus(gpus).flavor(flavor).build() for i in range(count)]
