"""Quota configuration as values: tenants, queues, the cohort tree, limits and preemption rules.

Nomenclature (Kueue's model, https://kueue.sigs.k8s.io/docs/concepts/cluster_queue/)
- ``FlavorResource``: a (flavor, resource) pair; resources are ``gpu`` (milli-GPU), ``cpu``
  (milli-cores) and ``memory`` (MiB).
- ``ResourceQuota``: the nominal quota of one flavor-resource, with an optional borrowing limit
  (how far above nominal the node may go by borrowing from its cohort; None = no limit) and
  lending limit (how much of its quota the node lends to its cohort; None = all of it).
- ``QueueSpec``: where jobs wait; owned by a tenant, optionally in a cohort. A queue with
  ``quotas=None`` is unconstrained outside a cohort, and a pure borrower inside one (no quota
  of its own: nominal 0 of everything its cohort tree has, so it lives on what others lend);
  otherwise it may only admit on the flavors it lists, and a resource it does not list for a
  flavor is unconstrained.
- ``CohortSpec``: an inner node of the tree; may have quotas of its own (capacity shared by its
  subtree) and limits towards its own parent cohort.
- ``PreemptionRules``: per queue, which victims its jobs may preempt.

``QuotaConfig.__post_init__`` checks the rules that make a tree well formed: unique names, known
tenants and parents, no cycles, non-negative amounts, and a queue's lending limit at most its
nominal quota; ``check_flavors`` checks the flavors against a cluster. Every error names the
field and the rule.

Lending limit rule (Kueue's ClusterQueue webhook, ``validateLendingLimit`` in
https://github.com/kubernetes-sigs/kueue/blob/main/pkg/webhooks/clusterqueue_webhook.go): a
queue's ``lending_limit`` must be ``<= nominal``, since a queue lends only quota it owns. Kueue
does not apply the rule to cohorts (their webhook sets ``enforceNominalGreaterThanLending`` to
false): a cohort's lending limit caps what its whole subtree lends, which may exceed the
cohort's own nominal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from allot.core.model import SpecError
from allot.core.quota.fair_share import FairShareUsage

RESOURCES = ("gpu", "cpu", "memory")
FlavorResource = tuple[str, str]


class WithinQueue(StrEnum):
    """May a job preempt jobs of its own queue? (Kueue ``withinClusterQueue``.)"""

    NEVER = "never"
    LOWER_PRIORITY = "lower_priority"
    # Lower priority, or the same priority and submitted later (Kueue LowerOrNewerEqualPriority)
    LOWER_OR_NEWER_EQUAL_PRIORITY = "lower_or_newer_equal_priority"


class BorrowWithinCohort(StrEnum):
    """May a queue preempt jobs of other queues of its cohort while it borrows to admit a job?
    (Kueue ``borrowWithinCohort``: only jobs of lower priority, at most a threshold.)"""

    NEVER = "never"
    LOWER_PRIORITY = "lower_priority"


class ReclaimWithinCohort(StrEnum):
    """May a queue under its nominal quota take back quota others borrowed from the cohort?
    (Kueue ``reclaimWithinCohort``.)"""

    NEVER = "never"
    LOWER_PRIORITY = "lower_priority"
    ANY = "any"


class FairShareRule(StrEnum):
    """Kueue KEP-1714 fair-sharing preemption strategies (rules S2-a and S2-b)."""

    LTE_FINAL_SHARE = "lte_final_share"  # preemptor share after <= target share after removal
    LT_INITIAL_SHARE = "lt_initial_share"  # preemptor share after < target share before removal


@dataclass(frozen=True, slots=True)
class PreemptionRules:
    """Which victims a queue's jobs may take; ``grace_seconds`` is what its own jobs get to
    checkpoint when they are the victims."""

    within_queue: WithinQueue = WithinQueue.LOWER_PRIORITY
    reclaim_within_cohort: ReclaimWithinCohort = ReclaimWithinCohort.ANY
    fair_share: tuple[FairShareRule, ...] = ()
    grace_seconds: float = 30.0
    borrow_within_cohort: BorrowWithinCohort = BorrowWithinCohort.NEVER
    # With ``borrow_within_cohort``: only victims whose priority is at most this (None: any
    # lower priority).
    max_priority_threshold: int | None = None
    # The queue's jobs are not preempted before they have run this long (Slurm's
    # ``PreemptExemptTime``): short-lived progress is protected.
    min_runtime_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.grace_seconds < 0:
            raise SpecError("preemption.grace_seconds", f"must be >= 0, got {self.grace_seconds}")
        if self.min_runtime_seconds < 0:
            raise SpecError(
                "preemption.min_runtime_seconds", f"must be >= 0, got {self.min_runtime_seconds}"
            )
        if (
            self.max_priority_threshold is not None
            and self.borrow_within_cohort is BorrowWithinCohort.NEVER
        ):
            raise SpecError(
                "preemption.max_priority_threshold",
                "applies only with borrow_within_cohort: lower_priority",
            )


@dataclass(frozen=True, slots=True)
class ResourceQuota:
    """Nominal quota and limits of one flavor-resource, in that resource's unit."""

    nominal: int = 0
    borrowing_limit: int | None = None
    lending_limit: int | None = None

    def check(self, where: str, *, owned: bool = False) -> None:
        """Raise ``SpecError`` naming ``where`` when an amount is negative, or, with ``owned``
        (a queue's quota), when the lending limit exceeds the nominal quota."""
        if self.nominal < 0:
            raise SpecError(f"{where}.nominal", f"must be >= 0, got {self.nominal}")
        if self.borrowing_limit is not None and self.borrowing_limit < 0:
            raise SpecError(f"{where}.borrowing_limit", f"must be >= 0, got {self.borrowing_limit}")
        if self.lending_limit is not None and self.lending_limit < 0:
            raise SpecError(f"{where}.lending_limit", f"must be >= 0, got {self.lending_limit}")
        if owned and self.lending_limit is not None and self.lending_limit > self.nominal:
            raise SpecError(
                f"{where}.lending_limit",
                f"must be <= nominal ({self.nominal}), got {self.lending_limit}: a queue lends"
                " only quota it owns",
            )


