"""Fair-share preemption between queues of one cohort (Kueue KEP-1714, rules S2-a and S2-b).

With ``P`` the preemptor's queue after admitting it and ``T`` the victim's queue:
- S2-a (``lte_final_share``): allowed when ``share(P + job) <= share(T - victim)``;
- S2-b (``lt_initial_share``): allowed when ``share(P + job) < share(T)``.
Shares are dominant resource shares (``QuotaTree.dominant_share``). The victim's queue must be
borrowing. Because a preemptor never ends above its target, two queues cannot keep taking from
each other (no ping-pong).
"""

from __future__ import annotations

from allot.core.model import RunningJob
from allot.core.preemption import Preemptor
from allot.core.quota import request_of
from allot.core.quota.config import FairShareRule
from allot.core.quota.tree import QuotaTree


def allows(
    tree: QuotaTree | None, preemptor: Preemptor, victim: RunningJob, mine: float | None = None
) -> bool:
    """True when one of the queue's fair-share rules allows taking ``victim`` now. ``mine`` is
    the preemptor queue's share after admitting it, when the caller already knows it."""
    rules = preemptor.rules.fair_share
    queue, other = preemptor.spec.queue, victim.spec.queue
    if tree is None or not rules or queue == other:
        return False
    root = tree.cohort_root(queue)
    if root is None or root != tree.cohort_root(other):
        return False
    target_before = tree.dominant_share(other)
    if target_before <= 0:
        return False
    if mine is None:
        mine = tree.dominant_share(queue, preemptor.request)
    if FairShareRule.LT_INITIAL_SHARE in rules and mine < target_before:
        return True
    if FairShareRule.LTE_FINAL_SHARE in rules:
        freed = request_of(victim.spec, victim.flavor)
        tree.remove(other, freed)
        try:
            return mine <= tree.dominant_share(other)
        finally:
            tree.add(other, freed)
    return False
