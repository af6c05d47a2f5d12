"""Fair share on billed usage in the live loop (virtual time, real SQLite store): a tenant
that ran on a dearer flavor accrues more usage under ``fair_share_usage: billed`` and orders
behind; GPU-seconds (the default) see the two alike; a restart keeps the ordering."""

from __future__ import annotations

from pathlib import Path

import pytest

from allot.control.metering import MeteringConfig
from allot.core.model import Node
from allot.core.quota.config import QueueSpec, QuotaConfig, TenantSpec
from allot.core.quota.fair_share import FairShareUsage
from allot.metering.prices import Price, PriceCatalog
from virtual import VirtualPlant

NODES = [Node("h1", "H100", 2, 16_000, 65_536), Node("t1", "T4", 2, 16_000, 65_536)]
PRICES = MeteringConfig(prices=PriceCatalog((Price("H100", 4.0), Price("T4", 1.0))))


def _quotas(usage: FairShareUsage) -> QuotaConfig:
    return QuotaConfig(
        (TenantSpec("a"), TenantSpec("b")),
        (QueueSpec("qa", "a"), QueueSpec("qb", "b")),
        usage_half_life=6 * 3600.0,
        fair_share_usage=usage,
    )


def _order(root: Path, usage: FairShareUsage, *, restart: bool = False) -> list[str]:
    """a runs an hour on H100 and b an hour on T4 (the same GPU-seconds); then both queue
    whole-H100 jobs, a's first. Returns the tenants of the contested jobs in start order."""
    plant = VirtualPlant(root, NODES, _quotas(usage), policy="fairshare", metering=PRICES)
    try:
        for tenant, queue, flavor in (("a", "qa", "H100"), ("b", "qb", "T4")):
            for _ in range(2):
                plant.submit(tenant=tenant, queue=queue, flavors=(flavor,), runs_for=3600.0)
        plant.step()
        plant.step(3600.0)
        assert len(plant.started()) == 4
        contested = [
            plant.submit(tenant=t, queue=q, gpus=2, flavors=("H100",), runs_for=600.0)
            for t, q in (("a", "qa"), ("a", "qa"), ("b", "qb"), ("b", "qb"))
        ]
        tenant_of = {r.id: r.job.tenant for r in contested}
        if restart:
            plant.restart()
        before = len(plant.started())
        for _ in range(4):
            plant.step(600.0)
        return [tenant_of[j] for j in plant.started()[before:]]
    finally:
        plant.close()


def test_billed_usage_orders_the_dearer_tenant_behind(tmp_path: Path) -> None:
    billed = _order(tmp_path / "billed", FairShareUsage.BILLED)
    assert billed[0] == "b"  # a's hour on H100 was billed four times b's hour on T4


def test_gpu_seconds_see_both_tenants_alike(tmp_path: Path) -> None:
    # Equal GPU-seconds: a's job was submitted first and goes first.
    assert _order(tmp_path, FairShareUsage.GPU_SECONDS)[0] == "a"


@pytest.mark.parametrize("usage", list(FairShareUsage))
def test_a_restart_keeps_the_ordering(tmp_path: Path, usage: FairShareUsage) -> None:
    kept = _order(tmp_path / "kept", usage)
    restarted = _order(tmp_path / "restarted", usage, restart=True)
    assert restarted == kept
