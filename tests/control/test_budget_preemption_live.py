"""Budgets that preempt, in the live loop (virtual time, real SQLite store): once tenant a's
money runs short its newest running job is preempted with the usual grace period and
requeued, the event and ``allot explain`` say ``budget_exhausted`` with the figures, and the
money spent stays within the limit; a ``hold`` budget lets its running jobs finish."""

from __future__ import annotations

from pathlib import Path

from allot.control.metering import MeteringConfig
from allot.control.principal import Principal
from allot.core.budget import OnExhausted
from allot.core.model import JobState, Node
from allot.core.quota.config import QueueSpec, QuotaConfig, TenantSpec
from allot.metering.budgets import Budget, BudgetBook
from allot.metering.prices import Price, PriceCatalog
from virtual import VirtualPlant

NODES = [Node("h1", "H100", 2, 16_000, 65_536)]
QUOTAS = QuotaConfig((TenantSpec("a"),), (QueueSpec("qa", "a"),))
LIMIT = 10.0  # 36 per GPU-hour: 0.01 per second per job, 0.30 to stop one (30 s grace)


def _plant(root: Path, mode: OnExhausted) -> VirtualPlant:
    book = BudgetBook((Budget("a", hard_limit=LIMIT, on_exhausted=mode),), default_runtime=60.0)
    prices = PriceCatalog((Price("H100", 36.0),))
    return VirtualPlant(root, NODES, QUOTAS, metering=MeteringConfig(prices, book, refresh=0.0))


def _spent(plant: VirtualPlant) -> float:
    admin = Principal.admin("root")
    (standing,) = plant.control.metering.standings(principal=admin)
    return standing.spent


def test_the_newest_job_is_preempted_and_waits_with_the_figures(tmp_path: Path) -> None:
    plant = _plant(tmp_path, OnExhausted.PREEMPT)
    try:
        older = plant.submit(tenant="a", queue="qa")
        newer = plant.submit(tenant="a", queue="qa")
        plant.step()
        assert plant.started() == [older.id, newer.id]
        # 0.02 a second plus 1.20 kept back to stop both and keep them stoppable: at 440 s
        # the newer one must go.
        for _ in range(7):
            plant.step(60.0)
        assert plant.store.get_job(newer.id).state is JobState.RUNNING
        plant.step(20.0)  # t = 440
        assert plant.store.get_job(newer.id).state is JobState.RUNNING  # in its grace
        assert plant.store.get_job(older.id).state is JobState.RUNNING
        exhausted = [e for e in plant.store.events(newer.id) if e.kind == "budget_exhausted"]
        assert len(exhausted) == 1
        assert exhausted[0].data["limit"] == LIMIT
        assert "budget of tenant a" in exhausted[0].reason
        plant.step(30.0)  # the grace period is over: stopped and requeued, not failed
        plant.step(1.0)
        assert plant.store.get_job(newer.id).state is JobState.PENDING
        why = plant.control.explain(newer.id, principal=Principal.admin("root"))
        assert why.reason == "budget_exhausted"
        assert why.fields["limit"] == LIMIT
        for _ in range(10):  # the older one follows; neither starts again this month
            plant.step(30.0)
        assert plant.store.get_job(older.id).state is JobState.PENDING
        assert plant.store.get_job(newer.id).state is JobState.PENDING
        assert _spent(plant) <= LIMIT
    finally:
        plant.close()


def test_a_hold_budget_never_preempts(tmp_path: Path) -> None:
    plant = _plant(tmp_path, OnExhausted.HOLD)
    try:
        jobs = [plant.submit(tenant="a", queue="qa") for _ in range(2)]
        plant.step()
        for _ in range(20):
            plant.step(60.0)
        assert all(plant.store.get_job(j.id).state is JobState.RUNNING for j in jobs)
        assert _spent(plant) > LIMIT  # running jobs finish even past the limit
        assert not any(r.plan.preemptions for r in plant.reports)
    finally:
        plant.close()


def test_the_budget_says_what_it_does_at_its_hard_limit(tmp_path: Path) -> None:
    from allot.api.routes.usage import budget_out

    for mode in OnExhausted:
        plant = _plant(tmp_path / mode.value, mode)
        try:
            (standing,) = plant.control.metering.standings(principal=Principal.admin("root"))
            assert budget_out(standing).on_exhausted == mode.value
        finally:
            plant.close()
