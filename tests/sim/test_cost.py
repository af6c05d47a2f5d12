"""The simulator's cost report and budget replay: every run lands in the usage ledger once
(preempted runs included), cost per tenant is the ledger priced, allocated + idle equals the
cluster's capacity, and a replayed monthly budget holds a tenant back without letting it
spend past its hard limit."""

from __future__ import annotations

import pytest

from allot.core.budget import OnExhausted
from allot.core.model import Cluster, JobSpec, Node, Resources
from allot.core.policy import get_policy
from allot.metering.budgets import Budget, BudgetBook
from allot.metering.prices import Price, PriceCatalog
from allot.sim.cost import SimBudgets, cost_report
from allot.sim.engine import Simulation, with_estimates
from allot.sim.workload import TraceJob

CLUSTER = Cluster((Node("n1", "H100", 4, 64_000, 512 * 1024),))
PRICES = PriceCatalog((Price("H100", 2.0),))
DAY = 86400.0


def _job(job_id: int, tenant: str, gpus: int, hours: float, at: float = 0.0) -> TraceJob:
    spec = JobSpec(
        job_id, tenant, "u", "default", (Resources(gpus * 1000, 1000, 1024),), submit_time=at
    )
    return TraceJob(spec, hours * 3600)


def test_cost_per_tenant_is_the_ledger_priced_and_idle_closes_capacity() -> None:
    workload = [_job(1, "a", 2, 2.0), _job(2, "b", 1, 1.0), _job(3, "a", 4, 1.0, at=2 * 3600)]
    result = Simulation(CLUSTER, with_estimates(workload, "exact"), get_policy("fifo")).run()
    assert len(result.usage) == 3
    report = cost_report(result, CLUSTER, PRICES)
    by = {t.tenant: t for t in report.tenants}
    assert by["a"].gpu_hours == pytest.approx(8.0)
    assert by["a"].cost == pytest.approx(16.0)
    assert by["b"].cost == pytest.approx(2.0)
    assert report.capacity_gpu_hours == pytest.approx(12.0)  # 4 GPUs x 3 h
    assert by["a"].gpu_hours + by["b"].gpu_hours + report.idle_gpu_hours == pytest.approx(12.0)
    # idle (3 GPU-h, 6) shared by cost: a paid 16 of 18
    assert by["a"].idle_cost == pytest.approx(6.0 * 16 / 18)
    assert by["a"].cost_per_work_hour == pytest.approx((16 + 6.0 * 16 / 18) / 8.0)


def test_a_replayed_monthly_budget_holds_a_tenant_back_until_the_next_period() -> None:
    # a may spend 20 a 30-day period: 2 GPUs for 4 h is 16; the next 16 waits for day 30.
    workload = [_job(1, "a", 2, 4.0), _job(2, "a", 2, 4.0, at=60.0), _job(3, "b", 2, 4.0)]
    book = BudgetBook((Budget("a", hard_limit=20.0),))
    budgets = SimBudgets(book, PRICES, CLUSTER)
    sim = Simulation(
        CLUSTER,
        with_estimates(workload, "exact"),
        get_policy("allot"),
        admission=budgets.admission,
        on_plan=budgets.on_plan,
    )
    budgets.attach(sim.result)
    result = sim.run()
    starts = {r.job_id: r.start for r in result.jobs}
    assert starts[1] == 0.0
    assert starts[3] == 0.0
    assert starts[2] == pytest.approx(30 * DAY)
    report = cost_report(result, CLUSTER, PRICES, budgets=budgets)
    by = {t.tenant: t for t in report.tenants}
    assert by["a"].held_back_jobs == 1
    assert by["a"].held_back_hours == pytest.approx((30 * DAY - 60.0) / 3600)
    assert by["b"].held_back_jobs == 0
    first_period = sum(
        PRICES.cost(iv.flavor, iv.start, min(iv.end, 30 * DAY), iv.gpu_milli)
        for iv in result.usage
        if iv.tenant == "a" and iv.start < 30 * DAY
    )
    assert first_period <= 20.0


@pytest.mark.parametrize("mode", list(OnExhausted))
def test_a_preempting_budget_stops_the_job_in_the_replay(mode: OnExhausted) -> None:
    # 2 GPUs at 2 an hour is 4 an hour: a 10-hour job costs 40 against a budget of 20.
    spec = JobSpec(1, "a", "u", "default", (Resources(2000, 1000, 1024),), checkpointable=True)
    book = BudgetBook((Budget("a", hard_limit=20.0, on_exhausted=mode),))
    budgets = SimBudgets(book, PRICES, CLUSTER)
    sim = Simulation(
        CLUSTER,
        [TraceJob(spec, 10 * 3600)],
        get_policy("allot"),
        admission=budgets.admission,
        on_plan=budgets.on_plan,
    )
    budgets.attach(sim.result)
    result = sim.run()
    (record,) = result.jobs
    first_period = sum(
        PRICES.cost(iv.flavor, iv.start, min(iv.end, 30 * DAY), iv.gpu_milli)
        for iv in result.usage
        if iv.start < 30 * DAY
    )
    if mode is OnExhausted.HOLD:
        assert record.preemptions == 0
        assert record.finish == pytest.approx(10 * 3600)
        assert first_period == pytest.approx(40.0)
        return
    # Preempted when the money runs out, resumed from its checkpoint in each new period.
    assert record.preemptions == 2
    assert first_period <= 20.0
    assert record.finish is not None
    assert record.finish > 60 * DAY
    by = {t.tenant: t for t in cost_report(result, CLUSTER, PRICES, budgets=budgets).tenants}
    assert by["a"].held_back_jobs == 1
