"""Select: choose a node and devices for every task of a job on one flavor, or nothing.

Rules (a gang's tasks start together or not at all):
1. Tasks are grouped by shape; larger whole-GPU shapes are placed first, then shares of a GPU,
   then CPU-only tasks. A task never spans nodes.
2. Whole-GPU group of ``n`` tasks x ``g`` GPUs: if one node can take all remaining tasks, take
   the best-fitting such node; otherwise take the node that holds the most of them (fewest
   nodes for the gang) and repeat. For a single task this is plain best fit.
3. A share of a GPU goes to the partly used device with the least room that still suffices,
   else to a whole free device on the node with the fewest whole free devices.
4. Devices on a node are taken lowest index first.
5. A gang never spans node pools (each pool is run by its own executor).

The snapshot is edited while a gang is being placed (so later tasks see earlier ones) and
restored before returning: ``choose_placement`` has no lasting effect.
"""

from __future__ import annotations

from collections.abc import Sequence

from allot.core.model import MILLI_PER_GPU, JobSpec, Resources, TaskPlacement
from allot.core.placement.feasibility import tasks_on_node
from allot.core.placement.rank import (
    ALL_NODES,
    best_device,
    cpu_only_candidates,
    fractional_candidates,
    largest_first,
    smallest_sufficient,
)
from allot.core.snapshot import Snapshot, Undo


def _groups(tasks: Sequence[Resources]) -> list[tuple[Resources, list[int]]]:
    by_shape: dict[Resources, list[int]] = {}
    for index, task in enumerate(tasks):
        by_shape.setdefault(task, []).append(index)
    return sorted(
        by_shape.items(),
        key=lambda item: (
            -(item[0].gpu_milli // MILLI_PER_GPU),
            -item[0].gpu_milli,
            -item[0].cpu_milli,
            -item[0].memory_mib,
        ),
    )


class _Chooser:
    """One placement attempt: picks nodes task group by task group, undoing its edits after."""

    def __init__(self, snap: Snapshot, flavor: str, total_tasks: int, mask: int) -> None:
        self.snap = snap
        self.flavor = flavor
        self.mask = mask
        self.remaining_tasks = total_tasks
        self.undos: list[Undo] = []
        self.placed: dict[int, TaskPlacement] = {}

    def take(self, i: int, devices: dict[int, int], task: Resources, n: int) -> None:
        """Hold ``n`` tasks on node ``i`` while the rest of the job is placed."""
        self.remaining_tasks -= n
        if self.remaining_tasks > 0:
            self.undos.append(self.snap.adjust(i, devices, task.cpu_milli * n, task.memory_mib * n))

    def restore(self) -> None:
        for undo in reversed(self.undos):
            undo()
        self.undos.clear()

    def whole_group(self, task: Resources, indices: list[int]) -> bool:
        snap = self.snap
        g = task.gpu_milli // MILLI_PER_GPU
        remaining = len(indices)
        while remaining:
            choice = -1
            count = 0
            for i in smallest_sufficient(snap, self.flavor, remaining * g, self.mask):
                if (
                    tasks_on_node(
                        snap.whole_free[i], snap.cpu_free[i], snap.mem_free[i], task, remaining
                    )
                    == remaining
                ):
                    choice, count = i, remaining
                    break
            if choice < 0:
                for i in largest_first(snap, self.flavor, g, self.mask):
                    if snap.whole_free[i] // g <= count:
                        break  # nodes further down hold fewer tasks than the best so far
                    n = tasks_on_node(
                        snap.whole_free[i], snap.cpu_free[i], snap.mem_free[i], task, remaining
                    )
                    if n > count:
                        choice, count = i, n
            if choice < 0:
                return False
            free = [d for d, f in enumerate(snap.dev_free[choice]) if f == MILLI_PER_GPU]
            name = snap.nodes[choice].name
            for t in range(count):
                devices = tuple(free[t * g : (t + 1) * g])
                self.placed[indices[len(indices) - remaining + t]] = TaskPlacement(
                    name, devices, MILLI_PER_GPU
                )
            self.take(choice, dict.fromkeys(free[: count * g], MILLI_PER_GPU), task, count)
            remaining -= count
        return True

    def fractional_task(self, task: Resources, index: int) -> bool:
        snap = self.snap
        for i in fractional_candidates(snap, self.flavor, task.gpu_milli, self.mask):
            if snap.cpu_free[i] < task.cpu_milli or snap.mem_free[i] < task.memory_mib:
                continue
            d = best_device(snap.dev_free[i], task.gpu_milli)
            if d is None:
                continue
            self.placed[index] = TaskPlacement(snap.nodes[i].name, (d,), task.gpu_milli)
            self.take(i, {d: task.gpu_milli}, task, 1)
            return True
        return False

    def cpu_task(self, task: Resources, index: int) -> bool:
        snap = self.snap
        for i in cpu_only_candidates(snap, self.flavor, self.mask):
            if snap.cpu_free[i] >= task.cpu_milli and snap.mem_free[i] >= task.memory_mib:
                self.placed[index] = TaskPlacement(snap.nodes[i].name)
                self.take(i, {}, task, 1)
                return True
        return False


def choose_placement(
    snap: Snapshot, spec: JobSpec, flavor: str
) -> tuple[TaskPlacement, ...] | None:
    """A placement for every task of ``spec`` on nodes of ``flavor``, in task order, or None
    when the free capacity cannot hold the whole job now. A gang stays within one node pool
    (pools tried in name order). Leaves ``snap`` unchanged."""
    if flavor not in snap.buckets:
        return None
    pools = snap.pools.get(flavor) if len(spec.tasks) > 1 else None
    if not pools:
        return _place(snap, spec, flavor, ALL_NODES)
    for _, mask in pools:
        placement = _place(snap, spec, flavor, mask)
        if placement is not None:
            return placement
    return None


def _place(
    snap: Snapshot, spec: JobSpec, flavor: str, mask: int
) -> tuple[TaskPlacement, ...] | None:
    chooser = _Chooser(snap, flavor, len(spec.tasks), mask)
    try:
        for task, indices in _groups(spec.tasks):
            if task.gpu_milli >= MILLI_PER_GPU:
                ok = chooser.whole_group(task, indices)
            elif task.gpu_milli > 0:
                ok = all(chooser.fractional_task(task, i) for i in indices)
            else:
                ok = all(chooser.cpu_task(task, i) for i in indices)
            if not ok:
                return None
        return tuple(chooser.placed[i] for i in range(len(spec.tasks)))
    finally:
        chooser.restore()
