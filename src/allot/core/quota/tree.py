"""The quota tree at run time: usage, what each queue may still admit, and dominant shares.

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
and a cohort never hands out a child's guaranteed part. ``remove`` is the exact inverse of
``add``, so every what-if edit can be undone. Queues without quotas are not part of the tree:
they admit anything.

Dominant resource share (Kueue KEP-1714 fair sharing,
https://github.com/kubernetes-sigs/kueue/tree/main/keps/1714-fair-sharing, as implemented for
hierarchical cohorts in Kueue's pkg/cache/fair_sharing.go). For a node ``n`` with a parent,
a resource ``r`` and the flavors ``f``:

- ``borrowed(n, r) = sum over f of max(0, usage(n, f/r) - subtree(n, f/r))``;
- ``lendable(p, r) = sum over f of potential(p, f/r)``, with ``potential(root) = subtree(root)``
  and below a root ``potential(p) = min(guaranteed(p) + potential(parent(p)), subtree(p) +
  borrowing_limit(p))`` (no cap without a borrowing limit): what ``p`` could reach when idle;
- ``share(n) = max over r with lendable(parent(n), r) > 0 of borrowed(n, r) /
  lendable(parent(n), r) / weight(n)``; 0 when n borrows nothing (or has no parent), infinity
  at weight 0 (two such shares compare by the share at weight 1, ``share_key``). Cohorts have
  a weight too (1 unless configured).

Two queues are compared at their lowest common ancestor (Kueue
pkg/scheduler/preemption/fairsharing/least_common_ancestor.go): ``sides(a, b)`` are the two
children of that cohort on the paths to ``a`` and ``b`` (the queues themselves when they share
a parent), so both shares divide by the same ``lendable``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from allot.core.quota.config import FlavorResource, QuotaConfig, ResourceQuota

Request = Mapping[FlavorResource, int]
ShareOrder = tuple[float, float]  # (share, share at weight 1 when the share is infinite)


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
    potential: dict[FlavorResource, int] = field(default_factory=dict)  # fixed by the config
    lendable: dict[str, int] = field(default_factory=dict)  # its parent's, per resource

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

    def ancestors(self) -> list[QuotaNode]:
        """This node, then its parent, up to the root."""
        path = [self]
        node = self.parent
        while node is not None:
            path.append(node)
            node = node.parent
        return path

    @property
    def label(self) -> str:
        """``queue X`` or ``cohort Y``, for messages."""
        return f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class QuotaBlock:
    """Why a request does not fit: the flavor-resource, the node whose limit binds, what the
    request needs and what that node can still give. When a cohort's pool is short while
    lending limits keep unused quota of other nodes back, ``lender`` names the node whose
    lending limit withholds the most and ``withheld`` the total they keep back."""

    fr: FlavorResource
    node: str
    kind: str  # "queue" or "cohort"
    limit: str  # "nominal", "borrowing_limit", "cohort", "not_covered"
    needed: int
    available: int
    lender: str | None = None
    lender_kind: str | None = None
    withheld: int = 0


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
            self.cohorts[c.name].weight = c.weight
            if c.parent is not None:
                node = self.cohorts[c.name]
                node.parent = self.cohorts[c.parent]
                node.parent.children.append(node)
        borrowers = []
        for q in config.queues:
            if q.quotas is None and q.cohort is None:
                self.unconstrained.add(q.name)
                continue
            node = QuotaNode(q.name, "queue", dict(q.quotas or {}), weight=q.weight)
            self.queues[q.name] = node
            if q.cohort is not None:
                node.parent = self.cohorts[q.cohort]
                node.parent.children.append(node)
            if q.quotas is None:
                borrowers.append(node)
        for node in borrowers:
            # A pure borrower: nominal 0 of everything its tree has quota for.
            node.quotas = {fr: ResourceQuota(0) for fr in _tree_resources(node.ancestors()[-1])}
        roots = [c for c in self.cohorts.values() if c.parent is None]
        roots += [q for q in self.queues.values() if q.parent is None]
        for root in roots:
            _accumulate(root)
            _potentials(root, root)
        # Fixed by the configuration, and the preemption search asks for it often.
        self._roots: dict[str, str | None] = {q: _root_name(n) for q, n in self.queues.items()}

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

    def fits(self, queue: str, request: Request) -> bool:
        """True when ``request`` fits ``queue``'s quota now (``block`` is None), without
        naming the limit that binds."""
        node = self.queues.get(queue)
        if node is None:
            return True
        for fr, amount in request.items():
            if amount <= 0:
                continue
            if fr not in node.quotas:
                if not self.covers(queue, fr[0]):
                    return False
                continue
            if amount > self.available(node, fr):
                return False
        return True

    def covers(self, queue: str, flavor: str) -> bool:
        """True when ``queue`` may admit on ``flavor`` (no quotas, or quotas listing it)."""
        node = self.queues.get(queue)
        return node is None or any(fr[0] == flavor for fr in node.quotas)

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
        or the nearest ancestor whose room runs out first (the root's quota at the top), with
        the lending limits that keep unused quota out of that root's pool."""
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
        if current.kind == "queue":
            return QuotaBlock(fr, current.name, "queue", "nominal", amount, max(0, room))
        path = {id(n) for n in node.ancestors()}
        withheld = sorted(_withheld(current, path, fr), key=lambda w: (-w[0], w[1].name))
        lender = withheld[0][1] if withheld else None
        return QuotaBlock(
            fr,
            current.name,
            "cohort",
            "cohort",
            amount,
            max(0, room),
            None if lender is None else lender.name,
            None if lender is None else lender.kind,
            sum(w for w, _ in withheld),
        )

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

    def share(self, node: QuotaNode, extra: Request | None = None) -> float:
        """The dominant resource share of ``node`` (module docstring), with ``extra`` added to
        its own usage."""
        return self.share_key(node, extra)[0]

    def share_key(self, node: QuotaNode, extra: Request | None = None) -> tuple[float, float]:
        """(share, share at weight 1): compares shares so that two nodes of weight 0, both
        infinite, are told apart by what they borrow."""
        if node.parent is None:
            return 0.0, 0.0
        borrowed: dict[str, int] = {}
        for fr, quota in node.subtree.items():
            over = (extra or {}).get(fr, 0) + node.usage.get(fr, 0) - quota
            if over > 0:
                borrowed[fr[1]] = borrowed.get(fr[1], 0) + over
        if not borrowed:
            return 0.0, 0.0
        lendable = node.lendable
        raw = max(
            (amount / lendable[r] for r, amount in borrowed.items() if lendable.get(r, 0) > 0),
            default=0.0,
        )
        if node.weight == 0:
            return float("inf"), raw
        return raw / node.weight, raw

    def share_order(self, node: QuotaNode, extra: Request | None = None) -> ShareOrder:
        """``share`` as a comparable key: shares as they are, except that two infinite ones
        (weight 0 on both sides) compare by the share at weight 1, not infinity with
        infinity."""
        weighted, raw = self.share_key(node, extra)
        return (weighted, raw if weighted == float("inf") else 0.0)

    def dominant_share_order(self, queue: str, extra: Request | None = None) -> ShareOrder:
        """``share_order`` of ``queue`` after adding ``extra``; (0, 0) outside any cohort."""
        node = self.queues.get(queue)
        return (0.0, 0.0) if node is None else self.share_order(node, extra)

    def dominant_share(self, queue: str, extra: Request | None = None) -> float:
        """The dominant resource share of ``queue`` after adding ``extra`` to its usage; 0 for
        a queue outside any cohort or without quotas."""
        node = self.queues.get(queue)
        return 0.0 if node is None else self.share(node, extra)

    def sides(self, queue: str, other: str) -> tuple[QuotaNode, QuotaNode] | None:
        """The children of the lowest common ancestor of two queues on the paths to ``queue``
        and to ``other``; None when they are the same queue or in different trees."""
        a, b = self.queues.get(queue), self.queues.get(other)
        if a is None or b is None or a is b:
            return None
        mine = a.ancestors()
        index = {id(n): k for k, n in enumerate(mine)}
        below = b
        for ancestor in b.ancestors()[1:]:
            k = index.get(id(ancestor))
            if k is not None:
                return mine[k - 1], below
            below = ancestor
        return None

    def queues_under(self, node: QuotaNode) -> list[str]:
        """The queues in ``node``'s subtree (``node`` itself when it is a queue)."""
        if node.kind == "queue":
            return [node.name]
        return [q for child in node.children for q in self.queues_under(child)]

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


