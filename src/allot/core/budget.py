"""The budget admission check: a job whose projected cost would pass the money left in its
tenant's (or its user's) budget waits.

Money committed to a budget = what ended runs cost within the budget's period (``spent``,
computed by the driver from the usage ledger) + for every running job of the tenant (of the
user, for a user's budget) what it accrued within the period (``accrued``, from the driver)
plus what its estimate (else time limit, else ``default_runtime``) still projects from now.
A pending job's projected cost on a flavor = its rate there x its run time (estimate, else
time limit, else ``default_runtime``). The job is refused on that flavor when
``committed + projected > hard limit``; a cheaper flavor it accepts may still pass.

Rates are money per second per milli-GPU, per milli-core and per MiB on each flavor: the
driver folds the flavor's price at ``now`` and the billing weights into them
(``allot.metering``), so the core needs no price list.

Cache scope ``COST``: the verdict depends on the owner (tenant and user) and on the job's
expected run time, besides the request shape. Within a cycle it only gets worse: every job the
cycle starts adds its projection to what is committed. A budget block is never lifted by
preemption (it is not quota), and a budget never preempts a running job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from allot.core.checks import CacheScope, CheckBlock
from allot.core.explain import Explanation, Reason
from allot.core.model import JobId, JobSpec, RunningJob
from allot.core.quota.tree import Request
from allot.core.snapshot import Snapshot

Rate = tuple[float, float, float]  # money per second per milli-GPU, milli-core, MiB


@dataclass(frozen=True)
class BudgetLimit:
    """One budget as of this cycle: whose (a tenant; a user of it when ``user`` is set), its
    hard limit, and what is already spent or accrued within its period."""

    tenant: str
    hard_limit: float
    spent: float = 0.0  # ended runs, within the period
    accrued: Mapping[JobId, float] = field(default_factory=dict)  # running jobs, so far
    user: str | None = None
    period: str = ""  # for people: "2026-12", "the last 30 days"
    renews: float | None = None  # when the period ends (a calendar period), else None


def run_time(spec: JobSpec, default_runtime: float) -> float:
    """The run time a projection uses: the estimate, else the time limit, else the default."""
    runtime = spec.expected_runtime
    return default_runtime if runtime is None else runtime


@dataclass(frozen=True)
class BudgetCheck:
    """Refuse a job whose projected cost passes what its budgets have left (see the module
    docstring). ``limits`` holds each tenant's budgets (the tenant's own and its users')."""

    limits: Mapping[str, tuple[BudgetLimit, ...]]
    rates: Mapping[str, Rate]
    now: float
    default_runtime: float = 3600.0
    currency: str = ""
    name: str = "budget"
    scope: CacheScope = CacheScope.COST
    reasons: frozenset[Reason] = frozenset({Reason.BUDGET})

    def per_second(self, spec: JobSpec, flavor: str) -> float:
        """What ``spec`` costs per second on ``flavor``."""
        rate = self.rates.get(flavor)
        if rate is None:
            return 0.0
        total = spec.total
        return rate[0] * total.gpu_milli + rate[1] * total.cpu_milli + rate[2] * total.memory_mib

    def projected(self, spec: JobSpec, flavor: str) -> float:
        """What ``spec`` would cost on ``flavor`` if it started now."""
        return self.per_second(spec, flavor) * run_time(spec, self.default_runtime)

    def _still(self, job: RunningJob) -> float:
        """What a running job's projection still adds from now on."""
        end = job.start_time + run_time(job.spec, self.default_runtime)
        if job.stopping_until is not None:
            end = min(end, job.stopping_until)
        return self.per_second(job.spec, job.flavor) * max(0.0, end - max(self.now, job.start_time))

    def committed(self, snap: Snapshot, limit: BudgetLimit) -> float:
        """What ``limit``'s budget has spent, accrued, and committed to its running jobs."""
        total = limit.spent
        for job_id in snap.tenant_jobs.get(limit.tenant, ()):
            job = snap.running[job_id]
            if limit.user is not None and job.spec.user != limit.user:
                continue
            total += limit.accrued.get(job_id, 0.0) + self._still(job)
        return total

    def block(
        self, snap: Snapshot, spec: JobSpec, flavor: str, request: Request
    ) -> CheckBlock | None:
        budgets = self.limits.get(spec.tenant)
        if not budgets:
            return None
        needed = self.projected(spec, flavor)
        if needed <= 0.0:
            return None
        for limit in budgets:
            if limit.user is not None and limit.user != spec.user:
                continue
            committed = self.committed(snap, limit)
            if committed + needed <= limit.hard_limit:
                continue
            fields: dict[str, str | int | float] = {
                "tenant": limit.tenant,
                "user": limit.user or "",
                "flavor": flavor,
                "period": limit.period,
                "limit": round(limit.hard_limit, 6),
                "committed": round(committed, 6),
                "needed": round(needed, 6),
                "remaining": round(max(0.0, limit.hard_limit - committed), 6),
                "currency": self.currency,
            }
            if limit.renews is not None:
                fields["renews"] = limit.renews
            return CheckBlock(self.name, Explanation(Reason.BUDGET, fields))
        return None
