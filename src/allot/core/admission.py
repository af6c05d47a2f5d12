"""Admission of one job: its queue's quota, then placement, flavor by flavor; and, when it does
not fit, the search for victims to preempt.

For each accepted flavor in order of preference (Kueue's flavor fungibility):
1. quota: the job's request on that flavor must fit what its queue may still admit, borrowing
   included (``QuotaTree.block``);
2. placement: the job must fit the free capacity of that flavor's nodes.
The first flavor passing both is used. An ``Attempt`` says which check stopped the others, so
the cycle can tell a quota block (the job's own queue is full) from a capacity block (the
cluster is full), which only the latter may hold a backfill reservation for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from allot.core.model import MILLI_PER_GPU, JobSpec, RunningJob
from allot.core.placement.diagnose import accepted_flavors
from allot.core.placement.select import choose_placement
from allot.core.plan import Start
from allot.core.policy import Policy
from allot.core.policy.ordering import las_level
from allot.core.preemption import Preemption, Preemptor, Strategy
from allot.core.preemption.victims import CandidatePool, choose_victims
from allot.core.quota import request_of
from allot.core.quota.config import PreemptionRules
from allot.core.quota.tree import QuotaBlock
from allot.core.snapshot import Snapshot, Undo

PlacementKey = tuple[tuple[tuple[int, int, int], ...], str]


@dataclass(slots=True)
class Attempt:
    """The outcome of trying to admit one job now."""

    start: Start | None = None
    quota_block: QuotaBlock | None = None  # set when every flavor was stopped by quota
    capacity_flavors: list[str] = field(default_factory=list)  # quota allowed, no room
    behind: int | None = None  # a preemptor holding every flavor the job could use


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


def try_admit(
    snap: Snapshot,
    spec: JobSpec,
    now: float,
    failed: set[PlacementKey],
    undos: list[Undo],
    held_by: Mapping[str, int] | None = None,
) -> Attempt:
    """Admit ``spec`` on its first flavor that passes quota and placement, applying the start
    to ``snap`` (its undo goes to ``undos``). ``failed`` caches (tasks, flavor) pairs that found
    no room in this view of the snapshot. ``held_by`` maps flavors the job may not use now to
    the preemptor holding them in its cohort."""
    attempt = Attempt()
    tree = snap.quota
    flavors = accepted_flavors(snap, spec)
    if held_by:
        free = [f for f in flavors if f not in held_by]
        if not free:
            attempt.behind = held_by[flavors[0]]
            return attempt
        flavors = tuple(free)
    for flavor in flavors:
        if tree is not None:
            block = tree.block(spec.queue, request_of(spec, flavor))
            if block is not None:
                attempt.quota_block = attempt.quota_block or block
                continue
        attempt.capacity_flavors.append(flavor)
        key = (spec.shape[0], flavor)
        if key in failed:
            continue
        placement = (
            choose_placement(snap, spec, flavor) if gang_count_ok(snap, spec, flavor) else None
        )
        if placement is None:
            failed.add(key)
            continue
        undos.append(
            snap.start(RunningJob(spec, now, placement, flavor, snap.attained.get(spec.id, 0.0)))
        )
        attempt.start = Start(spec.id, flavor, placement)
        return attempt
    if attempt.capacity_flavors:
        attempt.quota_block = None
    return attempt


def rules_of(snap: Snapshot, queue: str, policy: Policy) -> PreemptionRules:
    """The preemption rules of ``queue``; the defaults (with the policy's grace period) for a
    queue the quota configuration does not name."""
    if snap.quota is not None:
        spec = snap.quota.config.queue_by_name.get(queue)
        if spec is not None:
            return spec.preemption
    return PreemptionRules(grace_seconds=policy.grace_seconds)


def fits_once_stopped(snap: Snapshot, spec: JobSpec, flavor: str) -> bool:
    """True when ``spec`` would fit ``flavor`` once the jobs already being preempted stop."""
    if not snap.stopping:
        return False
    undos = [snap.finish(job_id) for job_id in sorted(snap.stopping)]
    try:
        tree = snap.quota
        if tree is not None and tree.block(spec.queue, request_of(spec, flavor)) is not None:
            return False
        return choose_placement(snap, spec, flavor) is not None
    finally:
        for undo in reversed(undos):
            undo()


def find_preemptions(
    snap: Snapshot, spec: JobSpec, policy: Policy, now: float, pool: CandidatePool
) -> tuple[str, list[Preemption]] | None:
    """The flavor and the preemptions that make room for ``spec`` on its first flavor where an
    allowed set of victims exists; None when there is none. Leaves ``snap`` unchanged."""
    level = None
    if Strategy.LAS in policy.preemption:
        level = las_level(snap.attained.get(spec.id, 0.0), policy.las_thresholds)
    rules = rules_of(snap, spec.queue, policy)
    tree = snap.quota
    for flavor in accepted_flavors(snap, spec):
        request = request_of(spec, flavor)
        if tree is not None:
            block = tree.block(spec.queue, request)
            if block is not None and block.limit == "not_covered":
                continue
        preemptor = Preemptor(spec, flavor, request, rules, level, now, policy.preemption)
        victims = choose_victims(snap, preemptor, pool)
        if victims:
            return flavor, [
                Preemption(
                    victim.spec.id,
                    spec.id,
                    strategy,
                    now + rules_of(snap, victim.spec.queue, policy).grace_seconds,
                )
                for victim, strategy in sorted(victims, key=lambda v: v[0].spec.id)
            ]
    return None
