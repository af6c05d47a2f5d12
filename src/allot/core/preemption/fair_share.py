"""Fair-share preemption between queues of one cohort tree (Kueue KEP-1714, rules S2-a and
S2-b, https://github.com/kubernetes-sigs/kueue/tree/main/keps/1714-fair-sharing).

Shares are dominant resource shares (``allot.core.quota.tree``: ``share(n) = max over r of
borrowed(n, r) / lendable(parent(n), r) / weight(n)``), compared at the lowest common ancestor
of the two queues (Kueue pkg/scheduler/preemption/fairsharing/least_common_ancestor.go): with
``P`` and ``T`` the children of that cohort on the paths to the preemptor's queue and to the
victim's queue (the queues themselves when they share a parent),

- ``p = share(P)`` once the preemptor is admitted: its request added to its queue, plus the
  part of what the victim frees beyond that request which the other pending jobs of ``P``'s
  subtree ask for (allot's addition: those jobs would take that room at once, ``P`` would end
  above ``T``, and ``T`` would take it back, round and round),
- ``t0 = share(T)`` now, and ``t1 = share(T)`` once the victim is removed,
- S2-a (``lte_final_share``) allows the preemption when ``p <= t1``;
- S2-b (``lt_initial_share``) allows it when ``p < t0``.

Shares compare as ``QuotaTree.share_order`` does: two sides of weight 0 (both shares infinite)
compare by their shares at weight 1. The victim's queue must be borrowing (share > 0) and borrow
what both jobs use (``contended``). allot also requires ``p < t0`` under S2-a: removing a victim
never raises ``share(T)``, so ``p <= t1 <= t0`` and this excludes only ``p == t1 == t0``, a
victim whose removal does not lower its side's share. Kueue's no-ping-pong argument assumes that
case away (https://kueue.sigs.k8s.io/docs/concepts/fair_sharing/); with the strict inequality it
holds as stated: a fair-share preemption of b by a means ``share(side of a, a admitted) <= p <
share(side of b, b admitted)``, and the reverse would need the opposite strict inequality
between the same two numbers (a side's share depends only on the jobs in its own subtree).
"""

from __future__ import annotations

from allot.core.model import RunningJob
from allot.core.preemption import Preemptor, contended
from allot.core.quota import request_of
from allot.core.quota.config import FairShareRule, FlavorResource
from allot.core.quota.tree import QuotaNode, QuotaTree, ShareOrder


class FairShare:
    """The fair-share check of one preemptor. ``p`` is computed once per side and victim shape,
    before any victim is removed (every candidate is asked first in the untouched state);
    removing victims only lowers shares, so an earlier answer stays a safe one (the checks are
    monotone)."""

    def __init__(self, tree: QuotaTree, preemptor: Preemptor) -> None:
        self.tree = tree
        self.p = preemptor
        self.rules = preemptor.rules.fair_share
        self._mine: dict[object, ShareOrder] = {}

    def preemptor_share(self, side: QuotaNode, victim: RunningJob) -> ShareOrder:
        """``share(P)`` with the preemptor admitted, and with the part of what ``victim``
        frees beyond the preemptor's need that the other pending jobs of ``P`` could take."""
        tree, p = self.tree, self.p
        freed = request_of(victim.spec, victim.flavor)
        waiting: dict[FlavorResource, int] = {}
        for queue in tree.queues_under(side):
            for fr, amount in p.backlog.get(queue, {}).items():
                waiting[fr] = waiting.get(fr, 0) + amount
        extra = {}
        for fr, amount in p.request.items():
            others = max(0, waiting.get(fr, 0) - amount)  # the backlog counts the preemptor
            extra[fr] = amount + min(max(0, freed.get(fr, 0) - amount), others)
        key = (id(side), tuple(sorted(extra.items())))
        if key not in self._mine:
            tree.add(p.spec.queue, extra)
            try:
                self._mine[key] = tree.share_order(side)
            finally:
                tree.remove(p.spec.queue, extra)
        return self._mine[key]

    def allows(self, victim: RunningJob) -> bool:
        """True when one of the queue's rules allows taking ``victim`` now."""
        tree, other = self.tree, victim.spec.queue
        if not self.rules:
            return False
        sides = tree.sides(self.p.spec.queue, other)
        if sides is None or tree.dominant_share(other) <= 0:
            return False
        if not contended(tree, self.p, victim):
            return False
        mine, target = sides
        p = self.preemptor_share(mine, victim)
        if not p < tree.share_order(target):
            return False  # S2-b fails, and S2-a as allot applies it
        if FairShareRule.LT_INITIAL_SHARE in self.rules:
            return True
        freed = request_of(victim.spec, victim.flavor)
        tree.remove(other, freed)
        try:
            return p <= tree.share_order(target)
        finally:
            tree.add(other, freed)


def allows(tree: QuotaTree | None, preemptor: Preemptor, victim: RunningJob) -> bool:
    """True when one of the preemptor queue's fair-share rules allows taking ``victim`` now."""
    return tree is not None and FairShare(tree, preemptor).allows(victim)
