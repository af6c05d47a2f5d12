"""What a replay cost: per tenant, the GPU-hours its runs held, their cost under a price
catalog, its share of idle capacity (OpenCost's sharing by cost, ``allot.metering.report``),
the work it got done and the cost per unit of that work; and, when budgets are replayed, how
long each tenant's jobs waited on a budget.

Work is the GPU-hours a finished job needed (GPUs x the run time the trace recorded), so the
cost per unit of work counts what preemptions and failures threw away and the idle capacity a
tenant is charged for. Budgets replay as they run live (``allot.core.budget``): a month is the
30-day span of virtual time it falls in (``period_of(calendar=False)``), what ended runs cost
in the period is summed as they end (a rolling window's sum is re-read once the window moved
an hour), and running jobs count what they accrued plus their projection. A budget with
``on_exhausted: preempt`` preempts as live; since the simulator cycles only on events, after
each cycle it asks for one more when the owner's running jobs, at their rates, would have
spent their runway (``BudgetCheck.runway``), so it preempts when the live loop would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from allot.core.budget import BudgetCheck
from allot.core.checks import AdmissionCheck
from allot.core.explain import Reason
from allot.core.model import Cluster
from allot.core.plan import Plan
from allot.core.snapshot import Snapshot
from allot.metering.budgets import (
    Budget,
    BudgetBook,
    budget_check,
    interval_cost,
    owns,
    period_of,
)
from allot.metering.ledger import Interval, cuts_of, sums_of
from allot.metering.prices import PriceCatalog
from allot.metering.report import Capacity, IdleMode, build_report
from allot.sim.result import SimResult


@dataclass(frozen=True, slots=True)
class TenantCost:
    """One tenant's figures over a replay."""

    tenant: str
    gpu_hours: float
    cost: float
    idle_cost: float
    work_gpu_hours: float  # GPU-hours finished jobs needed
    held_back_hours: float = 0.0  # job-hours spent waiting on a budget
    held_back_jobs: int = 0

    @property
    def cost_per_work_hour(self) -> float | None:
        total = self.cost + self.idle_cost
        return total / self.work_gpu_hours if self.work_gpu_hours > 0 else None


@dataclass(frozen=True)
class CostReport:
    """A replay's cost per tenant, the idle capacity and the currency."""

    currency: str
    tenants: tuple[TenantCost, ...]
    idle_gpu_hours: float
    capacity_gpu_hours: float
    idle_cost: float
    unallocated_idle_cost: float
    unpriced: tuple[str, ...]

    @property
    def idle_share(self) -> float:
        return self.idle_gpu_hours / self.capacity_gpu_hours if self.capacity_gpu_hours else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "currency": self.currency,
            "idle_gpu_hours": self.idle_gpu_hours,
            "capacity_gpu_hours": self.capacity_gpu_hours,
            "idle_share": self.idle_share,
            "idle_cost": self.idle_cost,
            "unallocated_idle_cost": self.unallocated_idle_cost,
            "unpriced": list(self.unpriced),
            "tenants": [
                {
                    "tenant": t.tenant,
                    "gpu_hours": t.gpu_hours,
                    "cost": t.cost,
                    "idle_cost": t.idle_cost,
                    "work_gpu_hours": t.work_gpu_hours,
                    "cost_per_work_gpu_hour": t.cost_per_work_hour,
                    "held_back_hours": t.held_back_hours,
                    "held_back_jobs": t.held_back_jobs,
                }
                for t in self.tenants
            ],
        }


def capacity_of(cluster: Cluster) -> list[Capacity]:
    """Each flavor's nodes together."""
    found: dict[str, list[int]] = {}
    for n in cluster.nodes:
        slot = found.setdefault(n.flavor, [0, 0, 0])
        slot[0] += n.gpus * 1000
        slot[1] += n.cpu_milli
        slot[2] += n.memory_mib
    return [Capacity(f, *v) for f, v in sorted(found.items())]


def cost_report(
    result: SimResult,
    cluster: Cluster,
    prices: PriceCatalog,
    *,
    idle: IdleMode = IdleMode.SHARE,
    budgets: SimBudgets | None = None,
) -> CostReport:
    """Price ``result``'s usage ledger from the start of the trace to its end."""
    start = 0.0
    end = max([result.end_time, *(iv.end for iv in result.usage)], default=0.0)
    cuts = cuts_of(start, max(end, start + 1.0), prices.boundaries(start, end))
    sums = sums_of(result.usage, ("tenant",), cuts)
    report = build_report(
        sums,
        by=("tenant",),
        since=start,
        until=cuts[-1],
        prices=prices,
        cuts=cuts,
        capacity=capacity_of(cluster),
        idle_mode=idle,
    )
    work: dict[str, float] = {}
    for job in result.jobs:
        if job.finish is not None and not job.timed_out:
            work[job.tenant] = work.get(job.tenant, 0.0) + job.gpu_milli / 1000 * job.runtime / 3600
    rows = {row.key[0]: row for row in report.rows}
    held = {} if budgets is None else budgets.held_back
    held_jobs = {} if budgets is None else budgets.held_back_jobs
    tenants = sorted(set(rows) | set(work) | set(held))
    return CostReport(
        prices.currency,
        tuple(
            TenantCost(
                t,
                rows[t].used.gpu_hours if t in rows else 0.0,
                rows[t].used.cost if t in rows else 0.0,
                rows[t].idle_cost if t in rows else 0.0,
                work.get(t, 0.0),
                held.get(t, 0.0) / 3600,
                len(held_jobs.get(t, ())),
            )
            for t in tenants
        ),
        report.idle.gpu_hours,
        report.capacity.gpu_hours,
        report.idle.cost,
        report.unallocated_idle_cost,
        report.unpriced,
    )


