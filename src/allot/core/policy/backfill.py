"""EASY backfill: the head job's reservation (shadow time) and the capacity held for it.

Source: Lifka, "The ANL/IBM SP scheduling system" (1995); Mu'alem & Feitelson, "Utilization,
predictability, workloads, and user runtime estimates in scheduling the IBM SP2 with
backfilling" (IEEE TPDS 2001). Slurm's sched/backfill plugin follows the same idea.

1. Shadow time ``T``: walk the running jobs in order of expected end (estimate, else time
   limit; a job past its estimate is taken to end now) and find the first time at which the
   head fits. For a head whose tasks all share one whole-GPU shape this is a cheap count per
   touched node; otherwise the releases are applied to the snapshot and placement is tried.
2. The head's placement at ``T`` names nodes and devices. For each, the hold is what the head
   needs there beyond what running jobs release by ``T``:
   ``hold(d) = max(0, need(d) - released_by_T(d))`` (and likewise for CPU and memory).
3. A later job expected to end by ``T`` may use anything free. A longer one (or one with no
   estimate) is placed with the hold engaged, i.e. on ``free - min(hold, free)``, so at ``T``
   the head still finds ``free_now + released_by_T - long_use >= need`` on every held device.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from allot.core.model import MILLI_PER_GPU, JobSpec, RunningJob, TaskPlacement
from allot.core.placement.feasibility import tasks_on_node
from allot.core.placement.select import choose_placement
from allot.core.plan import Reservation
from allot.core.snapshot import Snapshot, Undo, nodes_in

INF = float("inf")

# (node index, milli-GPU per device, CPU milli, memory MiB)
HoldAmounts = tuple[int, dict[int, int], int, int]


def release_order(snap: Snapshot, now: float) -> Iterator[tuple[float, RunningJob]]:
    """Running jobs with their expected end (never before ``now``), earliest first."""
    running = snap.running
    for end, job_id in snap.ends:
        yield (end if end > now else now), running[job_id]


def _single_whole_shape(spec: JobSpec) -> bool:
    first = spec.tasks[0]
    return first.gpu_milli >= MILLI_PER_GPU and all(t == first for t in spec.tasks)


def _shadow_by_count(
    snap: Snapshot, spec: JobSpec, flavor: str, releases: Iterable[tuple[float, RunningJob]]
) -> tuple[float, set[int], set[int]] | None:
    """Earliest time the whole-GPU gang ``spec`` fits on ``flavor``, the nodes that can then
    hold some of its tasks, and the nodes where capacity was released by then; counts free
    devices per node without touching the snapshot."""
    task, count = spec.tasks[0], len(spec.tasks)
    g = task.gpu_milli // MILLI_PER_GPU
    contribution: dict[int, int] = {}
    buckets = snap.buckets[flavor]
    for k in range(g, len(buckets)):
        for i in nodes_in(buckets[k]):
            n = tasks_on_node(k, snap.cpu_free[i], snap.mem_free[i], task, count)
            if n:
                contribution[i] = n
    fit = sum(contribution.values())
    light: dict[int, tuple[list[int], list[int]]] = {}
    index = snap.node_index
    found_at: float | None = None
    for end, job in releases:
        if found_at is not None and end > found_at:
            break  # every job ending at the shadow time is counted, none after it
        if end == INF:
            return None
        if job.flavor != flavor:
            continue
        for task_spec, where in zip(job.spec.tasks, job.placement, strict=True):
            i = index[where.node]
            if not snap.schedulable(i):
                continue
            state = light.get(i)
            if state is None:
                state = light[i] = (list(snap.dev_free[i]), [snap.cpu_free[i], snap.mem_free[i]])
            devices, cpu_mem = state
            for d in where.devices:
                devices[d] += where.gpu_milli_per_device
            cpu_mem[0] += task_spec.cpu_milli
            cpu_mem[1] += task_spec.memory_mib
            whole = sum(1 for f in devices if f == MILLI_PER_GPU)
            n = tasks_on_node(whole, cpu_mem[0], cpu_mem[1], task, count)
            fit += n - contribution.get(i, 0)
            contribution[i] = n
        if found_at is None and fit >= count:
            found_at = end
    if found_at is None:
        return None
    return found_at, {i for i, n in contribution.items() if n}, set(light)


@dataclass(slots=True)
class Shadow:
    """The head's reservation and the per-node amounts held for it."""

    reservation: Reservation
    holds: list[HoldAmounts]


def placement_need(
    snap: Snapshot, spec: JobSpec, placement: Sequence[TaskPlacement]
) -> list[HoldAmounts]:
    """What ``placement`` of ``spec`` takes, node by node: milli-GPU per device, CPU, memory."""
    need: dict[int, tuple[dict[int, int], list[int]]] = {}
    for task, where in zip(spec.tasks, placement, strict=True):
        i = snap.node_index[where.node]
        devices, cpu_mem = need.setdefault(i, ({}, [0, 0]))
        for d in where.devices:
            devices[d] = devices.get(d, 0) + where.gpu_milli_per_device
        cpu_mem[0] += task.cpu_milli
        cpu_mem[1] += task.memory_mib
    return [(i, devices, cpu, mem) for i, (devices, (cpu, mem)) in need.items()]


