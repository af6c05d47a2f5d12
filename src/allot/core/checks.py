"""Admission checks: the conditions a pending job must meet on a flavor before the cycle looks
for room there. Quota is the first; budgets, tenant rules and the like plug in beside it.

A check answers, for one job on one flavor, "may this job be admitted here now?": ``None`` for
yes, a ``CheckBlock`` (with the explanation the user sees) for no. The cycle runs the checks in
order, flavor by flavor (``allot.core.admission``), then placement.

Cache scope (Nomad's feasibility wrappers, scheduler/feasible.go, keep job-, task-group- and
node-level checks apart for the same reason): within a cycle the cycle reuses a job's failed
attempt for the next job with the same *admission key*. A check declares what its verdict
depends on besides the request shape: the queue (quota), the owner (a tenant rule), the owner
and the job's expected run time (a money budget: ``allot.core.budget``), or the job itself
(its dependencies, its affinities), and the key is made of everything any check declares. So
a verdict is never lent to a job it was not computed for.

Invariant every check keeps: within one cycle its verdict for a key can only get worse as the
cycle admits jobs (admissions consume quota, money, ...; nothing is given back until the next
cycle). That is what makes a cached "no" safe; a "yes" is never cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol

from allot.core.explain import Explanation, FieldValue, Reason
from allot.core.model import JobSpec
from allot.core.quota.tree import QuotaBlock, Request

if TYPE_CHECKING:
    from allot.core.snapshot import Snapshot


class CacheScope(IntEnum):
    """What a check's verdict depends on besides the request shape; wider scopes include
    the narrower ones."""

    SHAPE = 0  # the request shape only (tasks and accepted flavors)
    QUEUE = 1  # ... and the queue
    OWNER = 2  # ... and the tenant and user
    COST = 3  # ... and the job's expected run time (what a money budget projects)
    JOB = 4  # the job itself: never reused for another job


AdmissionKey = tuple[object, ...]


def admission_key(scope: CacheScope, spec: JobSpec) -> AdmissionKey:
    """The key under which a verdict about ``spec`` may be reused within a cycle; the request
    shape is always its last part (the pending index reads it there)."""
    if scope is CacheScope.SHAPE:
        return (spec.shape,)
    if scope is CacheScope.QUEUE:
        return (spec.queue, spec.shape)
    if scope is CacheScope.OWNER:
        return (spec.queue, spec.tenant, spec.user, spec.shape)
    if scope is CacheScope.COST:
        return (spec.queue, spec.tenant, spec.user, spec.expected_runtime, spec.shape)
    return ("job", spec.id)


@dataclass(frozen=True, slots=True)
class CheckBlock:
    """Why a check refused a job on one flavor. ``quota`` is set by the quota check: only a
    quota block can be lifted by preempting running jobs."""

    check: str
    explanation: Explanation
    quota: QuotaBlock | None = None

    @property
    def preemptible(self) -> bool:
        """True when preempting running jobs could lift this block."""
        return self.quota is not None


class AdmissionCheck(Protocol):
    """One admission check. ``name`` is what blocks report; ``scope`` what its verdict may be
    cached by; ``reasons`` the explanation codes it produces."""

    @property
    def name(self) -> str: ...

    @property
    def scope(self) -> CacheScope: ...

    @property
    def reasons(self) -> frozenset[Reason]: ...

    def block(
        self, snap: Snapshot, spec: JobSpec, flavor: str, request: Request
    ) -> CheckBlock | None:
        """None when ``spec`` may be admitted on ``flavor`` asking ``request``; else why not."""
        ...


def quota_explanation(spec: JobSpec, block: QuotaBlock) -> Explanation:
    """Why ``spec`` waits on quota. ``node``/``limit`` name where the room runs out;
    ``binding_node``/``binding_kind``/``binding_limit`` name the node of the tree whose limit
    binds: the same, or, when lending limits keep unused quota out of a cohort's pool, the
    lender withholding the most (with ``withheld``, the total they keep back)."""
    fields: dict[str, FieldValue] = {
        "queue": spec.queue,
        "flavor": block.fr[0],
        "resource": block.fr[1],
        "limit": block.limit,
        "node": block.node,
        "needed": block.needed,
        "available": block.available,
        "binding_node": block.node,
        "binding_kind": block.kind,
        "binding_limit": block.limit,
    }
    if block.lender is not None and block.lender_kind is not None:
        fields["binding_node"] = block.lender
        fields["binding_kind"] = block.lender_kind
        fields["binding_limit"] = "lending_limit"
        fields["withheld"] = block.withheld
    return Explanation(Reason.QUOTA, fields)


@dataclass(frozen=True, slots=True)
class QuotaCheck:
    """The queue's quota: the request must fit what the queue may still admit, borrowing
    included (Kueue's ClusterQueue admission; ``QuotaTree.block``)."""

    name: str = "quota"
    scope: CacheScope = CacheScope.QUEUE
    reasons: frozenset[Reason] = frozenset({Reason.QUOTA})

    def block(
        self, snap: Snapshot, spec: JobSpec, flavor: str, request: Request
    ) -> CheckBlock | None:
        tree = snap.quota
        if tree is None:
            return None
        found = tree.block(spec.queue, request)
        if found is None:
            return None
        return CheckBlock(self.name, quota_explanation(spec, found), found)


def default_checks(with_quota: bool) -> tuple[AdmissionCheck, ...]:
    """The checks every cycle runs: quota, when quotas are configured."""
    return (QuotaCheck(),) if with_quota else ()


def widest_scope(checks: Sequence[AdmissionCheck]) -> CacheScope:
    """The scope a verdict of all of ``checks`` (and placement, which is per shape) may be
    cached by."""
    return max((c.scope for c in checks), default=CacheScope.SHAPE)
