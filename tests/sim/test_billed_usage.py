"""Billed fair-share usage in the simulator and its integral (``allot.metering.billing``): a
tenant holding more CPU accrues more under ``billed`` and orders behind; the closed form over
an interval equals step-by-step accrual across a price change; billed needs prices."""

from __future__ import annotations

import math

import pytest

from allot.core.model import Cluster, JobSpec, Node, Resources
from allot.core.policy import get_policy
from allot.core.quota.config import QueueSpec, QuotaConfig, TenantSpec
from allot.core.quota.fair_share import FairShareUsage, UsageHistory
from allot.metering.billing import billed_rate, billed_usage
from allot.metering.prices import BillingWeights, Price, PriceCatalog
from allot.sim.engine import Simulation, SimulationError
from allot.sim.workload import TraceJob

GIB = 1024
CLUSTER = Cluster((Node("n0", "A100", 8, 64_000, 512 * GIB),))
# One unit per GPU and one per core: what a job holds of CPU is billed too.
PRICES = PriceCatalog((Price("A100", 2.0),), BillingWeights(gpu=1.0, cpu=1.0))


def _job(job_id: int, tenant: str, submit: float, gpus: float, cpus: float) -> TraceJob:
    spec = JobSpec(
        job_id,
        tenant,
        f"{tenant}-user",
        f"{tenant}-queue",
        (Resources.of(gpus=gpus, cpus=cpus, memory_mib=4 * GIB),),
        submit_time=submit,
        runtime_estimate=3600.0,
    )
    return TraceJob(spec, 3600.0)


def _quotas(usage: FairShareUsage) -> QuotaConfig:
    return QuotaConfig(
        (TenantSpec("a"), TenantSpec("b")),
        (QueueSpec("a-queue", "a"), QueueSpec("b-queue", "b")),
        usage_half_life=6 * 3600.0,
        fair_share_usage=usage,
    )


def _first_contested(usage: FairShareUsage) -> str:
    """a and b each hold one GPU for an hour, a with 32 cores and b with one; then each asks
    for the whole node at once, a first. Returns whose contested job started first."""
    workload = [
        _job(1, "a", 0.0, 1, 32),
        _job(2, "b", 0.0, 1, 1),
        _job(3, "a", 3600.0, 8, 1),
        _job(4, "b", 3600.0, 8, 1),
    ]
    sim = Simulation(
        CLUSTER, workload, get_policy("fairshare"), quotas=_quotas(usage), billing=PRICES
    )
    jobs = {j.job_id: j for j in sim.run().jobs}
    return "a" if (jobs[3].start or 0.0) < (jobs[4].start or 0.0) else "b"


def test_billed_usage_orders_the_tenant_holding_more_behind() -> None:
    assert _first_contested(FairShareUsage.BILLED) == "b"


def test_gpu_seconds_are_the_default_and_see_both_alike() -> None:
    assert QuotaConfig().fair_share_usage is FairShareUsage.GPU_SECONDS
    assert _first_contested(FairShareUsage.GPU_SECONDS) == "a"


def test_billed_needs_prices() -> None:
    with pytest.raises(SimulationError, match="fair_share_usage: billed needs prices"):
        Simulation(CLUSTER, [], get_policy("fairshare"), quotas=_quotas(FairShareUsage.BILLED))


def test_the_integral_equals_step_by_step_accrual_across_a_price_change() -> None:
    prices = PriceCatalog((Price("A100", 2.0), Price("A100", 3.0, since=5000.0)), PRICES.weights)
    amounts = (2000.0, 4000.0, 0.0)  # 2 GPUs and 4 cores: 6 units
    half_life = 3600.0
    closed = billed_usage(prices, "A100", amounts, 1000.0, 9000.0, 12_000.0, half_life)
    history = UsageHistory(1000.0)
    for a, b in prices.segments(1000.0, 9000.0):
        rate = billed_rate(prices, "A100", *amounts, a)
        history = history.advanced(b, {"t": rate}, {}, half_life)
    stepped = history.decayed(12_000.0, half_life).tenants["t"]
    assert math.isclose(closed, stepped, rel_tol=1e-12)
    # Undecayed (a very long half-life) it is what metering charges.
    charged = prices.cost("A100", 1000.0, 9000.0, 2000, 4000)
    assert math.isclose(
        billed_usage(prices, "A100", amounts, 1000.0, 9000.0, 9000.0, 1e12), charged, rel_tol=1e-4
    )


def test_an_unpriced_flavor_accrues_nothing() -> None:
    assert billed_usage(PRICES, "T4", (1000.0, 0.0, 0.0), 0.0, 3600.0, 3600.0, 3600.0) == 0.0
