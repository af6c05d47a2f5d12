"""Feasibility: can a node hold some tasks now, and could the cluster ever hold a job at all.

Two questions, both cheap:
- ``tasks_on_node``: how many tasks of one shape fit the free capacity of one node right now.
- ``capacity_fit``: how many tasks of a job's shapes the nodes of a flavor could hold if they
  were empty, over all nodes (``NEVER_FITS`` when even that is too few) and over schedulable
  nodes only (``NODES_UNAVAILABLE`` when only drained or down nodes would do). Nodes are grouped
  by capacity so this costs one pass over distinct node shapes, not over nodes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from allot.core.model import MILLI_PER_GPU, Node, NodeState, Resources


def node_capacity_tasks(gpus: int, cpu_milli: int, memory_mib: int, task: Resources) -> int:
    """How many tasks of shape ``task`` a node with these free amounts holds (whole devices,
    one fractional task per device at most when it needs more than half a device)."""
    if task.gpu_milli >= MILLI_PER_GPU:
        by_gpu = gpus // (task.gpu_milli // MILLI_PER_GPU)
    elif task.gpu_milli > 0:
        by_gpu = gpus * (MILLI_PER_GPU // task.gpu_milli)
    else:
        by_gpu = 1 << 30
    by_cpu = cpu_milli // task.cpu_milli if task.cpu_milli else 1 << 30
    by_mem = memory_mib // task.memory_mib if task.memory_mib else 1 << 30
    return min(by_gpu, by_cpu, by_mem)


def tasks_on_node(
    whole_free: int, cpu_free: int, mem_free: int, task: Resources, limit: int
) -> int:
    """How many whole-GPU tasks of shape ``task`` fit these free amounts, at most ``limit``."""
    g = task.gpu_milli // MILLI_PER_GPU
    n = min(limit, whole_free // g) if g else limit
    if task.cpu_milli:
        n = min(n, cpu_free // task.cpu_milli)
    if task.memory_mib:
        n = min(n, mem_free // task.memory_mib)
    return n


@dataclass(frozen=True, slots=True)
class FlavorCapacity:
    """The node shapes of one flavor with their counts: all nodes, and schedulable ones."""

    all_nodes: tuple[tuple[tuple[int, int, int], int], ...]
    schedulable: tuple[tuple[tuple[int, int, int], int], ...]
    largest_node_gpus: int
    largest_node_cpu_milli: int
    largest_node_memory_mib: int

    @classmethod
    def of(cls, nodes: Iterable[Node], states: Iterable[NodeState]) -> FlavorCapacity:
        """Summarise ``nodes`` (all of one flavor) with their current ``states``."""
        every: Counter[tuple[int, int, int]] = Counter()
        up: Counter[tuple[int, int, int]] = Counter()
        for node, state in zip(nodes, states, strict=True):
            shape = (node.gpus, node.cpu_milli, node.memory_mib)
            every[shape] += 1
            if state is NodeState.UP:
                up[shape] += 1
        shapes = list(every)
        return cls(
            tuple(sorted(every.items())),
            tuple(sorted(up.items())),
            max((s[0] for s in shapes), default=0),
            max((s[1] for s in shapes), default=0),
            max((s[2] for s in shapes), default=0),
        )

    def holds(self, tasks: Iterable[tuple[Resources, int]], *, schedulable_only: bool) -> bool:
        """True when, for every task shape, the (empty) nodes could hold that many tasks.

        Exact for single-shape jobs, which are nearly all; for mixed shapes it is a necessary
        condition, checked shape by shape.
        """
        shapes = self.schedulable if schedulable_only else self.all_nodes
        for task, count in tasks:
            room = 0
            for (gpus, cpu, mem), n in shapes:
                room += n * node_capacity_tasks(gpus, cpu, mem, task)
                if room >= count:
                    break
            if room < count:
                return False
        return True
