"""Victim selection: the smallest set of running jobs whose removal lets the preemptor in.

Candidates come from ``candidates.CandidatePool``; the what-if state and the order of
preference are ``search.VictimSearch`` and ``search.cost``: fewer victims first, then fewer of
the preemptor's own queue, then a lower highest priority, then less work lost. A job stopped by
a queue with both fair-share rules is searched with the stricter one first (Kueue: S2-a, then
S2-b).

- A single-task preemptor is tried node by node: on each node, candidates are removed
  (largest share of that node first, then by preference) until the task fits there, then more
  are removed anywhere if the queue's quota still blocks; then every victim that is not needed
  is put back. The best node's set wins.
- A gang is searched two ways and the better set wins (``allot.core.preemption.gang``): by
  nodes (for each node, the fewest victims that free room for k of its tasks; then the nodes
  whose victims add up to the fewest), and greedily (candidates in preference order until the
  whole job fits).

Strategies are checked at the moment a victim is removed, against the what-if state. Every
check is monotone in the other victims (a victim allowed with some others gone is allowed with
them present), so putting victims back never makes the set illegal. Quota must fit both now and
in the view held for waiting preemptors (``holds``), whose tree mirrors every what-if removal.
The snapshot is restored before returning.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from itertools import compress

from allot.core.model import MILLI_PER_GPU, RunningJob
from allot.core.placement.rank import smallest_sufficient
from allot.core.preemption import Preemptor, Strategy
from allot.core.preemption.candidates import CandidatePool
from allot.core.preemption.gang import gang_victims
from allot.core.preemption.search import (
    Cost,
    Victims,
    VictimSearch,
    cost,
    holders_by_node,
    node_order,
)
from allot.core.quota.config import FairShareRule, WithinQueue
from allot.core.quota.tree import QuotaTree
from allot.core.snapshot import Snapshot


def candidates(
    snap: Snapshot, p: Preemptor, pool: CandidatePool, future: QuotaTree | None = None
) -> tuple[VictimSearch, list[RunningJob]] | None:
    """The search for ``p`` and the jobs a strategy allows it to take now (in preference
    order); None when there are none. A job no strategy allows now is never allowed once others
    are gone (the checks are monotone), so a search only ever considers these."""
    if not pool.might_help(p):
        return None
    search = VictimSearch(snap, p, pool.thresholds, pool.fresh_queues, future)
    if not search.checks:
        return None
    first: dict[object, Strategy | None] = {}
    jobs = pool.of(p.flavor)
    search.plan_candidates(jobs)
    if p.rules.within_queue is WithinQueue.LOWER_OR_NEWER_EQUAL_PRIORITY:
        # The first look reads each job's age: asked job by job.
        everyone = [job for job in jobs if search.first_strategy(job, first) is not None]
        everyone.sort(key=search.rank)
    else:
        everyone = _allowed(search, jobs, pool.keys(p.flavor), first)
    return (search, everyone) if everyone else None


def _allowed(
    search: VictimSearch,
    jobs: list[RunningJob],
    keys: list[int],
    first: dict[object, Strategy | None],
) -> list[RunningJob]:
    """The jobs (in preference order; ``keys``, in step, number their victim keys) a strategy
    allows at first look, in ``search.rank`` order. The first look depends only on a job's
    key, so it is asked once per key (of the key's first job); ``rank`` is a queue's place
    (other queues by share, the preemptor's own last) then preference, so the jobs are taken
    place by place, each place in one pass that keeps the preference order."""
    firsts = dict(zip(reversed(keys), reversed(jobs), strict=True))
    size = max(firsts, default=-1) + 1
    places: dict[tuple[int, tuple[float, float]], bytearray] = {}
    for key, job in firsts.items():
        if search.first_strategy(job, first) is not None:
            place = search.place(job.spec.queue)
            mask = places.get(place)
            if mask is None:
                mask = places[place] = bytearray(size)
            mask[key] = 1
    everyone: list[RunningJob] = []
    for place in sorted(places):
        everyone.extend(compress(jobs, map(places[place].__getitem__, keys)))
    return everyone


def _on_node(
    search: VictimSearch, i: int, local: list[RunningJob], everyone: list[RunningJob]
) -> Victims | None:
    victims: Victims = []
    search.take_until(victims, local, lambda: search.fits_on(i), everyone)
    if not search.fits_on(i):
        return None
    search.top_up_quota(victims, everyone)
    if not search.fits():
        return None
    return search.put_back_unneeded(victims, search.fits)


def choose_victims(
    snap: Snapshot,
    p: Preemptor,
    pool: CandidatePool,
    future: QuotaTree | None = None,
    *,
    quota_check: bool = False,
) -> tuple[Victims | None, list[Strategy] | None]:
    """The victims that make room for ``p`` on its flavor, or None when no allowed set does;
    ``future`` is the quota view held for waiting preemptors. When none does and
    ``quota_check`` is set, also the strategies of the allowed victims that would make its
    quota fit (None when they would not): then placement, not quota, keeps ``p`` out. Leaves
    ``snap`` unchanged."""
    strict = _stricter_first(p)
    if strict is not None:
        # Kueue's fair sharing tries S2-a (lte_final_share) on every candidate before S2-b.
        victims, _ = choose_victims(snap, strict, pool, future)
        if victims:
            return victims, None
    found = candidates(snap, p, pool, future)
    if found is None:
        return None, None
    search, everyone = found
    victims = gang_victims(search, everyone) if len(p.spec.tasks) > 1 else _single(search, everyone)
    if victims or not quota_check:
        return victims, None
    taken: Victims = []
    try:
        if not search.top_up_quota(taken, everyone) or not taken:
            return None, None
        return None, sorted({strategy for _, strategy in taken})
    finally:
        search.restore()


def _stricter_first(p: Preemptor) -> Preemptor | None:
    """The preemptor with only the stricter fair-share rule, when its queue allows both."""
    rules = p.rules.fair_share
    if FairShareRule.LTE_FINAL_SHARE in rules and FairShareRule.LT_INITIAL_SHARE in rules:
        return replace(p, rules=replace(p.rules, fair_share=(FairShareRule.LTE_FINAL_SHARE,)))
    return None


TIES = 32  # nodes searched at the best victim count, for the later criteria of ``cost``


def _single(search: VictimSearch, everyone: list[RunningJob]) -> Victims | None:
    snap, p = search.snap, search.p
    by_node = holders_by_node(snap, everyone)
    jobs_by_id = {job.spec.id: job for job in everyone}
    # Visit nodes by an optimistic count of the victims they need (freeing every device a
    # victim touches), and stop once no node left can beat the best set found.
    # Within one count, nodes whose best candidate ranks first come first, and at most
    # ``TIES`` nodes that reach the best count are searched: the count is always the fewest,
    # the later criteria of ``cost`` are settled among those nodes.
    need = p.spec.tasks[0].gpu_milli // MILLI_PER_GPU
    ranked: list[tuple[int, tuple[object, ...], int]] = []
    for i, held in by_node.items():
        bound = _at_least(need - snap.whole_free[i], held.values())
        if bound is not None:
            first = min(search.rank(jobs_by_id[j]) for j in held)
            ranked.append((bound, first, i))
    # A node where the task fits already needs victims only to free quota (taken anywhere).
    for i in smallest_sufficient(snap, p.flavor, need):
        if i not in by_node and search.fits_on(i):
            ranked.append((0, (), i))
            break  # any such node will do: the quota victims do not depend on it
    ranked.sort(key=lambda r: (r[0], r[1], r[2]))
    best: Victims | None = None
    best_cost: Cost | None = None
    ties = 0
    for bound, _, i in ranked:
        if best_cost is not None and bound > best_cost[0]:
            break
        if best_cost is not None and bound == best_cost[0]:
            ties += 1
            if ties > TIES:
                break
        held = by_node.get(i, {})
        local = node_order(held, jobs_by_id, search.rank)
        try:
            result = _on_node(search, i, local, everyone)
        finally:
            search.restore()
        if not result:
            continue
        result_cost = cost(result, p.now, p.spec.queue)
        if best_cost is None or result_cost < best_cost:
            best, best_cost = result, result_cost
    return best


def _at_least(missing: int, held: Iterable[int]) -> int | None:
    """The fewest victims, taking the largest holders first, that could free ``missing``
    devices (0 when none are missing); None when even all of them could not."""
    count = 0
    for devices in sorted(held, reverse=True):
        if missing <= 0:
            break
        missing -= devices
        count += 1
    return count if missing <= 0 else None