Quotas = Mapping[FlavorResource, ResourceQuota]


def _check_quotas(owner: str, quotas: Quotas, *, owned: bool) -> None:
    for (flavor, resource), quota in quotas.items():
        where = f"{owner}.quotas.{flavor}.{resource}"
        if resource not in RESOURCES:
            raise SpecError(where, f"unknown resource {resource!r}; known: {', '.join(RESOURCES)}")
        quota.check(where, owned=owned)


@dataclass(frozen=True, slots=True)
class TenantSpec:
    """A team or project. ``share`` is its entitlement for decayed-usage fair share."""

    name: str
    share: float = 1.0

    def __post_init__(self) -> None:
        if not self.share > 0:
            raise SpecError(f"tenant {self.name}.share", f"must be > 0, got {self.share}")


@dataclass(frozen=True, slots=True)
class CohortSpec:
    """An inner node of the quota tree."""

    name: str
    parent: str | None = None
    quotas: Quotas = field(default_factory=dict)
    weight: float = 1.0  # fair-sharing weight among its siblings (KEP-1714)

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise SpecError(f"cohort {self.name}.weight", f"must be >= 0, got {self.weight}")


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A leaf of the quota tree, where jobs wait."""

    name: str
    tenant: str
    cohort: str | None = None
    quotas: Quotas | None = None
    weight: float = 1.0  # fair-sharing weight (KEP-1714)
    preemption: PreemptionRules = field(default_factory=PreemptionRules)
    # Seconds a run's GPUs may stay idle before it is warned, then released (None: never).
    idle_timeout: float | None = None

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise SpecError(f"queue {self.name}.weight", f"must be >= 0, got {self.weight}")
        if self.idle_timeout is not None and not self.idle_timeout >= 60:
            raise SpecError(
                f"queue {self.name}.idle_timeout",
                f"must be at least 60 seconds, got {self.idle_timeout}",
            )


@dataclass(frozen=True, slots=True)
class QuotaConfig:
    """Tenants, queues and cohorts, the fair-share half-life (seconds) of decayed usage, and
    named priority classes (name -> priority; higher runs first and may preempt lower)."""

    tenants: tuple[TenantSpec, ...] = ()
    queues: tuple[QueueSpec, ...] = ()
    cohorts: tuple[CohortSpec, ...] = ()
    usage_half_life: float = 7 * 24 * 3600.0
    priority_classes: Mapping[str, int] = field(default_factory=dict)
    # priority class name -> seconds its jobs run before they may be preempted (Slurm's
    # ``PreemptExemptTime`` per class); the larger of this and the queue's own applies.
    min_runtime_by_class: Mapping[str, float] = field(default_factory=dict)
    # What fair share's decayed usage counts (``allot.core.quota.fair_share``).
    fair_share_usage: FairShareUsage = FairShareUsage.GPU_SECONDS

    def __post_init__(self) -> None:
        if not isinstance(self.fair_share_usage, FairShareUsage):
            allowed = ", ".join(m.value for m in FairShareUsage)
            raise SpecError(
                "fair_share_usage", f"must be one of {allowed}, got {self.fair_share_usage!r}"
            )
        _unique("tenants", (t.name for t in self.tenants))
        _unique("queues", (q.name for q in self.queues))
        _unique("cohorts", (c.name for c in self.cohorts))
        for name, value in self.priority_classes.items():
            if not name or not isinstance(value, int) or isinstance(value, bool):
                raise SpecError(
                    f"priority_classes.{name}", f"must map a name to an integer, got {value!r}"
                )
        for name, seconds in self.min_runtime_by_class.items():
            if name not in self.priority_classes:
                known = ", ".join(sorted(self.priority_classes)) or "none"
                raise SpecError(
                    f"min_runtime_by_class.{name}", f"unknown priority class; known: {known}"
                )
            if not seconds >= 0:
                raise SpecError(f"min_runtime_by_class.{name}", f"must be >= 0, got {seconds}")
        if not self.usage_half_life > 0:
            raise SpecError("usage_half_life", f"must be > 0 seconds, got {self.usage_half_life}")
        tenants = {t.name for t in self.tenants}
        cohorts = {c.name: c for c in self.cohorts}
        for queue in self.queues:
            if queue.tenant not in tenants:
                raise SpecError(f"queue {queue.name}.tenant", f"unknown tenant {queue.tenant!r}")
            if queue.cohort is not None and queue.cohort not in cohorts:
                raise SpecError(f"queue {queue.name}.cohort", f"unknown cohort {queue.cohort!r}")
            if queue.quotas is not None:
                _check_quotas(f"queue {queue.name}", queue.quotas, owned=True)
        for cohort in self.cohorts:
            if cohort.parent is not None and cohort.parent not in cohorts:
                raise SpecError(f"cohort {cohort.name}.parent", f"unknown cohort {cohort.parent!r}")
            _check_quotas(f"cohort {cohort.name}", cohort.quotas, owned=False)
        for cohort in self.cohorts:
            seen = [cohort.name]
            parent = cohort.parent
            while parent is not None:
                if parent in seen:
                    cycle = " -> ".join([*seen[seen.index(parent) :], parent])
                    raise SpecError(f"cohort {cohort.name}.parent", f"forms a cycle: {cycle}")
                seen.append(parent)
                parent = cohorts[parent].parent

    def min_runtime(self, queue: str, priority: int) -> float:
        """Seconds a job of ``queue`` at ``priority`` runs before it may be preempted."""
        spec = self.queue_by_name.get(queue)
        own = 0.0 if spec is None else spec.preemption.min_runtime_seconds
        by_class = max(
            (s for name, s in self.min_runtime_by_class.items()
             if self.priority_classes.get(name) == priority),
            default=0.0,
        )  # fmt: skip
        return max(own, by_class)

    @property
    def queue_by_name(self) -> dict[str, QueueSpec]:
        """Queues by name."""
        return {q.name: q for q in self.queues}

    def flavors(self) -> set[str]:
        """Every flavor named in a quota."""
        return {flavor for _, _, quotas in self._owners() for flavor, _ in quotas}

    def _owners(self) -> list[tuple[str, str, Quotas]]:
        """(kind, name, quotas) of every queue and cohort that has quotas."""
        owners: list[tuple[str, str, Quotas]] = [
            ("queue", q.name, q.quotas) for q in self.queues if q.quotas is not None
        ]
        return owners + [("cohort", c.name, c.quotas) for c in self.cohorts]

    def check_flavors(self, known: Iterable[str]) -> None:
        """Raise ``SpecError`` when a quota names a flavor the cluster does not have."""
        known_set = set(known)
        listed = ", ".join(sorted(known_set))
        for kind, name, quotas in self._owners():
            for flavor, resource in quotas:
                if flavor not in known_set:
                    raise SpecError(
                        f"{kind} {name}.quotas.{flavor}.{resource}",
                        f"unknown flavor {flavor!r}; the cluster has: {listed}",
                    )


def _unique(what: str, names: Iterable[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if not name:
            raise SpecError(what, "a name must not be empty")
        if name in seen:
            raise SpecError(what, f"name {name!r} appears twice")
        seen.add(name)
