"""Metering on the live loop in virtual time over a real SQLite store: the ledger's report
matches the runs (across a preemption's requeue and a restart), a job's cost splits at a
price change, a hard budget holds a job back with the figures in ``allot explain``, and the
soft limit leaves one warning event per period."""

from __future__ import annotations

from pathlib import Path

import pytest

from allot.control.metering import Metering, MeteringConfig
from allot.control.principal import Principal, Role
from allot.core.model import JobState, Node
from allot.core.quota.config import QueueSpec, QuotaConfig, TenantSpec
from allot.metering.budgets import Budget, BudgetBook
from allot.metering.ledger import Interval, Sums, cuts_of, sums_of
from allot.metering.prices import Price, PriceCatalog
from allot.metering.report import IdleMode
from virtual import VirtualPlant

QUOTAS = QuotaConfig(
    (TenantSpec("a"), TenantSpec("b")), (QueueSpec("qa", "a"), QueueSpec("qb", "b"))
)
NODE = [Node("n1", "H100", 4, 16_000, 65_536)]
BIG = [Node("n1", "H100", 8, 16_000, 65_536)]
ADMIN = Principal.admin("root")


def _plant(root: Path, config: MeteringConfig, nodes: list[Node] = NODE) -> VirtualPlant:
    plant = VirtualPlant(root, nodes, QUOTAS)
    _meter(plant, config)
    return plant


def _meter(plant: VirtualPlant, config: MeteringConfig) -> None:
    plant.control.metering = Metering(plant.store, plant.clock, config)
    plant.loop.admission = plant.control.metering.admission


def test_the_report_is_the_ledger_priced_across_a_restart(tmp_path: Path) -> None:
    config = MeteringConfig(PriceCatalog((Price("H100", 2.0),)), idle=IdleMode.SHARE)
    plant = _plant(tmp_path, config)
    try:
        t0 = plant.clock.now()
        plant.submit(tenant="a", queue="qa", gpus=2, runs_for=3600.0)
        plant.submit(tenant="b", queue="qb", gpus=1, runs_for=1800.0, user="bob")
        plant.step()
        plant.step(1800.0)
        plant.restart()
        _meter(plant, config)
        plant.step(1800.0)
        plant.step(1800.0)  # both ended; the last half hour is idle
        report = plant.control.metering.report(("tenant",), t0, principal=ADMIN)
        rows = {r.key: r for r in report.rows}
        assert rows["a",].used.gpu_hours == pytest.approx(2.0)
        assert rows["b",].used.gpu_hours == pytest.approx(0.5)
        assert rows["a",].used.cost == pytest.approx(4.0)
        assert report.capacity.gpu_hours == pytest.approx(6.0)
        assert report.idle.gpu_hours == pytest.approx(3.5)
        assert report.total_cost == pytest.approx(12.0)  # all capacity paid for, idle shared
        member = Principal("bob", {"b": Role.MEMBER})
        mine = plant.control.metering.report(("tenant", "user"), t0, principal=member)
        assert [r.key for r in mine.rows] == [("b", "bob")]
        # the SQL sums equal the intervals' sums
        records = plant.store.usage()
        intervals = [
            Interval(u.job_id, u.tenant, u.user, u.queue, u.flavor, u.started_at, u.ended_at,
                     u.gpu_milli, u.cpu_milli, u.memory_mib)
            for u in records
        ]  # fmt: skip
        cuts = cuts_of(t0, plant.clock.now(), [t0 + 1000.0, t0 + 2500.0])

        def table(sums: list[Sums]) -> dict[object, tuple[float, float, float]]:
            return {
                (s.key, s.flavor, s.segment): (
                    s.gpu_milli_seconds,
                    s.cpu_milli_seconds,
                    s.memory_mib_seconds,
                )
                for s in sums
            }

        from_sql = table(plant.store.usage_sums(("tenant", "user"), cuts))
        from_intervals = table(sums_of(intervals, ("tenant", "user"), cuts))
        assert from_sql.keys() == from_intervals.keys()
        for key, amounts in from_sql.items():
            assert amounts == pytest.approx(from_intervals[key])
    finally:
        plant.close()


def test_a_job_cost_splits_at_a_price_change(tmp_path: Path) -> None:
    plant = VirtualPlant(tmp_path, NODE, QUOTAS)
    t0 = plant.clock.now()
    prices = PriceCatalog((Price("H100", 1.0), Price("H100", 3.0, since=t0 + 1800.0)))
    _meter(plant, MeteringConfig(prices))
    try:
        job = plant.submit(tenant="a", queue="qa", gpus=1, runs_for=3600.0)
        plant.step()
        plant.step(3600.0)
        cost = plant.control.metering.job_cost(plant.store.get_job(job.id))
        assert cost.cost == pytest.approx(0.5 * 1.0 + 0.5 * 3.0)
        assert [r.ended_at for r in cost.runs] == [t0 + 3600.0]
    finally:
        plant.close()


def test_a_hard_budget_holds_a_job_back_and_says_why(tmp_path: Path) -> None:
    book = BudgetBook((Budget("a", hard_limit=9.0, soft_limit=5.0),))
    plant = _plant(tmp_path, MeteringConfig(PriceCatalog((Price("H100", 2.0),)), book), BIG)
    try:
        first = plant.submit(tenant="a", queue="qa", gpus=2, runs_for=3600.0)  # 4
        second = plant.submit(tenant="a", queue="qa", gpus=2, runs_for=3600.0)  # 4
        # As large as the others (the default policy starts smaller work first): 8 + 4 > 9.
        third = plant.submit(tenant="a", queue="qa", gpus=2, runs_for=3600.0)
        other = plant.submit(tenant="b", queue="qb", gpus=0.5, runs_for=60.0)
        plant.step()
        assert plant.store.get_job(first.id).state is JobState.RUNNING
        assert plant.store.get_job(second.id).state is JobState.RUNNING
        assert plant.store.get_job(other.id).state is JobState.RUNNING
        assert plant.store.get_job(third.id).state is JobState.PENDING
        why = plant.control.explain(third.id, principal=ADMIN)
        assert why.reason == "budget"
        assert "would pass the budget of tenant a" in why.message
        assert "8.00 of 9.00" in why.message
        plant.step(2000.0)  # 2 x 2 GPUs x 2000 s: 4.4 spent, no warning yet
        plant.step(1000.0)  # 6.7 spent: past the soft limit
        plant.step(600.0)
        warnings = [e for e in plant.store.events() if e.kind == "budget_warning"]
        assert len(warnings) == 1
        assert warnings[0].data["tenant"] == "a"
        standing = plant.control.metering.standings(principal=ADMIN)
        assert standing[0].state == "warning"
        assert standing[0].spent == pytest.approx(8.0)  # both ended: 8 spent, 4 more is 12
        assert plant.store.get_job(third.id).state is JobState.PENDING
    finally:
        plant.close()
