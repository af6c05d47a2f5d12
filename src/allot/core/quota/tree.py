"""The quota tree at run time: usage and what each queue may still admit, per flavor-resource.

Semantics follow Kueue's hierarchical cohorts (pkg/cache/resource_node.go, KEP-79 and KEP-1224
for lending limits). For a node ``n`` (queue or cohort) and flavor-resource ``fr``:

- ``subtree(n)`` = n's nominal + the sum over its children c of ``subtree(c) - guaranteed(c)``.
- ``guaranteed(n)`` = ``max(0, subtree(n) - lending_limit(n))`` (0 without a lending limit): the
  part of n's quota it never lends to its cohort.
- ``usage(cohort)`` = the sum over children of ``max(0, usage(c) - guaranteed(c))``: only what a
  child uses beyond its guaranteed part is drawn from the cohort.
- ``available(n)`` = ``subtree(n) - usage(n)`` at a root; below a root it is
  ``max(0, guaranteed(n) - usage(n)) + min(available(parent), borrow_room(n))`` where
  ``borrow_room(n) = subtree(n) - guaranteed(n) - max(0, usage(n) - guaranteed(n)) +
  borrowing_limit(n)`` (no cap without a borrowing limit).

So a queue never uses more than ``nominal + borrowing_limit`` (its ``subtree`` is its nominal),
and a cohort never hands out a child's guaranteed part. ``add`` returns an undo, like every
snapshot edit. Queues without quotas are not part of the tree: they admit anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from allot.core.quota.config import FlavorResource, QuotaConfig, ResourceQuota

Request = Mapping[FlavorResource, int]


@dataclass(slots=True)
class QuotaNode:
    """One queue or cohort: its quotas, accumulated subtree quota and usage."""

    name: str
    kind: str  # "queue" or "cohort"
    quotas: dict[FlavorResource, ResourceQuota]
    parent: QuotaNode | None = None
    children: list[QuotaNode] = field(default_factory=list)
    subtree: dict[FlavorResource, int] = field(default_factory=dict)
    usage: dict[FlavorResource, int] = field(default_factory=dict)
    weight: float = 1.0

    def guaranteed(self, fr: FlavorResource) -> int:
        """Capacity this node never lends to its cohort."""
        limit = self.quotas[fr].lending_limit if fr in self.quotas else None
        return 0 if limit is None else max(0, self.subtree.get(fr, 0) - limit)

    def local_available(self, fr: FlavorResource) -> int:
        """Guaranteed capacity not yet used (invisible to the parent)."""
        return max(0, self.guaranteed(fr) - self.usage.get(fr, 0))

    def borrowing_limit(self, fr: FlavorResource) -> int | None:
        """How far above its subtree quota this node may go by borrowing (None = no limit)."""
        return self.quotas[fr].borrowing_limit if fr in self.quotas else None

    @property
    def label(self) -> str:
        """``queue X`` or ``cohort Y``, for messages."""
        return f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class QuotaBlock:
    """Why a request does not fit: the flavor-resource, the node whose limit binds, what the
    request needs and what that node can still give."""

    fr: FlavorResource
    node: str
    kind: str  # "queue" or "cohort"
    limit: str  # "nominal", "borrowing_limit", "cohort", "not_covered"
    needed: int
    available: int


class QuotaTree:
    """Quota usage of every queue and cohort, with Kueue's borrowing and lending rules."""

    def __init__(self, config: QuotaConfig) -> None:
        self.config = config
        self.cohorts: dict[str, QuotaNode] = {
            c.name: QuotaNode(c.name, "cohort", dict(c.quotas)) for c in config.cohorts
        }
        self.queues: dict[str, QuotaNode] = {}
        self.unconstrained: set[str] = set()
        self.tenant_of: dict[str, str] = {q.name: q.tenant for q in config.queues}
        for c in config.cohorts:
            if c.parent is not None:
                node = self.cohorts[c.name]
                node.parent = self.cohorts[c.parent]
                node.parent.children.append(node)
        for q in config.queues:
            if q.quotas is None:
                self.unconstrained.add(q.name)
                continue
            node = QuotaNode(q.name, "queue", dict(q.quotas), weight=q.weight)
            self.queues[q.name] = node
            if q.cohort is not None:
                node.parent = self.cohorts[q.cohort]
                node.parent.children.append(node)
        for root in [c for c in self.cohorts.values() if c.parent is None]:
            _accumulate(root)
        for queue in self.queues.values():
            if queue.parent is None:
                _accumulate(queue)
        # Both are fixed by the configuration, and the preemption search asks for them often.
        self._roots: dict[str, str | None] = {q: _root_name(n) for q, n in self.queues.items()}
        self._lendable: dict[str, dict[str, int]] = {}
        for name, node in self.queues.items():
            if node.parent is not None:
                lendable: dict[str, int] = {}
                for fr, amount in node.parent.subtree.items():
                    lendable[fr[1]] = lendable.get(fr[1], 0) + amount
                self._lendable[name] = lendable

    # ------------------------------------------------------------------ queries

    def knows(self, queue: str) -> bool:
        """True when ``queue`` is configured (with or without quotas)."""
        return queue in self.queues or queue in self.unconstrained

    def available(self, node: QuotaNode, fr: FlavorResource) -> int:
        """How much of ``fr`` ``node`` can still admit, borrowing included."""
        if node.parent is None:
            return node.subtree.get(fr, 0) - node.usage.get(fr, 0)
        from_parent = self.available(node.parent, fr)
        limit = node.borrowing_limit(fr)
        if limit is not None:
            guaranteed = node.guaranteed(fr)
            stored = node.subtree.get(fr, 0) - guaranteed
            used = max(0, node.usage.get(fr, 0) - guaranteed)
            from_parent = min(from_parent, stored - used + limit)
        return node.local_available(fr) + from_parent

    def block(self, queue: str, request: Request) -> QuotaBlock | None:
        """None when ``request`` fits ``queue``'s quota now; otherwise the first binding limit.

        A queue with quotas admits only on flavors it lists; a resource it does not list for a
        listed flavor is not limited.
        """
        node = self.queues.get(queue)
        if node is None:
            return None
        flavors = {fr[0] for fr in node.quotas}
        for fr, amount in request.items():
            if amount <= 0:
                continue
            if fr[0] not in flavors:
                return QuotaBlock(fr, node.name, "queue", "not_covered", amount, 0)
            if fr not in node.quotas:
                continue
            room = self.available(node, fr)
            if amount > room:
                return self._binding(node, fr, amount, room)
        return None

    def _binding(self, node: QuotaNode, fr: FlavorResource, amount: int, room: int) -> QuotaBlock:
        """Name the limit that stops ``amount`` of ``fr`` at ``node``: its own borrowing limit,
        or the nearest ancestor whose room runs out first (the root's quota at the top)."""
        current = node
        while current.parent is not None:
            limit = current.borrowing_limit(fr)
            if limit is not None:
                guaranteed = current.guaranteed(fr)
                used = max(0, current.usage.get(fr, 0) - guaranteed)
                own = current.subtree.get(fr, 0) - guaranteed - used + limit
                if own <= self.available(current.parent, fr):
                    return QuotaBlock(
                        fr, current.name, current.kind, "borrowing_limit", amount, max(0, room)
                    )
            current = current.parent
        kind = "nominal" if current.kind == "queue" else "cohort"
        return QuotaBlock(fr, current.name, current.kind, kind, amount, max(0, room))

    def within_nominal(self, queue: str, request: Request) -> bool:
        """True when ``queue`` stays within its nominal quota after admitting ``request``
        (the condition for reclaiming borrowed quota)."""
        node = self.queues.get(queue)
        if node is None:
            return True
        return all(
            node.usage.get(fr, 0) + amount <= node.subtree.get(fr, 0)
            for fr, amount in request.items()
            if fr in node.quotas and amount > 0
        )

    def borrowing(self, queue: str, fr: FlavorResource) -> int:
        """How much of ``fr`` ``queue`` uses above its nominal quota."""
        node = self.queues.get(queue)
        if node is None:
            return 0
        return max(0, node.usage.get(fr, 0) - node.subtree.get(fr, 0))

    def cohort_root(self, queue: str) -> str | None:
        """The root cohort of ``queue``'s tree, None when it is in no cohort."""
        return self._roots.get(queue)

    def dominant_share(self, queue: str, extra: Request | None = None) -> float:
        """KEP-1714 dominant resource share: the largest, over resources, of what the queue
        borrows above its nominal quota (after adding ``extra``) divided by what its cohort can
        lend, divided by the queue's weight. 0 when it borrows nothing; infinity at weight 0."""
        node = self.queues.get(queue)
        if node is None or node.parent is None:
            return 0.0
        borrowed: dict[str, int] = {}
        for fr, quota in node.subtree.items():
            over = (extra or {}).get(fr, 0) + node.usage.get(fr, 0) - quota
            if over > 0:
                borrowed[fr[1]] = borrowed.get(fr[1], 0) + over
        if not borrowed:
            return 0.0
        if node.weight == 0:
            return float("inf")
        lendable = self._lendable[queue]
        share = max(
            (amount / lendable[r] for r, amount in borrowed.items() if lendable.get(r, 0) > 0),
            default=0.0,
        )
        return share / node.weight

    # ------------------------------------------------------------------ edits

    def add(self, queue: str, request: Request) -> None:
        """Count ``request`` against ``queue`` and, past its guaranteed part, its cohorts."""
        node = self.queues.get(queue)
        if node is None:
            return
        for fr, amount in request.items():
            if fr in node.quotas and amount > 0:
                _add_usage(node, fr, amount)

    def remove(self, queue: str, request: Request) -> None:
        """The exact inverse of ``add``."""
        node = self.queues.get(queue)
        if node is None:
            return
        for fr, amount in request.items():
            if fr in node.quotas and amount > 0:
                _remove_usage(node, fr, amount)


def _root_name(node: QuotaNode) -> str | None:
    if node.parent is None:
        return None
    while node.parent is not None:
        node = node.parent
    return node.name


def _accumulate(node: QuotaNode) -> None:
    node.subtree = {fr: q.nominal for fr, q in node.quotas.items()}
    for child in node.children:
        _accumulate(child)
        for fr, amount in child.subtree.items():
            node.subtree[fr] = node.subtree.get(fr, 0) + amount - child.guaranteed(fr)


def _add_usage(node: QuotaNode, fr: FlavorResource, amount: int) -> None:
    local = node.local_available(fr)
    node.usage[fr] = node.usage.get(fr, 0) + amount
    if node.parent is not None and amount > local:
        _add_usage(node.parent, fr, amount - local)


def _remove_usage(node: QuotaNode, fr: FlavorResource, amount: int) -> None:
    stored_in_parent = node.usage.get(fr, 0) - node.guaranteed(fr)
    node.usage[fr] = node.usage.get(fr, 0) - amount
    if stored_in_parent > 0 and node.parent is not None:
        _remove_usage(node.parent, fr, min(amount, stored_in_parent))
