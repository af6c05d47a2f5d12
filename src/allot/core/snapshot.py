"""The snapshot: free capacity per node and device, the running jobs, and the indexes that make
placement cheap.

Nomenclature
- node index ``i``: a node's position in ``Cluster.nodes``; all per-node arrays use it.
- ``dev_free[i][d]``: milli-GPU still free on device ``d`` of node ``i`` (0..1000).
- ``dev_mem_free[i][d]``: GPU memory (MiB) still free on device ``d`` of node ``i``, for nodes
  that track it (``Node.gpu_memory_mib`` > 0); a task takes its ``gpu_memory_mib`` on each
  device it holds.
- whole-free count: devices of a node with all 1000 milli free.
- bucket: for each flavor, ``buckets[k]`` is the set of schedulable nodes with exactly ``k``
  whole free devices, stored as a bitset (bit ``i`` set for node ``i``), so "which nodes can
  take k GPUs of flavor F" is a walk over at most ``max GPUs per node`` buckets, and a walk
  inside a bucket goes in node order. Partial buckets hold nodes with a partly used device,
  keyed by the largest partial free amount in tenths of a GPU, for fractional best fit.
- node state (with a packer only): ``state_of[i]`` is node ``i``'s capacity and free amounts
  (CPU, memory, and per device milli-GPU with GPU memory, sorted), and ``by_state[flavor]``
  maps each state to the bitset of up nodes in it, so a packer scores each distinct state
  once, not each node.
- what-if edit: every change (``start``, ``finish``, ``set_node_state``, ``adjust``) returns an
  ``Undo`` that restores exactly the previous state. Nothing is deep-copied on the hot path.

Invariants
- No device (milli-GPU or tracked GPU memory), CPU or memory amount ever goes below zero or
  above the node's capacity: an edit
  that would break this raises ``OverAllocationError`` and changes nothing.
- Only nodes in state ``up`` appear in the buckets; drained and down nodes keep their running
  jobs but take nothing new.
- Walks go in node order whatever the history of edits, so an edit followed by its undo leaves
  every later decision unchanged: ties always go to the lowest node index.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from allot.core.checks import AdmissionCheck, default_checks
from allot.core.model import (
    MILLI_PER_GPU,
    Cluster,
    JobId,
    Node,
    NodeState,
    Resources,
    RunningJob,
    TaskPlacement,
)
from allot.core.quota import request_of
from allot.core.quota.config import QuotaConfig
from allot.core.quota.fair_share import UsageHistory
from allot.core.quota.tree import QuotaTree

if TYPE_CHECKING:
    from allot.core.placement.packing import Packer

Undo = Callable[[], None]
# (GPUs, CPU capacity, GPU memory per device, free CPU, free memory, sorted (free milli-GPU,
# free GPU memory) per device)
NodeKey = tuple[int, int, int, int, int, tuple[tuple[int, int], ...]]
PARTIAL_BUCKETS = 10  # tenths of a GPU


def nodes_in(bits: int) -> Iterator[int]:
    """The node indices in bitset ``bits``, lowest first."""
    while bits:
        low = bits & -bits
        yield low.bit_length() - 1
        bits ^= low


def _running_hash(job: RunningJob) -> int:
    """A running job (the object, which never changes, and what a victim list reads), hashed."""
    spec = job.spec
    return hash((id(job), id(spec), spec.id, spec.priority, spec.queue, job.start_time,
                 job.stopping_until, job.flavor, job.attained_service))  # fmt: skip


class OverAllocationError(ValueError):
    """An edit would put a node past its capacity or below zero; nothing was changed."""


def _noop() -> None:
    return None


class Snapshot:
    """Free capacity and running jobs of one cluster, with what-if edits that return an undo."""

    def __init__(
        self,
        cluster: Cluster,
        running: Iterable[RunningJob] = (),
        *,
        quotas: QuotaConfig | None = None,
        history: UsageHistory | None = None,
        attained: dict[JobId, float] | None = None,
        checks: Sequence[AdmissionCheck] | None = None,
        packing: Packer | None = None,
        speed_norms: dict[str, float] | None = None,
    ) -> None:
        self.cluster = cluster
        # Mean workload speed per flavor, for throughput-aware placement
        # (``allot.core.placement.throughput``); None: flavor-blind.
        self.speed_norms = speed_norms
        # Milli-GPU per flavor kept for waiting jobs that gain most there (the driver sets it
        # each cycle: ``allot.core.placement.throughput.reserve_by_flavor``).
        self.speed_reserve: dict[str, int] = {}
        # How single-task jobs are packed (``allot.core.placement.packing``); None: best fit
        # by the bucket walk, flavor by flavor.
        self.packing: Packer | None = packing
        # Quota usage per queue and cohort (None: no quotas are enforced).
        self.quota: QuotaTree | None = None if quotas is None else QuotaTree(quotas)
        # The admission checks every pending job passes before placement (quota by default).
        self.checks: tuple[AdmissionCheck, ...] = (
            default_checks(quotas is not None) if checks is None else tuple(checks)
        )
        # Decayed usage per tenant and user, as the driver last advanced it.
        self.history = history or UsageHistory()
        # GPU-seconds pending jobs received in earlier runs (for least-attained-service order).
        self.attained: dict[JobId, float] = attained if attained is not None else {}
        # Pending jobs that preempted others: they go first once their victims are gone, so the
        # room they paid for is not taken by someone else (the driver keeps this set).
        self.nominated: set[JobId] = set()
        # GPUs held now per tenant and per (tenant, user), in milli-GPU.
        self.tenant_gpu_milli: dict[str, int] = {}
        self.user_gpu_milli: dict[tuple[str, str], int] = {}
        # Running jobs per tenant (a budget sums what they cost).
        self.tenant_jobs: dict[str, set[JobId]] = {}
        self.nodes: tuple[Node, ...] = cluster.nodes
        self.node_index: dict[str, int] = {n.name: i for i, n in enumerate(self.nodes)}
        self.flavor_of: list[str] = [n.flavor for n in self.nodes]
        self.state: list[NodeState] = [n.state for n in self.nodes]
        self.dev_free: list[list[int]] = [[MILLI_PER_GPU] * n.gpus for n in self.nodes]
        self.dev_mem_free: list[list[int]] = [[n.gpu_memory_mib] * n.gpus for n in self.nodes]
        self.whole_free: list[int] = [n.gpus for n in self.nodes]
        self.partial_key: list[int] = [-1] * len(self.nodes)
        self.cpu_free: list[int] = [n.cpu_milli for n in self.nodes]
        self.mem_free: list[int] = [n.memory_mib for n in self.nodes]
        self.flavors: tuple[str, ...] = cluster.flavors
        self.max_gpus: dict[str, int] = dict.fromkeys(self.flavors, 0)
        for n in self.nodes:
            self.max_gpus[n.flavor] = max(self.max_gpus[n.flavor], n.gpus)
        self.buckets: dict[str, list[int]] = {f: [0] * (self.max_gpus[f] + 1) for f in self.flavors}
        self.partial: dict[str, list[int]] = {f: [0] * PARTIAL_BUCKETS for f in self.flavors}
        self.free_gpu_milli: dict[str, int] = dict.fromkeys(self.flavors, 0)
        self.allocated_gpu_milli = 0
        self.running: dict[JobId, RunningJob] = {}
        self.stopping: set[JobId] = set()  # running jobs that were preempted and are stopping
        # Running jobs' (expected end, id), sorted when read (``ends``: backfill walks it in
        # order); edits are noted and applied at the next read, so a start undone before
        # anyone reads costs nothing.
        self._ends: list[tuple[float, JobId]] = []
        self._ends_in: set[tuple[float, JobId]] = set()
        self._ends_out: set[tuple[float, JobId]] = set()
        # Facts derived from node capacities and states only (e.g. "can this shape ever fit");
        # cleared whenever a node changes state, so they survive across scheduling cycles.
        self.memo: dict[object, object] = {}
        self.screened: dict[object, object] = {}
        # The pending jobs' order and decision keys per policy, kept from one cycle to the next
        # (``allot.core.pending_index``); it follows the jobs passed in, not the nodes.
        self.pending_index: dict[object, object] = {}
        # The sum of every running job's ``_running_hash``: equal sums, the same running jobs
        # (as far as a victim list reads them), so a list built for them may be reused
        # (``allot.core.preemption.candidates``, which keeps its lists here).
        self.running_sig = 0
        self.victim_lists: dict[object, object] = {}
        # flavor -> [(pool, bitset of its nodes)], only for flavors whose nodes span pools.
        self.pools: dict[str, list[tuple[str, int]]] = {}
        by_pool: dict[str, dict[str, int]] = {}
        for i, node in enumerate(self.nodes):
            masks = by_pool.setdefault(node.flavor, {})
            masks[node.pool] = masks.get(node.pool, 0) | 1 << i
        for flavor, masks in by_pool.items():
            if len(masks) > 1:
                self.pools[flavor] = sorted(masks.items())
        for i, node in enumerate(self.nodes):
            if node.state is NodeState.UP:
                self.buckets[node.flavor][node.gpus] |= 1 << i
                self.free_gpu_milli[node.flavor] += node.gpus * MILLI_PER_GPU
        # Nodes grouped by state, kept only when a packer will read them (set at construction).
        self.by_state: dict[str, dict[NodeKey, int]] | None = None
        self.state_of: list[NodeKey] = []
        if packing is not None:
            self.by_state = {f: {} for f in self.flavors}
            self.state_of = [self._state(i) for i in range(len(self.nodes))]
            for i in range(len(self.nodes)):
                if self.state[i] is NodeState.UP:
                    group = self.by_state[self.flavor_of[i]]
                    group[self.state_of[i]] = group.get(self.state_of[i], 0) | 1 << i
        for job in running:
            self.start(job)

    # ------------------------------------------------------------------ queries

    def schedulable(self, i: int) -> bool:
        """True when node ``i`` takes new work."""
        return self.state[i] is NodeState.UP

    def largest_free_block(self, flavor: str) -> int:
        """The most whole GPUs free on one schedulable node of ``flavor``."""
        buckets = self.buckets.get(flavor)
        if buckets is None:
            return 0
        for k in range(len(buckets) - 1, 0, -1):
            if buckets[k]:
                return k
        return 0

    def tasks_that_fit(self, flavor: str, gpus_per_task: int) -> int:
        """How many tasks of ``gpus_per_task`` whole GPUs the free devices of ``flavor`` could
        take at once, counting GPUs only."""
        buckets = self.buckets.get(flavor)
        if buckets is None or gpus_per_task <= 0:
            return 0
        return sum(b.bit_count() * (k // gpus_per_task) for k, b in enumerate(buckets) if k)

    # ------------------------------------------------------------------ edits

    def start(self, job: RunningJob) -> Undo:
        """Record ``job`` as running and take its resources."""
        if job.spec.id in self.running:
            raise OverAllocationError(f"job {job.spec.id} is already running")
        self._apply(job.spec.tasks, job.placement, -1)
        job_id = job.spec.id
        end = (job.expected_end, job_id)
        self.running[job_id] = job
        self._end_in(end)
        self._count(job, +1)

        def undo() -> None:
            del self.running[job_id]
            self._end_out(end)
            self._count(job, -1)
            self._apply(job.spec.tasks, job.placement, +1)

        return undo

    def finish(self, job_id: JobId) -> Undo:
        """Forget running job ``job_id`` and free its resources (also the what-if removal used by
        reservations and preemption search)."""
        job = self.running.pop(job_id)
        end = (job.expected_end, job_id)
        self._end_out(end)
        self._apply(job.spec.tasks, job.placement, +1)
        self._count(job, -1)

        def undo() -> None:
            self._apply(job.spec.tasks, job.placement, -1)
            self.running[job_id] = job
            self._end_in(end)
            self._count(job, +1)

        return undo

    def mark_stopping(self, job_id: JobId, until: float) -> Undo:
        """Record that running job ``job_id`` was preempted and stops by ``until``; it keeps
        its resources until then."""
        old = self.running[job_id]
        new = replace(old, stopping_until=until)
        old_end, new_end = (old.expected_end, job_id), (new.expected_end, job_id)
        self._end_out(old_end)
        self._end_in(new_end)
        self.running[job_id] = new
        self.stopping.add(job_id)
        change = _running_hash(new) - _running_hash(old)
        self.running_sig += change

        def undo() -> None:
            self._end_out(new_end)
            self._end_in(old_end)
            self.running[job_id] = old
            self.running_sig -= change
            if old.stopping_until is None:
                self.stopping.discard(job_id)

        return undo

    @property
    def ends(self) -> list[tuple[float, JobId]]:
        """(expected end, job id) of every running job, soonest first (do not change it)."""
        added, removed, ends = self._ends_in, self._ends_out, self._ends
        if len(added) + len(removed) <= 16:
            for end in removed:
                del ends[bisect_left(ends, end)]
            for end in added:
                insort(ends, end)
        elif added or removed:
            # Many edits: one pass and one sort of two sorted runs, both linear.
            if removed:
                ends[:] = [end for end in ends if end not in removed]
            ends.extend(sorted(added))
            ends.sort()
        added.clear()
        removed.clear()
        return ends

    def _end_in(self, end: tuple[float, JobId]) -> None:
        if end in self._ends_out:
            self._ends_out.discard(end)
        else:
            self._ends_in.add(end)

    def _end_out(self, end: tuple[float, JobId]) -> None:
        if end in self._ends_in:
            self._ends_in.discard(end)
        else:
            self._ends_out.add(end)

    def _count(self, job: RunningJob, sign: int) -> None:
        """Keep the per-tenant, per-user and quota tallies in step with running jobs."""
        spec = job.spec
        self.running_sig += sign * _running_hash(job)
        if job.stopping_until is not None:
            if sign > 0:
                self.stopping.add(spec.id)
            else:
                self.stopping.discard(spec.id)
        gpu = spec.total.gpu_milli * sign
        self.allocated_gpu_milli += gpu
        self.tenant_gpu_milli[spec.tenant] = self.tenant_gpu_milli.get(spec.tenant, 0) + gpu
        user = (spec.tenant, spec.user)
        self.user_gpu_milli[user] = self.user_gpu_milli.get(user, 0) + gpu
        if sign > 0:
            self.tenant_jobs.setdefault(spec.tenant, set()).add(spec.id)
        else:
            self.tenant_jobs[spec.tenant].discard(spec.id)
        if self.quota is not None:
            request = request_of(spec, job.flavor)
            if sign > 0:
                self.quota.add(spec.queue, request)
            else:
                self.quota.remove(spec.queue, request)

    def adjust(
        self,
        i: int,
        devices: dict[int, int],
        cpu_milli: int,
        memory_mib: int,
        device_memory: dict[int, int] | None = None,
    ) -> Undo:
        """Take (positive) or give back (negative) raw amounts on node ``i``: used for capacity
        held for a reservation, which belongs to no running job, and for a gang's tasks while
        the rest are placed. ``device_memory`` is GPU memory (MiB) per device."""
        self._adjust(i, devices, cpu_milli, memory_mib, -1, device_memory)
        return lambda: self._adjust(i, devices, cpu_milli, memory_mib, +1, device_memory)

    def device_fits(self, i: int, d: int, milli: int, gpu_memory_mib: int) -> bool:
        """True when device ``d`` of node ``i`` has ``milli`` and ``gpu_memory_mib`` free
        (memory counts only on nodes that track it)."""
        if self.dev_free[i][d] < milli:
            return False
        return not self.nodes[i].gpu_memory_mib or self.dev_mem_free[i][d] >= gpu_memory_mib

    def set_node_state(self, name: str, state: NodeState) -> Undo:
        """Change a node's state; only ``up`` nodes take new work."""
        i = self.node_index[name]
        old = self.state[i]
        if old is state:
            return _noop
        self._unindex(i)
        self.state[i] = state
        self._index(i)
        self.memo.clear()
        self.screened.clear()

        def undo() -> None:
            self._unindex(i)
            self.state[i] = old
            self._index(i)
            self.memo.clear()
            self.screened.clear()

        return undo

    # ------------------------------------------------------------------ internals

    def _apply(
        self, tasks: Sequence[Resources], placement: Sequence[TaskPlacement], sign: int
    ) -> None:
        """Give back (sign=+1) or take (sign=-1) what ``placement`` holds, node by node."""
        if len(tasks) != len(placement):
            raise OverAllocationError(
                f"placement has {len(placement)} task(s) but the job has {len(tasks)}"
            )
        if len(placement) == 1:
            # One task, one node: nothing to group, nothing to roll back.
            task, where = tasks[0], placement[0]
            i = self.node_index.get(where.node)
            if i is None:
                raise OverAllocationError(f"placement names unknown node {where.node!r}")
            milli = where.gpu_milli_per_device
            devices = dict.fromkeys(where.devices, milli)
            if len(devices) != len(where.devices):
                devices = {}
                for d in where.devices:
                    devices[d] = devices.get(d, 0) + milli
            memory = dict.fromkeys(devices, task.gpu_memory_mib) if task.gpu_memory_mib else None
            if memory is not None and len(devices) != len(where.devices):
                memory = {d: task.gpu_memory_mib * where.devices.count(d) for d in devices}
            self._adjust(i, devices, task.cpu_milli, task.memory_mib, sign, memory)
            return
        per_node: dict[int, tuple[dict[int, int], list[int], dict[int, int]]] = {}
        for task, where in zip(tasks, placement, strict=True):
            i = self.node_index.get(where.node)
            if i is None:
                raise OverAllocationError(f"placement names unknown node {where.node!r}")
            devices, cpu_mem, dev_mem = per_node.setdefault(i, ({}, [0, 0], {}))
            for d in where.devices:
                devices[d] = devices.get(d, 0) + where.gpu_milli_per_device
                if task.gpu_memory_mib:
                    dev_mem[d] = dev_mem.get(d, 0) + task.gpu_memory_mib
            cpu_mem[0] += task.cpu_milli
            cpu_mem[1] += task.memory_mib
        done: list[tuple[int, dict[int, int], list[int], dict[int, int]]] = []
        try:
            for i, (devices, cpu_mem, dev_mem) in per_node.items():
                self._adjust(i, devices, cpu_mem[0], cpu_mem[1], sign, dev_mem)
                done.append((i, devices, cpu_mem, dev_mem))
        except OverAllocationError:
            for i, devices, cpu_mem, dev_mem in done:
                self._adjust(i, devices, cpu_mem[0], cpu_mem[1], -sign, dev_mem)
            raise

    def _adjust(
        self,
        i: int,
        devices: dict[int, int],
        cpu: int,
        mem: int,
        sign: int,
        dev_mem: dict[int, int] | None = None,
    ) -> None:
        node = self.nodes[i]
        dev_free = self.dev_free[i]
        new_cpu = self.cpu_free[i] + sign * cpu
        new_mem = self.mem_free[i] + sign * mem
        if not (0 <= new_cpu <= node.cpu_milli and 0 <= new_mem <= node.memory_mib):
            raise OverAllocationError(
                f"node {node.name}: CPU or memory would leave its range "
                f"(cpu {new_cpu}/{node.cpu_milli} milli, memory {new_mem}/{node.memory_mib} MiB)"
            )
        for d, amount in devices.items():
            if not 0 <= d < node.gpus:
                raise OverAllocationError(f"node {node.name} has no device {d}")
            if not 0 <= dev_free[d] + sign * amount <= MILLI_PER_GPU:
                raise OverAllocationError(
                    f"node {node.name} device {d}: {dev_free[d]} milli free, "
                    f"cannot {'take' if sign < 0 else 'give back'} {amount}"
                )
        # GPU memory is bounded only where the node tracks it.
        track = bool(dev_mem) and node.gpu_memory_mib > 0
        if track:
            assert dev_mem is not None
            mem_free = self.dev_mem_free[i]
            for d, amount in dev_mem.items():
                if not 0 <= d < node.gpus:
                    raise OverAllocationError(f"node {node.name} has no device {d}")
                if not 0 <= mem_free[d] + sign * amount <= node.gpu_memory_mib:
                    raise OverAllocationError(
                        f"node {node.name} device {d}: {mem_free[d]} MiB of GPU memory free, "
                        f"cannot {'take' if sign < 0 else 'give back'} {amount}"
                    )
            for d, amount in dev_mem.items():
                mem_free[d] += sign * amount
        up = self.state[i] is NodeState.UP
        if up and self.by_state is not None:
            self._unindex(i)
        gpu_delta = 0
        for d, amount in devices.items():
            dev_free[d] += sign * amount
            gpu_delta += sign * amount
        self.cpu_free[i] = new_cpu
        self.mem_free[i] = new_mem
        old_whole, old_partial = self.whole_free[i], self.partial_key[i]
        whole = self.whole_free[i] = dev_free.count(MILLI_PER_GPU)
        partial = [f for f in dev_free if 0 < f < MILLI_PER_GPU]
        key = self.partial_key[i] = (
            max(partial) * PARTIAL_BUCKETS // MILLI_PER_GPU if partial else -1
        )
        if self.by_state is not None:
            if up:
                self._index(i)
            else:
                self.state_of[i] = self._state(i)
        elif up:
            # The node's bit moves only between the buckets that changed.
            flavor, bit = self.flavor_of[i], 1 << i
            if whole != old_whole:
                buckets = self.buckets[flavor]
                buckets[old_whole] &= ~bit
                buckets[whole] |= bit
            if key != old_partial:
                partials = self.partial[flavor]
                if old_partial >= 0:
                    partials[old_partial] &= ~bit
                if key >= 0:
                    partials[key] |= bit
            self.free_gpu_milli[flavor] += gpu_delta

    def _state(self, i: int) -> NodeKey:
        node = self.nodes[i]
        return (
            node.gpus,
            node.cpu_milli,
            node.gpu_memory_mib,
            self.cpu_free[i],
            self.mem_free[i],
            tuple(sorted(zip(self.dev_free[i], self.dev_mem_free[i], strict=True))),
        )

    def _index(self, i: int) -> None:
        if self.state[i] is not NodeState.UP:
            return
        flavor = self.flavor_of[i]
        if self.by_state is not None:
            key = self.state_of[i] = self._state(i)
            group = self.by_state[flavor]
            group[key] = group.get(key, 0) | 1 << i
        self.buckets[flavor][self.whole_free[i]] |= 1 << i
        if self.partial_key[i] >= 0:
            self.partial[flavor][self.partial_key[i]] |= 1 << i
        self.free_gpu_milli[flavor] += sum(self.dev_free[i])

    def _unindex(self, i: int) -> None:
        if self.state[i] is not NodeState.UP:
            return
        flavor = self.flavor_of[i]
        if self.by_state is not None:
            group = self.by_state[flavor]
            key = self.state_of[i]
            bits = group[key] & ~(1 << i)
            if bits:
                group[key] = bits
            else:
                del group[key]
        self.buckets[flavor][self.whole_free[i]] &= ~(1 << i)
        if self.partial_key[i] >= 0:
            self.partial[flavor][self.partial_key[i]] &= ~(1 << i)
        self.free_gpu_milli[flavor] -= sum(self.dev_free[i])
