"""allot's default packer: the recent demand it reads online, the model-scarcity charge that
keeps flexible jobs off the models constrained jobs need."""

from __future__ import annotations

import pytest

from allot.core.cycle import schedule
from allot.core.model import Cluster, JobSpec, Node, Resources
from allot.core.placement.demand import RecentDemand, TaskMix, scarcity
from allot.core.placement.packing import AllotPacker, default_packer
from allot.core.policy import get_policy
from allot.core.snapshot import Snapshot

POLICY = get_policy("besteffort")


def _job(job_id: int, gpu: int, *, cpu: int = 1000, flavors: tuple[str, ...] = ()) -> JobSpec:
    return JobSpec(
        job_id, "t", "u", "q", (Resources(gpu, cpu, 0),), flavors=flavors, flavor_order=False
    )


def _node(name: str, gpus: int, flavor: str, cpu: int = 64_000) -> Node:
    return Node(name, flavor, gpus, cpu, 262_144)


def _placed_flavor(packer: AllotPacker, cluster: Cluster, spec: JobSpec) -> str:
    plan = schedule(Snapshot(cluster, packing=packer), [spec], POLICY, 0.0)
    return plan.starts[0].flavor


def test_recent_demand_counts_each_job_once_and_forgets_the_oldest() -> None:
    demand = RecentDemand(window=2)
    demand.observe([_job(1, 500), _job(1, 500), _job(2, 1000)])
    assert demand.version == 2
    demand.observe([_job(3, 1000)])
    assert list(demand.jobs) == [2, 3]
    shapes = {(m.gpu_milli, m.weight) for m in demand.mix().shapes}
    assert shapes == {(1000, 1.0)}


def test_recent_demand_needs_a_window() -> None:
    with pytest.raises(ValueError, match="window"):
        RecentDemand(window=0)


def test_scarcity_is_the_constrained_share_over_the_capacity_share() -> None:
    mix = TaskMix.of([_job(1, 1000, flavors=("T4",)), _job(2, 1000), _job(3, 1000)])
    capacity = {"T4": 2, "G2": 8}
    sizes = {"T4": [(2, 64_000)], "G2": [(8, 64_000)]}
    charge = scarcity(mix, capacity, sizes)
    # A third of the GPU asked can only use T4, which is a fifth of the GPUs.
    assert charge["T4"] == pytest.approx((1 / 3) / (2 / 10))
    assert charge["G2"] == 0.0


def test_a_task_only_large_nodes_hold_makes_their_model_scarce() -> None:
    mix = TaskMix.of([_job(1, 8000, cpu=120_000), _job(2, 1000)])
    capacity = {"G3": 8, "G2": 8}
    sizes = {"G3": [(8, 128_000)], "G2": [(8, 96_000)]}
    charge = scarcity(mix, capacity, sizes)
    assert charge["G3"] > 0.0
    assert charge["G2"] == 0.0


def test_the_prior_makes_small_models_scarce_before_any_job_is_seen() -> None:
    charge = scarcity(TaskMix(()), {"T4": 2, "G2": 8}, {"T4": [(2, 1)], "G2": [(8, 1)]})
    assert charge["T4"] > charge["G2"] > 0.0


def test_flexible_job_leaves_the_model_constrained_jobs_need() -> None:
    # Best fit alone would take the T4 node (the least left free); T4 jobs need it.
    cluster = Cluster((_node("g0", 4, "G2"), _node("t0", 1, "T4")))
    packer = default_packer()
    packer.observe(_job(i, 1000, flavors=("T4",)) for i in range(1, 400))
    assert _placed_flavor(packer, cluster, _job(1000, 1000)) == "G2"
    # With a known mix of flexible jobs only, nothing is scarce: plain best fit.
    fixed = AllotPacker(TaskMix.of([_job(1, 1000)]))
    assert _placed_flavor(fixed, cluster, _job(1000, 1000)) == "T4"


def test_a_cold_packer_keeps_flexible_jobs_off_small_models() -> None:
    cluster = Cluster((_node("g0", 4, "G2"), _node("t0", 1, "T4")))
    assert _placed_flavor(default_packer(), cluster, _job(1, 1000)) == "G2"


def test_the_packer_reads_the_mix_again_as_the_window_fills() -> None:
    packer = default_packer()
    cluster = Cluster((_node("g0", 4, "G2"),))
    _placed_flavor(packer, cluster, _job(1, 500))
    assert packer.frag.mix.shapes == ()
    packer.observe([_job(1, 500)])
    _placed_flavor(packer, cluster, _job(2, 500))
    assert [m.gpu_milli for m in packer.frag.mix.shapes] == [500]