ROLLING_REFRESH = 3600.0
MIN_WAKE = 1.0  # seconds: the closest a budget asks for the next cycle
_WAITING = (Reason.BUDGET, Reason.BUDGET_EXHAUSTED)


@dataclass
class _Spent:
    period_start: float | None = None
    value: float = 0.0  # ended runs within the period
    read: int = 0  # ledger records folded so far


@dataclass
class SimBudgets:
    """Budgets replayed in a simulation: pass ``admission`` and ``on_plan`` to
    ``Simulation``. ``held_back`` sums, per tenant, the seconds its jobs waited on a budget
    (each cycle's budget-blocked jobs, until the next cycle)."""

    book: BudgetBook
    prices: PriceCatalog
    cluster: Cluster
    result: SimResult | None = None  # the ledger being written (set by ``attach``)
    held_back: dict[str, float] = field(default_factory=dict)
    held_back_jobs: dict[str, set[int]] = field(default_factory=dict)
    _spent: dict[Budget, _Spent] = field(default_factory=dict)
    _blocked: dict[int, str] = field(default_factory=dict)
    _last: float | None = None
    _check: BudgetCheck | None = None  # the latest cycle's, with the snapshot it read
    _snap: Snapshot | None = None

    def attach(self, result: SimResult) -> None:
        """Read the usage ledger the simulation writes into ``result``."""
        self.result = result

    def _spent_in(self, budget: Budget, now: float) -> float:
        assert self.result is not None
        period = period_of(budget, now, calendar=False)
        state = self._spent.setdefault(budget, _Spent())
        ledger = self.result.usage
        moved = state.period_start is None or (
            period.start - state.period_start >= ROLLING_REFRESH
            if budget.window is not None
            else period.start != state.period_start
        )
        if moved:
            # A new month; a rolling window is re-read from its start once it moved an hour.
            state.period_start, state.value, state.read = period.start, 0.0, 0
        for iv in ledger[state.read :]:
            if owns(budget, iv):
                state.value += interval_cost(self.prices, iv, period.start, now)
        state.read = len(ledger)
        return state.value

    def admission(self, now: float, snap: Snapshot) -> Sequence[AdmissionCheck]:
        """This cycle's budget check."""
        spent = {b: self._spent_in(b, now) for b in self.book.budgets}
        running = [
            Interval(j.spec.id, j.spec.tenant, j.spec.user, j.spec.queue, j.flavor,
                     j.start_time, now, j.spec.total.gpu_milli, j.spec.total.cpu_milli,
                     j.spec.total.memory_mib)
            for j in snap.running.values()
        ]  # fmt: skip
        check = budget_check(
            self.book, self.prices, spent, running, self.cluster.flavors, now, calendar=False
        )
        self._check, self._snap = check, snap
        return (check,) if check.limits else ()

    def on_plan(self, now: float, plan: Plan) -> float | None:
        """Count the time since the last cycle for the jobs it left waiting on a budget;
        returns when the first of their budgets renews, or sooner when a preempting budget's
        running jobs will have spent their runway (the simulation cycles then)."""
        if self._last is not None:
            for tenant in self._blocked.values():
                self.held_back[tenant] = self.held_back.get(tenant, 0.0) + now - self._last
        self._last = now
        self._blocked = {}
        renews: float | None = None
        for job_id, why in plan.pending.items():
            if why.reason in _WAITING:
                tenant = str(why.fields.get("tenant", ""))
                self._blocked[job_id] = tenant
                self.held_back_jobs.setdefault(tenant, set()).add(job_id)
                at = why.fields.get("renews")
                if isinstance(at, int | float) and (renews is None or at < renews):
                    renews = float(at)
        check, snap = self._check, self._snap
        if check is not None and snap is not None:
            for limits in check.limits.values():
                for limit in limits:
                    runway = check.runway(snap, limit)
                    if runway is not None:
                        wake = now + max(runway, MIN_WAKE)
                        renews = wake if renews is None else min(renews, wake)
        return renews
