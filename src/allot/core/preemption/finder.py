"""Finding the preemptions a pending job may make: one ``Preemptor`` per accepted flavor its
queue has quota for, in order of preference, and on the first flavor where an allowed set of
victims exists, those victims (``allot.core.preemption.victims``). Also what the cycle says of
a job that waits for preempted jobs, and the rules and backlog a search needs.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import cache

from allot.core.explain import Explanation, Reason
from allot.core.model import JobSpec
from allot.core.placement.diagnose import accepted_flavors
from allot.core.policy import Policy
from allot.core.policy.ordering import las_level
from allot.core.preemption import Preemption, Preemptor, Strategy
from allot.core.preemption.candidates import CandidatePool
from allot.core.preemption.holds import PreemptorHolds
from allot.core.preemption.victims import choose_victims
from allot.core.quota import request_of
from allot.core.quota.config import FlavorResource, PreemptionRules
from allot.core.snapshot import Snapshot


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
    return _default_rules(policy.grace_seconds)


@cache
def _default_rules(grace_seconds: float) -> PreemptionRules:
    return PreemptionRules(grace_seconds=grace_seconds)


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


def effective_strategies(
    strategies: frozenset[Strategy], *, with_quotas: bool
) -> frozenset[Strategy]:
    """The strategies a policy preempts by: all of them, except LAS when quotas are configured
    and the policy has the queues' rules too (see ``_preemptors``)."""
    if with_quotas and len(strategies) > 1 and Strategy.LAS in strategies:
        return strategies - {Strategy.LAS}
    return strategies


def _preemptors(
    snap: Snapshot, spec: JobSpec, policy: Policy, now: float, backlog: Backlog
) -> list[Preemptor]:
    """One preemptor per accepted flavor its queue has quota for, in order of preference.
    With quotas configured, a policy that also has the queues' rules does not preempt by LAS
    level: the quotas say whose capacity is whose, and taking it back by attained service
    would undo what reclaim and fair share give (two jobs would preempt each other)."""
    strategies = effective_strategies(policy.preemption, with_quotas=snap.quota is not None)
    level = None
    if Strategy.LAS in strategies:
        level = las_level(snap.attained.get(spec.id, 0.0), policy.las_thresholds)
    rules = rules_of(snap, spec.queue, policy)
    tree = snap.quota
    found: list[Preemptor] = []
    for flavor in accepted_flavors(snap, spec):
        if tree is None or tree.covers(spec.queue, flavor):
            request = request_of(spec, flavor)
            waiting = backlog.get(flavor, {})
            found.append(Preemptor(spec, flavor, request, rules, level, now, strategies, waiting))
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
    refused: Collection[str] = (),
) -> PreemptionSearch:
    """The preemptions that make room for ``spec`` on its first flavor where an allowed set of
    victims exists; ``backlog`` is what the pending jobs ask for (``backlog_of``); flavors in
    ``refused`` are skipped (an admission check that preemption cannot lift refuses them).
    Leaves ``snap`` unchanged."""
    future = None if holds is None else holds.future
    frees: tuple[Strategy, ...] | None = None
    for preemptor in _preemptors(snap, spec, policy, now, backlog or {}):
        if preemptor.flavor in refused:
            continue  # an admission check preemption cannot lift refuses this flavor
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
