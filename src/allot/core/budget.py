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

What happens when the money runs out is the budget's ``on_exhausted``: ``hold`` (the default)
only keeps new jobs waiting, and a budget never preempts; ``preempt`` also stops the owner's
running jobs, through the preemption seam (``Preemption`` with strategy ``budget``: the
victim's grace period, then it is requeued). With ``preempt``, money spent ``S`` = ended runs
+ what the running jobs accrued (actual, not projected); a running job of rate ``r`` (money
per second) and grace period ``g`` costs ``r * g`` to stop (it runs through its grace); a job
already stopping costs ``r`` until its stop. Every job may be stopped, and a job kept must
still be stoppable after one more grace period, so a set ``K`` of charged running jobs may keep
running when

    S + stopping + sum over all charged jobs of r * g + sum over K of r * g < hard limit

If all of them cannot, the newest are preempted first until the rest can (jobs that cost
nothing are never preempted). A pending job of the owner starts only if it could be kept so
(``budget_exhausted`` otherwise), so a job is not started to be stopped at the next cycle.
Hence, while cycles come at most a grace period apart, the money spent never passes the hard
limit; further apart, by at most what the owner's jobs accrue over one cycle's gap.

Cache scope ``COST``: the verdict depends on the owner (tenant and user) and on the job's
expected run time (and its queue, whose grace period the test uses), besides the request
shape. Within a cycle it only gets worse: every job the cycle starts adds its projection to
what is committed. A budget block is never lifted by preemption (it is not quota).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from allot.core.checks import CacheScope, CheckBlock
from allot.core.explain import Explanation, FieldValue, Reason
from allot.core.model import JobId, JobSpec, RunningJob
from allot.core.preemption import Preemption, Strategy
from allot.core.quota.tree import Request
from allot.core.snapshot import Snapshot, Undo

Rate = tuple[float, float, float]  # money per second per milli-GPU, milli-core, MiB


class OnExhausted(StrEnum):
    """What a budget does once its money is gone: hold new jobs only, or also preempt."""

    HOLD = "hold"
    PREEMPT = "preempt"


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
    on_exhausted: OnExhausted = OnExhausted.HOLD


@dataclass(frozen=True, slots=True)
class Exhaustion:
    """A ``preempt`` budget that cannot keep all its running jobs: what was spent, what
    stopping and keeping them needs (the module docstring's left side), and the victims,
    newest first."""

    limit: BudgetLimit
    spent: float
    needed: float
    victims: tuple[RunningJob, ...]


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
    grace: float = 30.0  # the grace period of a queue without preemption rules
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

    def grace_of(self, snap: Snapshot, queue: str) -> float:
        """The grace period a job of ``queue`` gets when it is preempted."""
        if snap.quota is not None:
            spec = snap.quota.config.queue_by_name.get(queue)
            if spec is not None:
                return spec.preemption.grace_seconds
        return self.grace

    def _standing(
        self, snap: Snapshot, limit: BudgetLimit
    ) -> tuple[float, float, list[tuple[float, float, RunningJob]]]:
        """Money spent (ended runs and accrued), what the jobs already stopping still cost,
        and the charged jobs that run on as (cost to stop, rate, job), in no order."""
        spent = limit.spent
        stopping = 0.0
        kept: list[tuple[float, float, RunningJob]] = []
        graces: dict[str, float] = {}
        for job_id in snap.tenant_jobs.get(limit.tenant, ()):
            job = snap.running[job_id]
            if limit.user is not None and job.spec.user != limit.user:
                continue
            spent += limit.accrued.get(job_id, 0.0)
            rate = self.per_second(job.spec, job.flavor)
            if job.stopping_until is not None:
                stopping += rate * max(0.0, job.stopping_until - self.now)
            elif rate > 0.0:
                queue = job.spec.queue
                grace = graces.get(queue)
                if grace is None:
                    grace = graces[queue] = self.grace_of(snap, queue)
                kept.append((rate * grace, rate, job))
        return spent, stopping, kept

    def exhaustion(
        self, snap: Snapshot, limit: BudgetLimit, extra: float = 0.0
    ) -> Exhaustion | None:
        """For a ``preempt`` budget whose running jobs (plus a newest one costing ``extra``
        to stop) cannot all be kept, the figures and the victims; else None."""
        if limit.on_exhausted is not OnExhausted.PREEMPT:
            return None
        spent, stopping, kept = self._standing(snap, limit)
        total = spent + stopping + 2 * (sum(cost for cost, _, _ in kept) + extra)
        if total < limit.hard_limit:
            return None
        needed = total
        kept.sort(key=lambda c: (c[2].start_time, c[2].spec.id))  # oldest first
        victims: list[RunningJob] = []
        while kept and total >= limit.hard_limit:
            cost, _, job = kept.pop()
            victims.append(job)
            total -= cost
        return Exhaustion(limit, spent, needed, tuple(victims))

    def runway(self, snap: Snapshot, limit: BudgetLimit) -> float | None:
        """Seconds a ``preempt`` budget's running jobs can run on at their rates before it
        must preempt (0 when it must now); None when it never will (nothing is charged)."""
        if limit.on_exhausted is not OnExhausted.PREEMPT:
            return None
        spent, stopping, kept = self._standing(snap, limit)
        rate = sum(r for _, r, _ in kept)
        if rate <= 0.0:
            return None
        total = spent + stopping + 2 * sum(cost for cost, _, _ in kept)
        return max(0.0, limit.hard_limit - total) / rate

    def exhausted_fields(self, ex: Exhaustion) -> dict[str, FieldValue]:
        """What ``budget_exhausted`` explanations and events say."""
        limit = ex.limit
        fields: dict[str, FieldValue] = {
            "tenant": limit.tenant,
            "user": limit.user or "",
            "period": limit.period,
            "limit": round(limit.hard_limit, 6),
            "spent": round(ex.spent, 6),
            "needed": round(ex.needed, 6),
            "currency": self.currency,
        }
        if limit.renews is not None:
            fields["renews"] = limit.renews
        return fields

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
            if limit.on_exhausted is OnExhausted.PREEMPT:
                stop = self.per_second(spec, flavor) * self.grace_of(snap, spec.queue)
                ex = self.exhaustion(snap, limit, stop)
                if ex is not None:
                    why = Explanation(Reason.BUDGET_EXHAUSTED, self.exhausted_fields(ex))
                    return CheckBlock(self.name, why)
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


def budget_stops(snap: Snapshot, now: float) -> tuple[tuple[Preemption, ...], Undo]:
    """The running jobs that ``preempt`` budgets stop now (newest first per budget), marked
    stopping in ``snap``; and the undo that unmarks them. Pure but for that mark."""
    stops: list[Preemption] = []
    undos: list[Undo] = []
    for check in snap.checks:
        if not isinstance(check, BudgetCheck):
            continue
        for budgets in check.limits.values():
            for limit in budgets:
                ex = check.exhaustion(snap, limit)
                if ex is None:
                    continue
                why = Explanation(Reason.BUDGET_EXHAUSTED, check.exhausted_fields(ex))
                for job in ex.victims:
                    if job.stopping_until is not None or job.spec.id in snap.stopping:
                        continue  # another budget of the owner stops it already
                    stop_by = now + check.grace_of(snap, job.spec.queue)
                    stops.append(Preemption(job.spec.id, None, Strategy.BUDGET, stop_by, why))
                    undos.append(snap.mark_stopping(job.spec.id, stop_by))

    def undo() -> None:
        for each in reversed(undos):
            each()

    return tuple(stops), undo
