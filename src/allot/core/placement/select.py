"""Select: choose a node and devices for every task of a job on one flavor, or nothing.

Rules (a gang's tasks start together or not at all):
1. Tasks are grouped by shape; larger whole-GPU shapes are placed first, then shares of a GPU,
   then CPU-only tasks. A task never spans nodes.
2. Whole-GPU group of ``n`` tasks x ``g`` GPUs: if one node can take all remaining tasks, take
   the best-fitting such node; otherwise take the node that holds the most of them (fewest
   nodes for the gang) and repeat. For a single task this is plain best fit.
3. A share of a GPU goes to the partly used device with the least room that still suffices,
   else to a whole free device on the node with the fewest whole free devices.
4. Devices on a node are taken lowest index first, within one NVLink domain when one domain
   has enough free devices (the domain with the fewest free devices that suffice, so larger
   free domains stay whole).
5. A gang never spans node pools (each pool is run by its own executor).
6. A task's GPU memory (per device) must fit each device it takes, on nodes that track it.
7. A gang with a colocation rule (``JobSpec.colocate``) is tried domain by domain first
   (``allot.core.placement.topology``); only a preferred rule falls back to any nodes.
8. With a packer on the snapshot (``allot.core.placement.packing``), a single-task job is
   placed by the packer's score over every node that can take it, across all the flavors it
   accepts equally (``choose_packed``).

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
from allot.core.placement.topology import candidate_domains
from allot.core.snapshot import Snapshot, Undo


def _groups(tasks: Sequence[Resources]) -> list[tuple[Resources, list[int]]]:
    if len(tasks) == 1:
        return [(tasks[0], [0])]
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
            memory = dict.fromkeys(devices, task.gpu_memory_mib) if task.gpu_memory_mib else None
            self.undos.append(
                self.snap.adjust(i, devices, task.cpu_milli * n, task.memory_mib * n, memory)
            )

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
                if not memory_holds(snap, i, task):
                    continue
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
                    if not memory_holds(snap, i, task):
                        continue
                    n = tasks_on_node(
                        snap.whole_free[i], snap.cpu_free[i], snap.mem_free[i], task, remaining
                    )
                    if n > count:
                        choice, count = i, n
            if choice < 0:
                return False
            free = whole_devices(snap, choice, g * count)
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
            if d is not None and not snap.device_fits(i, d, task.gpu_milli, task.gpu_memory_mib):
                d = _tightest_fitting(snap, i, task)
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


def memory_holds(snap: Snapshot, i: int, task: Resources) -> bool:
    """True when node ``i``'s devices are large enough for ``task``'s GPU memory (or the node
    does not track GPU memory)."""
    size = snap.nodes[i].gpu_memory_mib
    return not size or size >= task.gpu_memory_mib


def _tightest_fitting(snap: Snapshot, i: int, task: Resources) -> int | None:
    best: int | None = None
    for d, free in enumerate(snap.dev_free[i]):
        if snap.device_fits(i, d, task.gpu_milli, task.gpu_memory_mib) and (
            best is None or free < snap.dev_free[i][best]
        ):
            best = d
    return best


def whole_devices(snap: Snapshot, i: int, count: int) -> list[int]:
    """``count`` whole free devices of node ``i`` (there are at least that many), lowest index
    first: from one NVLink domain when one has enough, the one with the fewest free devices
    that suffice; else the lowest free devices."""
    free = [d for d, f in enumerate(snap.dev_free[i]) if f == MILLI_PER_GPU]
    domains = snap.nodes[i].nvlink
    if not domains or count <= 1:
        return free[:count]
    by_domain: dict[int, list[int]] = {}
    for d in free:
        by_domain.setdefault(domains[d], []).append(d)
    fitting = [ds for ds in by_domain.values() if len(ds) >= count]
    if fitting:
        return min(fitting, key=lambda ds: (len(ds), ds[0]))[:count]
    return free[:count]


def choose_packed(
    snap: Snapshot, spec: JobSpec, flavors: Sequence[str]
) -> tuple[str, tuple[TaskPlacement, ...]] | None:
    """Place a single-task job by ``snap.packing`` over the up nodes of ``flavors``; None
    when none can take it. Leaves ``snap`` unchanged."""
    packer = snap.packing
    assert packer is not None
    assert snap.by_state is not None
    task = spec.tasks[0]
    groups = [
        (flavor, key, bits)
        for flavor in flavors
        if flavor in snap.by_state
        for key, bits in snap.by_state[flavor].items()
    ]
    choice = packer.choose(snap, spec, task, groups)
    if choice is None:
        return None
    i, d = choice
    name = snap.nodes[i].name
    if d >= 0:
        where = TaskPlacement(name, (d,), task.gpu_milli)
    elif task.whole_gpus:
        where = TaskPlacement(name, tuple(whole_devices(snap, i, task.whole_gpus)), MILLI_PER_GPU)
    else:
        where = TaskPlacement(name)
    return snap.flavor_of[i], (where,)


def choose_placement(
    snap: Snapshot, spec: JobSpec, flavor: str
) -> tuple[TaskPlacement, ...] | None:
    """A placement for every task of ``spec`` on nodes of ``flavor``, in task order, or None
    when the free capacity cannot hold the whole job now. A gang stays within one node pool
    (pools tried in name order). Leaves ``snap`` unchanged."""
    if flavor not in snap.buckets:
        return None
    pools = snap.pools.get(flavor) if len(spec.tasks) > 1 else None
    masks = [mask for _, mask in pools] if pools else [ALL_NODES]
    if spec.colocate and len(spec.tasks) > 1:
        # Topology first: each domain (best fit first) within each pool.
        for domain in candidate_domains(snap, spec, flavor):
            for mask in masks:
                if domain & mask:
                    placement = _place(snap, spec, flavor, domain & mask)
                    if placement is not None:
                        return placement
        if spec.colocate_required:
            return None
    for mask in masks:
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