def hold_amounts(
    snap: Snapshot, need: Sequence[HoldAmounts], at_t: dict[int, tuple[list[int], int, int]]
) -> list[HoldAmounts]:
    """What must be held now so that ``need`` is free at a later time whose free capacity is
    ``at_t``: per device (and CPU, memory) ``max(0, need - (free_then - free_now))``; nodes
    with nothing to hold are left out."""
    holds: list[HoldAmounts] = []
    for i, devices, cpu, mem in need:
        dev_t, cpu_t, mem_t = at_t[i]
        dev_now = snap.dev_free[i]
        held = {
            d: amount - (dev_t[d] - dev_now[d])
            for d, amount in devices.items()
            if amount > dev_t[d] - dev_now[d]
        }
        hold_cpu = max(0, cpu - (cpu_t - snap.cpu_free[i]))
        hold_mem = max(0, mem - (mem_t - snap.mem_free[i]))
        if held or hold_cpu or hold_mem:
            holds.append((i, held, hold_cpu, hold_mem))
    return holds


def find_shadow(snap: Snapshot, spec: JobSpec, flavors: Sequence[str], now: float) -> Shadow | None:
    """The earliest reservation for ``spec`` over its accepted ``flavors`` (ties go to the
    preferred flavor), or None when no finite time works. Leaves ``snap`` unchanged."""
    best: tuple[float, str] | None = None
    nodes: set[int] | None = None
    touched: set[int] = set()
    if _single_whole_shape(spec):
        for flavor in flavors:
            found = _shadow_by_count(snap, spec, flavor, release_order(snap, now))
            if found is not None and (best is None or found[0] < best[0]):
                best, nodes, touched = (found[0], flavor), found[1], found[2]
    else:
        best = _shadow_by_trying(snap, spec, flavors, list(release_order(snap, now)))
    if best is None:
        return None
    at, flavor = best
    undos: list[Undo] = []
    try:
        released: list[int] = []
        for end, job in release_order(snap, now):
            if end > at:
                break
            if nodes is None or any(snap.node_index[p.node] in nodes for p in job.placement):
                released.append(job.spec.id)
        for job_id in released:
            undos.append(snap.finish(job_id))
        placement = None
        if nodes is not None and nodes - touched:
            placement = _place_on_released(snap, spec, flavor, nodes - touched)
        if placement is None:
            placement = choose_placement(snap, spec, flavor)
        if placement is None:  # pragma: no cover - the count above guarantees a fit
            return None
        used = {snap.node_index[p.node] for p in placement}
        at_t = {i: (list(snap.dev_free[i]), snap.cpu_free[i], snap.mem_free[i]) for i in used}
    finally:
        for undo in reversed(undos):
            undo()
    reservation = Reservation(spec.id, at, flavor, placement)
    return Shadow(reservation, hold_amounts(snap, placement_need(snap, spec, placement), at_t))


def _place_on_released(
    snap: Snapshot, spec: JobSpec, flavor: str, untouched: set[int]
) -> tuple[TaskPlacement, ...] | None:
    """The head's placement at its shadow time using only nodes where running jobs release
    capacity by then, if that is enough: then nothing free now has to be held, and backfill
    keeps every currently free device."""
    hidden: list[Undo] = []
    try:
        for i in untouched:
            free = {d: f for d, f in enumerate(snap.dev_free[i]) if f}
            hidden.append(snap.adjust(i, free, 0, 0))
        return choose_placement(snap, spec, flavor)
    finally:
        for undo in reversed(hidden):
            undo()


def _shadow_by_trying(
    snap: Snapshot,
    spec: JobSpec,
    flavors: Sequence[str],
    releases: Sequence[tuple[float, RunningJob]],
) -> tuple[float, str] | None:
    """The general search: apply releases batch by batch and try to place after each."""
    need = spec.total.gpu_milli
    undos: list[Undo] = []
    try:
        k = 0
        while k < len(releases):
            at = releases[k][0]
            if at == INF:
                return None
            while k < len(releases) and releases[k][0] == at:
                undos.append(snap.finish(releases[k][1].spec.id))
                k += 1
            for flavor in flavors:
                if snap.free_gpu_milli[flavor] < need:
                    continue
                if choose_placement(snap, spec, flavor) is not None:
                    return at, flavor
        return None
    finally:
        for undo in reversed(undos):
            undo()


class Hold:
    """Capacity held for the reservation, engaged while placing jobs that outlast it.

    Engaging takes ``min(hold, free)`` so it never over-allocates even after short jobs used
    some of the held capacity; releasing gives back exactly what was taken.
    """

    def __init__(self, snap: Snapshot, holds: list[HoldAmounts]) -> None:
        self.snap = snap
        self.holds = holds
        self._undos: list[Undo] = []

    @property
    def engaged(self) -> bool:
        """True while the held capacity is taken out of the snapshot."""
        return bool(self._undos)

    def engage(self) -> None:
        """Take the held capacity out of what later placements see."""
        if self._undos:
            return
        snap = self.snap
        for i, devices, cpu, mem in self.holds:
            dev_free = snap.dev_free[i]
            taken = {d: min(a, dev_free[d]) for d, a in devices.items() if dev_free[d]}
            self._undos.append(
                snap.adjust(i, taken, min(cpu, snap.cpu_free[i]), min(mem, snap.mem_free[i]))
            )
        if not self._undos:
            self._undos.append(lambda: None)

    def disengage(self) -> None:
        """Give the held capacity back."""
        for undo in reversed(self._undos):
            undo()
        self._undos.clear()
