"""The order in which a cycle considers pending jobs.

Nominated jobs (those whose preemptions were issued in an earlier cycle) come first, in the
policy's order: the room their victims leave is theirs.

Without the DRS criterion this is the policy's static key order, kept on the snapshot from one
cycle to the next (``allot.core.pending_index``); the stream is lazy, so a cycle that stops
early pays only for the jobs it took. With it (Kueue
KEP-1714 fair sharing), guaranteed quota comes before borrowed quota, in two passes:
1. every job whose admission keeps its queue within its nominal quota, in the static order
   (under STRICT blocking a queue's first borrowing job defers the rest of that queue, so a
   queue's own order holds);
2. the remaining jobs, grouped by queue, each queue in the static order, with the queues merged
   by the dominant resource share each would have after admitting its next job: the queue that
   borrows least (relative to what its cohort can lend, divided by its weight) goes first.
A queue's share only changes when one of its own jobs is admitted, and the merge is lazy, so
each share is computed once per job, right after the cycle acted on the previous one.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator

from allot.core.model import JobSpec
from allot.core.pending_index import DecisionKey, PendingIndex
from allot.core.placement.diagnose import accepted_flavors
from allot.core.policy import Blocking, Criterion, Policy
from allot.core.policy.ordering import SortKey, sort_key
from allot.core.quota import request_of
from allot.core.quota.fair_share import FairShareFactors
from allot.core.quota.tree import ShareOrder
from allot.core.snapshot import Snapshot

SortKeyFn = Callable[[JobSpec], SortKey]


def static_key(
    snap: Snapshot, policy: Policy, asking: Iterable[tuple[str, str]]
) -> tuple[SortKeyFn, FairShareFactors | None]:
    """The policy's sort key for this cycle and the fair-share factors it uses (computed once,
    for the (tenant, user) pairs ``asking``)."""
    factors = None
    if Criterion.USAGE in policy.order:
        shares = {t.name: t.share for t in snap.quota.config.tenants} if snap.quota else {}
        factors = FairShareFactors.compute(snap.history, shares, asking)
    key = sort_key(
        policy.order, attained=snap.attained, thresholds=policy.las_thresholds, factors=factors
    )
    return key, factors


def _share_after(snap: Snapshot, spec: JobSpec) -> ShareOrder:
    tree = snap.quota
    assert tree is not None
    return min(
        (
            tree.dominant_share_order(spec.queue, request_of(spec, f))
            for f in accepted_flavors(snap, spec)
        ),
        default=(0.0, 0.0),
    )


def _within_nominal(snap: Snapshot, spec: JobSpec) -> bool:
    tree = snap.quota
    assert tree is not None
    return any(
        tree.within_nominal(spec.queue, request_of(spec, f)) for f in accepted_flavors(snap, spec)
    )


def job_stream(
    snap: Snapshot,
    index: PendingIndex,
    policy: Policy,
    settled: set[DecisionKey] | None = None,
) -> Iterator[JobSpec]:
    """Yield the jobs of ``index`` in the order the cycle should consider them. Lazy: a cycle
    that stops early pays only for the jobs it took. With ``settled`` (a set the cycle fills
    with the decision keys whose later jobs it need not see; ``PendingIndex.skips`` must
    hold) the jobs of a key stop coming once it is there."""
    key, factors = static_key(snap, policy, index.users)
    ordered: Iterable[JobSpec] = (
        index.ordered(factors) if settled is None else index.ordered_by_key(settled)
    )
    if snap.nominated:
        first = sorted((index.specs[i] for i in snap.nominated if i in index.specs), key=key)
        if first:
            yield from first
            skip = {j.id for j in first}
            ordered = (j for j in ordered if j.id not in skip)
    if not policy.queue_fair or snap.quota is None:
        yield from ordered
        return
    by_queue: dict[str, list[JobSpec]] = {}
    strict = policy.blocking is Blocking.STRICT
    for spec in ordered:
        # Pass 1: guaranteed quota first. Checked at yield time, after earlier admissions.
        if spec.queue in by_queue and strict:
            by_queue[spec.queue].append(spec)
        elif _within_nominal(snap, spec):
            yield spec
        else:
            by_queue.setdefault(spec.queue, []).append(spec)
    # Pass 2: borrowing, by dominant resource share.
    heap: list[tuple[ShareOrder, SortKey, str, int]] = [
        (_share_after(snap, specs[0]), key(specs[0]), queue, 0) for queue, specs in by_queue.items()
    ]
    heapq.heapify(heap)
    while heap:
        _, _, queue, position = heapq.heappop(heap)
        specs = by_queue[queue]
        yield specs[position]
        if position + 1 < len(specs):
            following = specs[position + 1]
            heapq.heappush(
                heap, (_share_after(snap, following), key(following), queue, position + 1)
            )
