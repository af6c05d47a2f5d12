"""The live loop in virtual time (``virtual.VirtualPlant``): fair-share history survives a
restart, pushed exits alone keep the loop going, and every cycle's plan is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from allot.core.model import JobState, Node
from allot.core.quota.config import QueueSpec, QuotaConfig, TenantSpec
from virtual import VirtualPlant

TWO_TENANTS = QuotaConfig(
    (TenantSpec("a"), TenantSpec("b")),
    (QueueSpec("qa", "a"), QueueSpec("qb", "b")),
    usage_half_life=6 * 3600.0,
)
NODE = [Node("n1", "H100", 2, 16_000, 65_536)]


def _fair_share_scenario(root: Path, *, restart: bool) -> list[tuple[int, str]]:
    """Tenant a uses the machine for two hours; then a and b queue two jobs each, a's first.
    Returns (job, tenant) in start order for the contested jobs."""
    plant = VirtualPlant(root, NODE, TWO_TENANTS, policy="fairshare")
    try:
        for _ in range(4):
            plant.submit(tenant="a", queue="qa", runs_for=3600.0)
        plant.step()
        for _ in range(4):
            plant.step(1800.0)
        plant.step(1800.0)
        assert len(plant.started()) == 4
        contested = [
            plant.submit(tenant="a", queue="qa", runs_for=600.0),
            plant.submit(tenant="a", queue="qa", runs_for=600.0),
            plant.submit(tenant="b", queue="qb", runs_for=600.0),
            plant.submit(tenant="b", queue="qb", runs_for=600.0),
        ]
        tenant_of = {r.id: r.job.tenant for r in contested}
        if restart:
            plant.restart()
        before = len(plant.started())
        for _ in range(4):
            plant.step(600.0)
        return [(j, tenant_of[j]) for j in plant.started()[before:]]
    finally:
        plant.close()


def test_a_restart_changes_no_fair_share_ordering(tmp_path: Path) -> None:
    kept = _fair_share_scenario(tmp_path / "kept", restart=False)
    restarted = _fair_share_scenario(tmp_path / "restarted", restart=True)
    assert restarted == kept
    # b has used nothing, so its jobs go first although a's were submitted first.
    assert [tenant for _, tenant in kept] == ["b", "b", "a", "a"]


def test_pushed_exits_alone_free_the_room(tmp_path: Path) -> None:
    plant = VirtualPlant(tmp_path, NODE, TWO_TENANTS)
    try:
        first = plant.submit(tenant="a", queue="qa", gpus=2, runs_for=10.0)
        second = plant.submit(tenant="a", queue="qa", gpus=2, runs_for=10.0)
        plant.step()
        plant.loop.interval = 1e9  # no periodic poll from now on: only pushes
        plant.step(10.0)
        assert plant.store.get_job(first.id).state is JobState.SUCCEEDED
        assert plant.store.get_job(second.id).state is JobState.RUNNING
        assert plant.started() == [first.id, second.id]
    finally:
        plant.close()


@pytest.mark.parametrize("policy", ["fifo", "backfill", "allot"])
def test_every_cycle_is_reported_with_its_plan(tmp_path: Path, policy: str) -> None:
    plant = VirtualPlant(tmp_path, NODE, TWO_TENANTS, policy=policy)
    try:
        jobs = [plant.submit(tenant="b", queue="qb", runs_for=5.0) for _ in range(3)]
        report = plant.step()
        assert [s.job_id for s in report.plan.starts] == [jobs[0].id, jobs[1].id]
        assert report.pending_by_reason == {"no_capacity": 1} or report.pending_by_reason
        plant.step(5.0)
        assert plant.started() == [j.id for j in jobs]
        assert all(r.seconds >= 0 for r in plant.reports)
    finally:
        plant.close()
