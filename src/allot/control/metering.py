"""Metering's use cases over the store: usage reports (``allot usage``), a job's cost
(``allot show``), the budgets' standing, and the budget admission check the loop adds to each
cycle, with the soft limit's warning.

Where the figures come from: ended runs from the store's usage ledger (summed by the database
through the ledger's daily rollup, ``Store.usage_sums``), runs still active from their start
until now; prices from the prices file, else the flavor catalog's list prices
(``allot.profile``'s ``price_per_gpu_hour``, found by the node's flavor name or alias), so
there is one price list.

Reports are scoped by the caller's role: a cluster admin sees every tenant; anyone else only
the tenants they belong to (asking for another is refused). Idle capacity is cluster-wide
knowledge (as the node list is), and its share follows what every tenant paid.

Budgets in the loop: what ended runs cost within each budget's period is read from the ledger
at most every ``refresh`` seconds; a run that ends in between keeps counting what it accrued
up to the last cycle that saw it, so nothing leaves the budget between two reads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from allot.config.errors import ConfigError
from allot.control.ports import Clock, Store
from allot.control.principal import ForbiddenError, Principal
from allot.control.records import JobRecord
from allot.core.checks import AdmissionCheck
from allot.metering.budgets import (
    Budget,
    BudgetBook,
    Period,
    budget_check,
    interval_cost,
    owns,
    period_of,
)
from allot.metering.ledger import Interval, check_groups, cuts_of, every, sums_of
from allot.metering.prices import PriceCatalog
from allot.metering.report import Capacity, IdleMode, UsageReport, build_report, price_sums
from allot.profile.catalog import Catalog, load_catalog

log = logging.getLogger("allot.control")
ACTOR = "metering"


@dataclass(frozen=True)
class MeteringConfig:
    """Prices (None: the flavor catalog's list prices), budgets, what idle cost becomes, and
    how often budgets re-read the ledger."""

    prices: PriceCatalog | None = None
    budgets: BudgetBook = field(default_factory=BudgetBook)
    idle: IdleMode = IdleMode.UNALLOCATED
    refresh: float = 15.0


@dataclass(frozen=True, slots=True)
class RunCost:
    """One run of a job: when, on which flavor, what it held (GPU-hours) and cost."""

    run_id: str
    flavor: str
    started_at: float
    ended_at: float | None
    gpu_hours: float
    cost: float


@dataclass(frozen=True, slots=True)
class JobCost:
    """A job's cost over all its runs, so far."""

    job_id: int
    currency: str
    gpu_hours: float
    cost: float
    runs: tuple[RunCost, ...]


@dataclass(frozen=True, slots=True)
class BudgetStanding:
    """A budget now: spent (ended runs and what running jobs accrued) against its limits."""

    budget: Budget
    period: Period
    spent: float
    currency: str

    @property
    def state(self) -> str:
        hard, soft = self.budget.hard_limit, self.budget.soft_limit
        if hard is not None and self.spent >= hard:
            return "exhausted"
        if soft is not None and self.spent >= soft:
            return "warning"
        return "ok"


@dataclass
class _Spending:
    """What ended runs cost within one budget's period, as last read, and the runs seen
    since."""

    spent: float = 0.0
    read_at: float | None = None
    period_start: float | None = None
    seen: dict[str, float] = field(default_factory=dict)  # run id -> accrued, last cycle
    carried: float = 0.0  # runs seen active that ended since the read
    warned: str | None = None  # the period whose soft limit was announced


def _intervals(active: Sequence[JobRecord], now: float) -> list[tuple[str, Interval]]:
    out = []
    for record in active:
        run = record.run
        if run is None:
            continue
        job = record.job
        out.append(
            (
                run.run_id,
                Interval(
                    record.id,
                    job.tenant,
                    job.user,
                    job.queue,
                    run.flavor,
                    run.started_at,
                    max(now, run.started_at),
                    sum(t.gpu_milli for t in job.tasks),
                    sum(t.cpu_milli for t in job.tasks),
                    sum(t.memory_mib for t in job.tasks),
                ),
            )
        )
    return out


class Metering:
    """Reports, job costs, budgets and the budget admission check (module docstring)."""

    def __init__(self, store: Store, clock: Clock, config: MeteringConfig | None = None) -> None:
        self.store = store
        self.clock = clock
        self.config = config or MeteringConfig()
        self._catalog: Catalog | None = None
        self._spending: dict[Budget, _Spending] = {}

    # ------------------------------------------------------------------ prices

    def _flavor_catalog(self) -> Catalog | None:
        if self._catalog is None:
            try:
                self._catalog = load_catalog()
            except ConfigError as err:
                log.warning("flavor catalog unreadable, no list prices: %s", err)
                self._catalog = Catalog(())
        return self._catalog

    def prices(self, flavors: Sequence[str] = ()) -> PriceCatalog:
        """The prices in force: the prices file's, completed with the flavor catalog's list
        prices for ``flavors`` (default: the nodes' flavors) it leaves unpriced."""
        chosen = self.config.prices or PriceCatalog()
        catalog = self._flavor_catalog()
        wanted = set(flavors) or {n.flavor for n in self.store.nodes()}
        defaults: dict[str, float] = {}
        for flavor in sorted(wanted):
            spec = None if catalog is None else catalog.find(flavor)
            if spec is not None and spec.price_per_gpu_hour is not None:
                defaults[flavor] = spec.price_per_gpu_hour
        return chosen.with_defaults(defaults)

    # ------------------------------------------------------------------ reports

    def report(
        self,
        by: Sequence[str],
        since: float,
        until: float | None = None,
        *,
        bucket: float | None = None,
        tenant: str | None = None,
        principal: Principal,
    ) -> UsageReport:
        """Usage and cost per group of ``by`` over ``[since, until)`` (until now by default),
        per time bucket of ``bucket`` seconds when given, of the tenants ``principal`` may
        read (of ``tenant`` only, when given). Raises ValueError / ForbiddenError."""
        groups = check_groups(by)
        now = self.clock.now()
        end = now if until is None else min(until, now)
        if end <= since:
            raise ValueError(f"since: must be before until ({end:.0f}), got {since:.0f}")
        if tenant is not None and not principal.may_read(tenant):
            raise ForbiddenError(f"tenant: {principal.user} may not read usage of {tenant!r}")
        visible = principal.visible_tenants()
        tenants = {tenant} if tenant is not None else visible
        nodes = self.store.nodes()
        active = [(rid, iv) for rid, iv in _intervals(self.store.active_jobs(), now)]
        # Only the prices file has effective dates: the catalog's list prices always hold.
        extra = (self.config.prices or PriceCatalog()).boundaries(since, end)
        if bucket is not None:
            extra += every(since, end, bucket)
        cuts = cuts_of(since, end, extra)
        ended = self.store.usage_sums(groups, cuts, tenants)
        running = [iv for _, iv in active if tenants is None or iv.tenant in tenants]
        sums = ended + sums_of(running, groups, cuts)
        used = {n.flavor for n in nodes} | {s.flavor for s in sums}
        prices = self.prices(sorted(used | {iv.flavor for _, iv in active}))
        capacity: dict[str, list[int]] = {}
        for n in nodes:
            slot = capacity.setdefault(n.flavor, [0, 0, 0])
            slot[0] += n.gpus * 1000
            slot[1] += n.cpu_milli
            slot[2] += n.memory_mib
        paid_on: dict[str, float] | None = None
        if tenants is not None and self.config.idle is IdleMode.SHARE:
            # Idle is shared by what every tenant paid, not only those the caller sees.
            every_sum = self.store.usage_sums(("flavor",), cuts) + sums_of(
                [iv for _, iv in active], ("flavor",), cuts
            )
            paid_on = {}
            for (_, flavor), got in price_sums(every_sum, prices).items():
                paid_on[flavor] = paid_on.get(flavor, 0.0) + got.cost
        return build_report(
            sums,
            by=groups,
            since=since,
            until=end,
            prices=prices,
            cuts=cuts,
            capacity=[Capacity(f, *c) for f, c in sorted(capacity.items())],
            idle_mode=self.config.idle,
            group_by_segment=bucket is not None,
            paid_on=paid_on,
        )

    def job_cost(self, record: JobRecord) -> JobCost:
        """What ``record``'s runs held and cost so far (read access is the caller's check)."""
        now = self.clock.now()
        job = record.job
        gpu = sum(t.gpu_milli for t in job.tasks)
        cpu = sum(t.cpu_milli for t in job.tasks)
        mem = sum(t.memory_mib for t in job.tasks)
        runs = self.store.runs_of(record.id)
        prices = self.prices([r.flavor for r in runs])
        out = []
        for run in runs:
            end = run.ended_at if run.ended_at is not None else max(now, run.started_at)
            out.append(
                RunCost(
                    run.run_id,
                    run.flavor,
                    run.started_at,
                    run.ended_at,
                    gpu / 1000 * (end - run.started_at) / 3600,
                    prices.cost(run.flavor, run.started_at, end, gpu, cpu, mem),
                )
            )
        return JobCost(
            record.id,
            prices.currency,
            sum(r.gpu_hours for r in out),
            sum(r.cost for r in out),
            tuple(out),
        )

    # ------------------------------------------------------------------ budgets

    def _read_spent(
        self, budget: Budget, period: Period, now: float, prices: PriceCatalog
    ) -> float:
        by = ("tenant", "user") if budget.user is not None else ("tenant",)
        cuts = cuts_of(period.start, now, prices.boundaries(period.start, now))
        if cuts[-1] <= cuts[0]:
            return 0.0
        sums = self.store.usage_sums(by, cuts, {budget.tenant})
        wanted = (budget.tenant,) if budget.user is None else (budget.tenant, budget.user)
        return sum(got.cost for (key, _), got in price_sums(sums, prices).items() if key == wanted)

    def _spent(
        self,
        budget: Budget,
        now: float,
        prices: PriceCatalog,
        running: Sequence[tuple[str, Interval]],
    ) -> tuple[float, float, Period]:
        """(ended runs' cost in the period, running runs' accrued cost, the period)."""
        period = period_of(budget, now)
        state = self._spending.setdefault(budget, _Spending())
        stale = state.read_at is None or now - state.read_at >= self.config.refresh
        if stale or (state.period_start != period.start and budget.window is None):
            state.spent = self._read_spent(budget, period, now, prices)
            state.read_at, state.period_start = now, period.start
            state.carried, state.seen = 0.0, {}
        accrued: dict[str, float] = {
            rid: interval_cost(prices, iv, period.start, now)
            for rid, iv in running
            if owns(budget, iv)
        }
        state.carried += sum(v for rid, v in state.seen.items() if rid not in accrued)
        state.seen = accrued
        return state.spent + state.carried, sum(accrued.values()), period

    def admission(self, now: float, active: Sequence[JobRecord]) -> tuple[AdmissionCheck, ...]:
        """The checks budgets add to this cycle (none without budgets); records a
        ``budget_warning`` event the first time in a period that a soft limit is passed."""
        book = self.config.budgets
        if not book.budgets:
            return ()
        running = _intervals(active, now)
        flavors = {n.flavor for n in self.store.nodes()}
        prices = self.prices(sorted(flavors | {iv.flavor for _, iv in running}))
        spent: dict[Budget, float] = {}
        for budget in book.budgets:
            closed, accrued, period = self._spent(budget, now, prices, running)
            spent[budget] = closed
            self._warn(budget, closed + accrued, period, prices.currency, now)
        check = budget_check(book, prices, spent, [iv for _, iv in running], flavors, now)
        return (check,) if check.limits else ()

    def _warn(self, budget: Budget, spent: float, period: Period, currency: str, at: float) -> None:
        soft = budget.soft_limit
        state = self._spending[budget]
        if soft is None or spent < soft or state.warned == period.label:
            return
        state.warned = period.label
        self.store.record_event(
            None,
            "budget_warning",
            at=at,
            actor=ACTOR,
            reason=(
                f"budget of {budget.owner} for {period.label}: {spent:.2f} {currency} spent,"
                f" past its soft limit of {soft:.2f}"
            ),
            data={
                "tenant": budget.tenant,
                "user": budget.user,
                "period": period.label,
                "spent": spent,
                "soft_limit": soft,
                "hard_limit": budget.hard_limit,
            },
        )

    def standings(self, *, principal: Principal) -> list[BudgetStanding]:
        """Every budget of a tenant ``principal`` may read, with what it has spent now."""
        now = self.clock.now()
        running = _intervals(self.store.active_jobs(), now)
        prices = self.prices()
        out = []
        for budget in self.config.budgets.budgets:
            if not principal.may_read(budget.tenant):
                continue
            period = period_of(budget, now)
            closed = self._read_spent(budget, period, now, prices)
            accrued = sum(
                interval_cost(prices, iv, period.start, now)
                for _, iv in running
                if owns(budget, iv)
            )
            out.append(BudgetStanding(budget, period, closed + accrued, prices.currency))
        return out
