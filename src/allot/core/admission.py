"""Admission of one job: the admission checks, then placement, flavor by flavor.

For each accepted flavor in order of preference (Kueue's flavor fungibility):
1. admission checks (``snap.checks``, ``allot.core.checks``): quota first (the job's request on
   that flavor must fit what its queue may still admit, borrowing included), then any other
   check configured (budgets, tenant rules, ...);
2. placement: the job must fit the free capacity of that flavor's nodes.
The first flavor passing both is used. A single-task job that accepts any flavor (or lists
flavors of equal standing) is placed jointly when the snapshot has a packer: the packer picks
the node across every flavor that passed the checks (within the best group by speed, with
throughput-aware placement), so a job takes the best node of the cluster, not the best node of
the first flavor in name order. While preemptors wait for their victims to stop, both
steps also respect what they hold (``allot.core.preemption.holds``): the quota must fit once
the stopping jobs have stopped and the holders have started too, and placement sees the free
capacity less their placement holds. An ``Attempt`` says which step stopped the others, so the
cycle can tell a check's block (e.g. the job's own queue is full) from a capacity block (the
cluster is full), which only the latter may hold a backfill reservation for, and from a job
that only a holder keeps out (it waits behind that preemptor).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from allot.core.checks import CheckBlock
from allot.core.model import MILLI_PER_GPU, JobSpec, RunningJob
from allot.core.placement.diagnose import accepted_flavors
from allot.core.placement.select import choose_packed, choose_placement
from allot.core.placement.throughput import advantage_groups
from allot.core.plan import Start
from allot.core.preemption.holds import PreemptorHolds
from allot.core.quota import request_of
from allot.core.quota.tree import QuotaBlock, Request
from allot.core.snapshot import Snapshot, Undo

PlacementKey = tuple[object, str]


def placement_key(spec: JobSpec, flavor: str) -> PlacementKey:
    """What a failed placement may be reused for within a cycle: the tasks (and the
    colocation rule, when the job has one) on one flavor."""
    if spec.colocate:
        return ((spec.shape[0], spec.colocate, spec.colocate_required), flavor)
    return (spec.shape[0], flavor)


@dataclass(slots=True)
class Attempt:
    """The outcome of trying to admit one job now."""

    start: Start | None = None
    blocked: CheckBlock | None = None  # set when an admission check stopped every flavor
    capacity_flavors: list[str] = field(default_factory=list)  # checks allowed, no room
    behind: int | None = None  # a waiting preemptor whose held room alone keeps it out
    # Flavors a check refused that preemption cannot lift (not quota): no victims there.
    refused: list[str] = field(default_factory=list)

    @property
    def quota_block(self) -> QuotaBlock | None:
        """The quota block, when quota is what stopped every flavor."""
        return None if self.blocked is None else self.blocked.quota


def gang_count_ok(snap: Snapshot, spec: JobSpec, flavor: str) -> bool:
    """A cheap necessary condition: enough free GPUs of ``flavor`` in total and, for a gang
    of one whole-GPU shape, enough nodes with room for its tasks."""
    if snap.free_gpu_milli[flavor] < spec.total.gpu_milli:
        return False
    first = spec.tasks[0]
    if first.gpu_milli >= MILLI_PER_GPU:
        g = first.gpu_milli // MILLI_PER_GPU
        if len(spec.tasks) == 1:
            return snap.largest_free_block(flavor) >= g
        if all(t == first for t in spec.tasks):
            return snap.tasks_that_fit(flavor, g) >= len(spec.tasks)
    return True


def check_admission(
    snap: Snapshot, spec: JobSpec, flavor: str, request: Request
) -> CheckBlock | None:
    """Why the admission checks (``snap.checks``, in order) refuse ``spec`` on ``flavor``, or
    None when all pass. A block preemption cannot lift wins over one it can (the quota's): a
    job refused by both must not take victims for nothing."""
    first: CheckBlock | None = None
    for check in snap.checks:
        found = check.block(snap, spec, flavor, request)
        if found is None:
            continue
        if not found.preemptible:
            return found
        first = first or found
    return first


def try_admit(
    snap: Snapshot,
    spec: JobSpec,
    now: float,
    failed: set[PlacementKey],
    undos: list[Undo],
    holds: PreemptorHolds | None = None,
) -> Attempt:
    """Admit ``spec`` on its first flavor that passes the admission checks and placement,
    applying the start to ``snap`` (its undo goes to ``undos``). ``failed`` caches (tasks,
    flavor) pairs that found no room in this view of the snapshot. ``holds`` is the room
    waiting preemptors keep."""
    attempt = Attempt()
    joint = snap.packing is not None and len(spec.tasks) == 1
    joint = joint and (not spec.flavors or not spec.flavor_order)
    open_flavors: list[str] = []
    for flavor in accepted_flavors(snap, spec):
        request = request_of(spec, flavor)
        block = check_admission(snap, spec, flavor, request)
        if block is not None:
            attempt.blocked = attempt.blocked or block
            if not block.preemptible:
                attempt.refused.append(flavor)
            continue
        if holds is not None:
            holder = holds.quota_holder(spec.queue, request)
            if holder is not None:
                attempt.behind = attempt.behind or holder
                continue
        attempt.capacity_flavors.append(flavor)
        key = placement_key(spec, flavor)
        if key in failed:
            if holds is not None and key in holds.kept_out:
                attempt.behind = attempt.behind or holds.kept_out[key]
            continue
        if joint:
            open_flavors.append(flavor)
            continue
        placement = (
            choose_placement(snap, spec, flavor) if gang_count_ok(snap, spec, flavor) else None
        )
        if placement is None:
            failed.add(key)
            holder = None if holds is None else holds.placement_holder(spec, flavor)
            if holder is not None:
                assert holds is not None
                holds.kept_out[key] = holder
                attempt.behind = attempt.behind or holder
            continue
        undos.append(
            snap.start(RunningJob(spec, now, placement, flavor, snap.attained.get(spec.id, 0.0)))
        )
        attempt.start = Start(spec.id, flavor, placement)
        return attempt
    if open_flavors and _admit_jointly(
        snap, spec, now, open_flavors, failed, undos, holds, attempt
    ):
        return attempt
    if attempt.capacity_flavors:
        attempt.blocked = None
    return attempt


def _admit_jointly(
    snap: Snapshot,
    spec: JobSpec,
    now: float,
    flavors: list[str],
    failed: set[PlacementKey],
    undos: list[Undo],
    holds: PreemptorHolds | None,
    attempt: Attempt,
) -> bool:
    """Place ``spec`` by the snapshot's packer over ``flavors`` (group by group of equal speed
    advantage); True when it started. Flavors without room are recorded in ``failed``."""
    for group in advantage_groups(spec, flavors, snap.speed_norms):
        found = choose_packed(snap, spec, group)
        if found is None:
            continue
        flavor, placement = found
        undos.append(
            snap.start(RunningJob(spec, now, placement, flavor, snap.attained.get(spec.id, 0.0)))
        )
        attempt.start = Start(spec.id, flavor, placement)
        return True
    for flavor in flavors:
        key = placement_key(spec, flavor)
        failed.add(key)
        holder = None if holds is None else holds.placement_holder(spec, flavor)
        if holder is not None:
            assert holds is not None
            holds.kept_out[key] = holder
            attempt.behind = attempt.behind or holder
    return False
