"""Reclaim: a side of the cohort tree that stays within its own quota after admitting the
preemptor may take back what another side borrows (Kueue ``reclaimWithinCohort``), and, while
borrowing itself, take lower-priority jobs of queues that borrow (Kueue ``borrowWithinCohort``).

The sides are the children of the lowest common ancestor of the two queues on the paths to
each (the queues themselves in a flat cohort): in nested cohorts a queue whose own cohort is
within its quota reclaims what a sibling cohort borrows, though the queue itself may use more
than its own nominal inside its cohort. Subtree quotas count lending limits on the way up, so
borrowed capacity comes back through every level.

Victims (``victim_qualifies``): another queue of the same tree that borrows, now, a
flavor-resource both the preemptor and the victim use (``contended``), whose side borrows it
from the common ancestor too; with ``lower_priority`` the victim must have a lower priority.
The preemptor's eligibility (``preemptor_qualifies``) is asked at the moment of each removal:
taking its own queue's lower-priority jobs first can bring its side back within quota.

Borrowing within the cohort (``borrows_while_preempting``): when the preemptor's side would
borrow, a victim of lower priority (and at most ``max_priority_threshold``, when set) in a
queue that borrows may still be taken. Its queue borrowed it, so to run again it would borrow
again and could not reclaim it back: no loop.
"""

from __future__ import annotations

from allot.core.model import RunningJob
from allot.core.preemption import Preemptor, contended
from allot.core.quota.config import BorrowWithinCohort, FlavorResource, ReclaimWithinCohort
from allot.core.quota.tree import QuotaNode, QuotaTree


def may_reclaim(preemptor: Preemptor) -> bool:
    """True when the preemptor's queue's rules allow reclaiming at all."""
    return preemptor.rules.reclaim_within_cohort is not ReclaimWithinCohort.NEVER


def may_borrow_while_preempting(preemptor: Preemptor) -> bool:
    """True when the queue's rules allow taking lower-priority jobs while borrowing."""
    return preemptor.rules.borrow_within_cohort is not BorrowWithinCohort.NEVER


def _within(
    tree: QuotaTree, side: QuotaNode, queue: str, request: dict[FlavorResource, int]
) -> bool:
    tree.add(queue, request)
    try:
        return all(
            side.usage.get(fr, 0) <= side.subtree.get(fr, 0)
            for fr, amount in request.items()
            if amount > 0 and fr in side.subtree
        )
    finally:
        tree.remove(queue, request)


def preemptor_qualifies(tree: QuotaTree | None, preemptor: Preemptor, victim: RunningJob) -> bool:
    """True when the preemptor's side (towards ``victim``) stays within its own quota once the
    preemptor is admitted, as things are now."""
    if tree is None:
        return False
    sides = tree.sides(preemptor.spec.queue, victim.spec.queue)
    if sides is None:
        return False
    return _within(tree, sides[0], preemptor.spec.queue, dict(preemptor.request))


def victim_qualifies(tree: QuotaTree, preemptor: Preemptor, victim: RunningJob) -> bool:
    """True when ``victim`` is in another queue of the tree that borrows, now, what both the
    preemptor and the victim use, from the common ancestor too (and, with ``lower_priority``,
    has a lower priority)."""
    queue, other = preemptor.spec.queue, victim.spec.queue
    if queue == other or tree.cohort_root(queue) != tree.cohort_root(other):
        return False
    if (
        preemptor.rules.reclaim_within_cohort is ReclaimWithinCohort.LOWER_PRIORITY
        and victim.spec.priority >= preemptor.spec.priority
    ):
        return False
    return _side_borrows(tree, preemptor, victim)


def _side_borrows(tree: QuotaTree, preemptor: Preemptor, victim: RunningJob) -> bool:
    if not contended(tree, preemptor, victim):
        return False
    sides = tree.sides(preemptor.spec.queue, victim.spec.queue)
    if sides is None:
        return False
    theirs = sides[1]
    return any(
        amount > 0 and theirs.usage.get(fr, 0) > theirs.subtree.get(fr, 0)
        for fr, amount in preemptor.request.items()
        if fr in theirs.subtree
    )


def borrows_while_preempting(tree: QuotaTree, preemptor: Preemptor, victim: RunningJob) -> bool:
    """True when ``victim`` may be taken by a preemptor that borrows: a lower priority (at most
    the threshold), in another queue of the tree that borrows what both use."""
    rules = preemptor.rules
    if rules.borrow_within_cohort is BorrowWithinCohort.NEVER:
        return False
    queue, other = preemptor.spec.queue, victim.spec.queue
    if queue == other or tree.cohort_root(queue) != tree.cohort_root(other):
        return False
    priority = victim.spec.priority
    if priority >= preemptor.spec.priority:
        return False
    if rules.max_priority_threshold is not None and priority > rules.max_priority_threshold:
        return False
    return _side_borrows(tree, preemptor, victim)


def allows(tree: QuotaTree | None, preemptor: Preemptor, victim: RunningJob) -> bool:
    """True when reclaiming ``victim``'s quota is allowed now."""
    return (
        tree is not None
        and may_reclaim(preemptor)
        and victim_qualifies(tree, preemptor, victim)
        and preemptor_qualifies(tree, preemptor, victim)
    )
