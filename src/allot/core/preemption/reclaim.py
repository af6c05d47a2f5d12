"""Reclaim: a queue that stays within its nominal quota after admitting the preemptor may take
back what another queue of its cohort borrows (Kueue ``reclaimWithinCohort``).

The victim's queue must be borrowing, at the moment of the decision, a flavor-resource that
both the preemptor and the victim use (``contended``); with ``lower_priority`` the victim must
also have a lower priority.
"""

from __future__ import annotations

from allot.core.model import RunningJob
from allot.core.preemption import Preemptor, contended
from allot.core.quota.config import ReclaimWithinCohort
from allot.core.quota.tree import QuotaTree


def may_reclaim(preemptor: Preemptor) -> bool:
    """True when the preemptor's queue's rules allow reclaiming at all."""
    return preemptor.rules.reclaim_within_cohort is not ReclaimWithinCohort.NEVER


def preemptor_qualifies(tree: QuotaTree | None, preemptor: Preemptor) -> bool:
    """True when the preemptor's queue may reclaim at all: its rules allow it, it is in a
    cohort, and it stays within its nominal quota after admitting the preemptor."""
    if tree is None or preemptor.rules.reclaim_within_cohort is ReclaimWithinCohort.NEVER:
        return False
    queue = preemptor.spec.queue
    return tree.cohort_root(queue) is not None and tree.within_nominal(queue, preemptor.request)


def victim_qualifies(tree: QuotaTree, preemptor: Preemptor, victim: RunningJob) -> bool:
    """True when ``victim`` is in another queue of the cohort that borrows, now, what both the
    preemptor and the victim use (and, with ``lower_priority``, has a lower priority)."""
    queue, other = preemptor.spec.queue, victim.spec.queue
    if queue == other or tree.cohort_root(queue) != tree.cohort_root(other):
        return False
    if (
        preemptor.rules.reclaim_within_cohort is ReclaimWithinCohort.LOWER_PRIORITY
        and victim.spec.priority >= preemptor.spec.priority
    ):
        return False
    return contended(tree, preemptor, victim)


def allows(tree: QuotaTree | None, preemptor: Preemptor, victim: RunningJob) -> bool:
    """True when reclaiming ``victim``'s quota is allowed now."""
    return (
        tree is not None
        and preemptor_qualifies(tree, preemptor)
        and victim_qualifies(tree, preemptor, victim)
    )
