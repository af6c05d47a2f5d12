"""Admission of one job: its queue's quota, then placement, flavor by flavor; and, when it does
not fit, the search for victims to preempt.

For each accepted flavor in order of preference (Kueue's flavor fungibility):
1. quota: the job's request on that flavor must fit what its queue may still admit, borrowing
   included (``QuotaTree.block``);
2. placement: the job must fit the free capacity of that flavor's nodes.
The first flavor passing both is used. While preemptors wait for their victims to stop, both
checks also respect what they hold (``allot.core.preemption.holds``): the quota must fit once
the stopping jobs have stopped and the holders have started too, and placement sees the free
capacity less their placement holds. An ``Attempt`` says which check stopped the others, so the
cycle can tell a quota block (the job's own queue is full) from a capacity block (the cluster
is full), which only the latter may hold a backfill reservation for, and from a job that only
a holder keeps out (it waits behind that preemptor).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from allot.core.explain import Explanation, FieldValue, Reason
from allot.core.model import MILLI_PER_GPU, JobSpec, RunningJob
from allot.core.placement.diagnose import accepted_flavors
from allot.core.placement.select import choose_placement
from allot.core.plan import Start
from allot.core.policy import Policy
from allot.core.policy.ordering import las_level
from allot.core.preemption import Preemption, Preemptor, Strategy
from allot.core.preemption.candidates import CandidatePool
from allot.core.preemption.holds import PreemptorHolds
from allot.core.preemption.victims import choose_victims
from allot.core.quota import request_of
from allot.core.quota.config import FlavorResource, PreemptionRules
from allot.core.quota.tree import QuotaBlock
from allot.core.snapshot import Snapshot, Undo

PlacementKey = tuple[tuple[tuple[int, int, int], ...], str]


@dataclass(slots=True)
class Attempt:
    """The outcome of trying to admit one job now."""

    start: Start | None = None
    quota_block: QuotaBlock | None = None  # set when every flavor was stopped by quota
    capacity_flavors: list[str] = field(default_factory=list)  # quota allowed, no room
    behind: int | None = None  # a waiting preemptor whose held room alone keeps it out


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
    holds: PreemptorHolds | None = None,
) -> Attempt:
    """Admit ``spec`` on its first flavor that passes quota and placement, applying the start
    to ``snap`` (its undo goes to ``undos``). ``failed`` caches (tasks, flavor) pairs that found
    no room in this view of the snapshot. ``holds`` is the room waiting preemptors keep."""
    attempt = Attempt()
    tree = snap.quota
    for flavor in accepted_flavors(snap, spec):
        request = request_of(spec, flavor)
        if tree is not None:
            block = tree.block(spec.queue, request)
            if block is not None:
                attempt.quota_block = attempt.quota_block or block
                continue
        if holds is not None:
            holder = holds.quota_holder(spec.queue, request)
            if holder is not None:
                attempt.behind = attempt.behind or holder
                continue
        attempt.capacity_flavors.append(flavor)
        key = (spec.shape[0], flavor)
        if key in failed:
            if holds is not None and key in holds.kept_out:
                attempt.behind = attempt.behind or holds.kept_out[key]
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
    if attempt.capacity_flavors:
        attempt.quota_block = None
    return attempt


def quota_explanation(spec: JobSpec, block: QuotaBlock) -> Explanation:
    """Why ``spec`` waits on quota. ``node``/``limit`` name where the room runs out;
    ``binding_node``/``binding_kind``/``binding_limit`` name the node of the tree whose limit
    binds: the same, or, when lending limits keep unused quota out of a cohort's pool, the
    lender withholding the most (with ``withheld``, the total they keep back)."""
    fields: dict[str, FieldValue] = {
        "queue": spec.queue,
        "flavor": block.fr[0],
        "resource": block.fr[1],
        "limit": block.limit,
        "node": block.node,
        "needed": block.needed,
        "available": block.available,
        "binding_node": block.node,
        "binding_kind": block.kind,
        "binding_limit": block.limit,
    }
    if block.lender is not None and block.lender_kind is not None:
        fields["binding_node"] = block.lender
        fields["binding_kind"] = block.lender_kind
        fields["binding_limit"] = "lending_limit"
        fields["withheld"] = block.withheld
    return Explanation(Reason.QUOTA, fields)


def waiting_explanation(snap: Snapshot, flavor: str, now: float) -> Explanation:
    """Why a job waits for jobs being preempted on ``flavor``: ``victims``, their ids, and
    ``stop_by``, when the last of them will have stopped."""
    stopping = sorted(j for j in snap.stopping if snap.running[j].flavor == flavor)
    stop_by = max((snap.running[j].stopping_until or now for j in stopping), default=now)
    return Explanation(
        Reason.WAITING_FOR_PREEMPTED,
        {"victims": ", ".join(str(j) for j in stopping), "stop_by": stop_by},
    )


def rules_of(snap: Snapshot, queue: str, policy: Policy) -> PreemptionRules:
    """The preemption rules of ``queue``; the defaults (with the policy's grace period) for a
    queue the quota configuration does not name."""
    if snap.quota is not None:
        spec = snap.quota.config.queue_by_name.get(queue)
        if spec is not None:
            return spec.preemption
    return PreemptionRules(grace_seconds=policy.grace_seconds)


def fits_once_stopped(snap: Snapshot, spec: JobSpec, flavor: str, holds: PreemptorHolds) -> bool:
    """True when ``spec`` would fit ``flavor`` once the jobs already being preempted stop (and
    the preemptors waiting for them have started)."""
    return bool(snap.stopping) and holds.fits_then(spec, flavor)


Backlog = Mapping[str, Mapping[str, Mapping[FlavorResource, int]]]  # flavor -> queue -> amounts


def backlog_of(snap: Snapshot, jobs: Iterable[JobSpec]) -> Backlog:
    """What the pending ``jobs`` of each queue ask for, per flavor they accept (a job that
    accepts several flavors counts on each)."""
    out: dict[str, dict[str, dict[FlavorResource, int]]] = {}
    for spec in jobs:
        for flavor in accepted_flavors(snap, spec):
            amounts = out.setdefault(flavor, {}).setdefault(spec.queue, {})
            for fr, amount in request_of(spec, flavor).items():
                amounts[fr] = amounts.get(fr, 0) + amount
    return out


def _preemptors(
    snap: Snapshot, spec: JobSpec, policy: Policy, now: float, backlog: Backlog
) -> list[Preemptor]:
    """One preemptor per accepted flavor its queue has quota for, in order of preference."""
    level = None
    if Strategy.LAS in policy.preemption:
        level = las_level(snap.attained.get(spec.id, 0.0), policy.las_thresholds)
    rules = rules_of(snap, spec.queue, policy)
    tree = snap.quota
    found: list[Preemptor] = []
    for flavor in accepted_flavors(snap, spec):
        if tree is None or tree.covers(spec.queue, flavor):
            request = request_of(spec, flavor)
            waiting = backlog.get(flavor, {})
            found.append(
                Preemptor(spec, flavor, request, rules, level, now, policy.preemption, waiting)
            )
    return found


@dataclass(frozen=True, slots=True)
class PreemptionSearch:
    """What the victim search found for one job: the flavor and preemptions that make room for
    it, or none; then, when asked, the strategies whose allowed victims would make its quota
    fit although no set of them makes a placement (``frees_quota``)."""

    flavor: str | None = None
    preemptions: tuple[Preemption, ...] = ()
    frees_quota: tuple[Strategy, ...] | None = None


def find_preemptions(
    snap: Snapshot,
    spec: JobSpec,
    policy: Policy,
    now: float,
    pool: CandidatePool,
    holds: PreemptorHolds | None = None,
    *,
    backlog: Backlog | None = None,
    quota_check: bool = False,
) -> PreemptionSearch:
    """The preemptions that make room for ``spec`` on its first flavor where an allowed set of
    victims exists; ``backlog`` is what the pending jobs ask for (``backlog_of``). Leaves
    ``snap`` unchanged."""
    future = None if holds is None else holds.future
    frees: tuple[Strategy, ...] | None = None
    for preemptor in _preemptors(snap, spec, policy, now, backlog or {}):
        victims, freeing = choose_victims(snap, preemptor, pool, future, quota_check=quota_check)
        if victims:
            preemptions = tuple(
                Preemption(
                    victim.spec.id,
                    spec.id,
                    strategy,
                    now + rules_of(snap, victim.spec.queue, policy).grace_seconds,
                )
                for victim, strategy in sorted(victims, key=lambda v: v[0].spec.id)
            )
            return PreemptionSearch(preemptor.flavor, preemptions)
        if frees is None and freeing is not None:
            frees = tuple(freeing)
    return PreemptionSearch(frees_quota=frees)
