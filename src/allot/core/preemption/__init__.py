"""Preemption: which running jobs a pending job may stop, and which few it should.

One module per strategy, each answering "may this preemptor take this victim?":
- ``within_queue``: a higher-priority job takes a lower-priority job of its own queue.
- ``reclaim``: a queue that stays within its nominal quota takes back quota that another queue
  of its cohort borrowed.
- ``fair_share``: a queue takes from a cohort peer whose dominant resource share is higher, by
  the KEP-1714 rules S2-a / S2-b.
- ``las``: under 2D-LAS, a job at a lower attained-service level takes a job at a higher one.
- ``budget``: a money budget with ``on_exhausted: preempt`` stops its owner's running jobs
  (``allot.core.budget``); no preemptor, the explanation says why.

``victims`` picks the set (single tasks node by node, gangs in ``gang``), over the candidates
of ``candidates`` with the what-if search of ``search``: the fewest victims, then the fewest of
the preemptor's own queue (other queues' borrowed jobs go first), then the lowest priority,
then the least work lost (checkpointable and recently started jobs lose least). Every victim
is preemptible, is not already stopping, has run its minimum runtime, and runs on the
preemptor's flavor.
``holds`` keeps, for the rest of a cycle, the room a preemptor waits for: its quota request and
the free capacity its placement needs.
The decision is data (``Preemption``); the driver gives each victim its grace period, stops it
and requeues it.

Across queues (reclaim and fair share) a victim's queue must borrow, now, a flavor-resource
that both the preemptor and the victim use (Kueue's candidate rule in
pkg/scheduler/preemption/preemption.go: the candidate's ClusterQueue borrows a resource that
needs preemption and the candidate uses it): ``contended``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from allot.core.explain import Explanation
from allot.core.model import JobId, JobSpec, RunningJob
from allot.core.quota import request_of
from allot.core.quota.config import FlavorResource, PreemptionRules
from allot.core.quota.tree import QuotaTree


class Strategy(StrEnum):
    """Why a victim may be taken."""

    WITHIN_QUEUE = "within_queue"
    RECLAIM = "reclaim"
    BORROW_WITHIN_COHORT = "borrow_within_cohort"
    FAIR_SHARE = "fair_share"
    LAS = "las"
    BUDGET = "budget"


@dataclass(frozen=True, slots=True)
class Preemption:
    """Stop ``victim`` by ``stop_by`` (after its grace period) to make room for ``preemptor``
    (None for a stop of its own, a budget's: ``why`` then says why)."""

    victim: JobId
    preemptor: JobId | None
    strategy: Strategy
    stop_by: float
    why: Explanation | None = None


@dataclass(frozen=True, slots=True)
class Preemptor:
    """A pending job looking for room on one flavor, with what it asks of its queue's quota."""

    spec: JobSpec
    flavor: str
    request: dict[FlavorResource, int]
    rules: PreemptionRules
    las_level: int | None  # None unless the policy preempts by attained service
    now: float
    strategies: frozenset[Strategy]  # what the policy allows; the queue's rules narrow it
    # What the pending jobs of each queue ask for on this flavor (the preemptor included): how
    # much of the room a victim frees beyond the preemptor's need its side could take.
    backlog: Mapping[str, Mapping[FlavorResource, int]] = field(default_factory=dict)


def contended(tree: QuotaTree, preemptor: Preemptor, victim: RunningJob) -> bool:
    """True when ``victim``'s queue borrows, now, a flavor-resource that both the preemptor
    and ``victim`` use."""
    used = request_of(victim.spec, victim.flavor)
    queue = victim.spec.queue
    return any(
        amount > 0 and used.get(fr, 0) > 0 and tree.borrowing(queue, fr) > 0
        for fr, amount in preemptor.request.items()
    )


__all__ = ["Preemption", "Preemptor", "Strategy", "contended"]