def _tree_resources(node: QuotaNode) -> set[FlavorResource]:
    """Every flavor-resource some node under ``node`` has a quota for."""
    found = set(node.quotas)
    for child in node.children:
        found |= _tree_resources(child)
    return found


def _root_name(node: QuotaNode) -> str | None:
    if node.parent is None:
        return None
    return node.ancestors()[-1].name


def _accumulate(node: QuotaNode) -> None:
    node.subtree = {fr: q.nominal for fr, q in node.quotas.items()}
    for child in node.children:
        _accumulate(child)
        for fr, amount in child.subtree.items():
            node.subtree[fr] = node.subtree.get(fr, 0) + amount - child.guaranteed(fr)


def _potentials(node: QuotaNode, root: QuotaNode) -> None:
    """Fill ``potential`` (what each node could reach when idle) and ``lendable`` (what each
    node's parent could reach, per resource) below ``node``; parents before children."""
    for fr in root.subtree:
        if node.parent is None:
            reach = node.subtree.get(fr, 0)
        else:
            reach = node.guaranteed(fr) + node.parent.potential.get(fr, 0)
            limit = node.borrowing_limit(fr)
            if limit is not None:
                reach = min(reach, node.subtree.get(fr, 0) + limit)
        node.potential[fr] = reach
        if node.parent is not None:
            resource = fr[1]
            node.lendable[resource] = node.lendable.get(resource, 0) + node.parent.potential[fr]
    for child in node.children:
        _potentials(child, root)


def _withheld(node: QuotaNode, path: set[int], fr: FlavorResource) -> list[tuple[int, QuotaNode]]:
    """(unused guaranteed quota, node) of every node below ``node`` off ``path`` whose lending
    limit keeps some of its unused quota from the rest of the tree."""
    found: list[tuple[int, QuotaNode]] = []
    for child in node.children:
        if id(child) not in path:
            kept = child.local_available(fr)
            if kept > 0:
                found.append((kept, child))
        found.extend(_withheld(child, path, fr))
    return found


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
