"""Reclaim: a queue that stays within its nominal quota after admitting the preemptor may take
back what another queue of its cohort borrows (Kueue ``reclaimWithinCohort``).

The victim's queue must be borrowing, at the moment of the decision, in a flavor-resource the
preemptor needs; with ``lower_priority`` the victim must also have a lower priority.
"""

from __future__ import annotations

from allot.core.model import RunningJob
from allot.core.preemption import Preemptor
from allot.core.quota.config import ReclaimWithinCohort
from allot.core.quota.tree import QuotaTree


def allows(tree: QuotaTree | None, preemptor: Preemptor, victim: RunningJob) -> bool:
    """True when reclaiming ``victim``'s quota is allowed now."""
    rule = preemptor.rules.reclaim_within_cohort
    queue, other = preemptor.spec.queue, victim.spec.queue
    if tree is None or rule is ReclaimWithinCohort.NEVER or queue == other:
        return False
    root = tree.cohort_root(queue)
    if root is None or root != tree.cohort_root(other):
        return False
    if (
        rule is ReclaimWithinCohort.LOWER_PRIORITY
        and victim.spec.priority >= preemptor.spec.priority
    ):
        return False
    if not tree.within_nominal(queue, preemptor.request):
        return False
    return any(
        tree.borrowing(other, fr) > 0 for fr, amount in preemptor.request.items() if amount > 0
    )
