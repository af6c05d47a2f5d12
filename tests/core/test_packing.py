"""Packing single-task jobs by score, GPU memory per device, NVLink domains, and choosing a
flavor by speed."""

from __future__ import annotations

import pytest

from allot.core.cycle import schedule
from allot.core.model import Cluster, JobSpec, Node, Resources, RunningJob, SpecError, TaskPlacement
from allot.core.placement.packing import (
    BestFit,
    DotProduct,
    Fragmentation,
    GpuPacking,
    RandomFit,
    TaskMix,
    packer_named,
)
from allot.core.placement.select import choose_placement
from allot.core.placement.throughput import rank_flavors, speed_norms
from allot.core.policy import get_policy
from allot.core.snapshot import OverAllocationError, Snapshot

POLICY = get_policy("besteffort")


def _job(job_id: int, gpu: int, *, cpu: int = 0, gpu_mem: int = 0, **kw: object) -> JobSpec:
    return JobSpec(job_id, "t", "u", "q", (Resources(gpu, cpu, 0, gpu_mem),), **kw)  # type: ignore[arg-type]


def _node(name: str, gpus: int, flavor: str = "A", **kw: object) -> Node:
    return Node(name, flavor, gpus, 64_000, 262_144, **kw)  # type: ignore[arg-type]


def _hold(snap: Snapshot, job_id: int, node: str, device: int, milli: int) -> None:
    spec = _job(job_id, milli)
    snap.start(RunningJob(spec, 0.0, (TaskPlacement(node, (device,), milli),), "A"))


def test_fragmentation_counts_free_gpu_the_mix_cannot_use() -> None:
    frag = Fragmentation(TaskMix.of([_job(1, 500), _job(2, 1000)]))
    # Devices free 300 and 1000: the half-GPU shape cannot use 300; the whole one cannot either.
    assert frag.of("A", 8000, (300, 1000)) == pytest.approx(300.0)
    # Too little CPU for every shape: all free GPU is lost.
    frag_cpu = Fragmentation(TaskMix.of([_job(1, 500, cpu=16_000)]))
    assert frag_cpu.of("A", 8000, (300, 1000)) == pytest.approx(1300.0)


def test_fgd_fills_the_device_a_small_task_fits_exactly() -> None:
    cluster = Cluster((_node("n0", 1), _node("n1", 1)))
    mix = TaskMix.of([_job(1, 500)])
    snap = Snapshot(cluster, packing=packer_named("fgd", mix))
    _hold(snap, 100, "n1", 0, 500)
    plan = schedule(snap, [_job(1, 500)], POLICY, 0.0)
    assert plan.starts[0].placement == (TaskPlacement("n1", (0,), 500),)


def test_allot_breaks_fragmentation_ties_by_best_fit() -> None:
    cluster = Cluster((_node("n0", 4), _node("n1", 2)))
    snap = Snapshot(cluster, packing=packer_named("allot", TaskMix.of([_job(1, 1000)])))
    plan = schedule(snap, [_job(1, 1000)], POLICY, 0.0)
    assert plan.starts[0].placement[0].node == "n1"


@pytest.mark.parametrize(
    ("packer", "node"),
    [(BestFit(), "n1"), (GpuPacking(), "n1"), (DotProduct(), "n0")],
)
def test_baselines_choose_as_documented(packer: object, node: str) -> None:
    cluster = Cluster((_node("n0", 2), _node("n1", 2)))
    snap = Snapshot(cluster, packing=packer)  # type: ignore[arg-type]
    _hold(snap, 100, "n1", 0, 500)
    plan = schedule(snap, [_job(1, 250)], POLICY, 0.0)
    assert plan.starts[0].placement[0].node == node


def test_random_fit_is_reproducible() -> None:
    cluster = Cluster(tuple(_node(f"n{i}", 1) for i in range(8)))
    picks = {
        schedule(Snapshot(cluster, packing=RandomFit(7)), [_job(1, 500)], POLICY, 0.0)
        .starts[0]
        .placement[0]
        .node
        for _ in range(3)
    }
    assert len(picks) == 1


def test_gpu_memory_is_never_over_committed() -> None:
    cluster = Cluster((_node("n0", 1, gpu_memory_mib=40_960),))
    snap = Snapshot(cluster)
    snap.start(
        RunningJob(_job(100, 300, gpu_mem=30_000), 0.0, (TaskPlacement("n0", (0,), 300),), "A")
    )
    plan = schedule(snap, [_job(1, 300, gpu_mem=20_000)], POLICY, 0.0)
    assert not plan.starts
    with pytest.raises(OverAllocationError, match="GPU memory"):
        snap.start(
            RunningJob(_job(2, 300, gpu_mem=20_000), 0.0, (TaskPlacement("n0", (0,), 300),), "A")
        )


def test_gpu_memory_needs_gpus() -> None:
    with pytest.raises(SpecError, match="gpu_memory_mib"):
        Resources(0, 1000, 0, 1024)


def test_whole_gpu_task_skips_devices_too_small() -> None:
    cluster = Cluster(
        (_node("small", 2, gpu_memory_mib=16_384), _node("big", 2, gpu_memory_mib=81_920))
    )
    placement = choose_placement(Snapshot(cluster), _job(1, 1000, gpu_mem=40_000), "A")
    assert placement is not None
    assert placement[0].node == "big"


def test_multi_gpu_task_stays_in_one_nvlink_domain() -> None:
    cluster = Cluster((_node("n0", 4, nvlink=(0, 0, 1, 1)),))
    snap = Snapshot(cluster)
    _hold(snap, 100, "n0", 1, 1000)
    placement = choose_placement(snap, _job(1, 2000), "A")
    assert placement is not None
    assert placement[0].devices == (2, 3)


def test_nvlink_must_name_a_domain_per_device() -> None:
    with pytest.raises(SpecError, match="nvlink"):
        _node("n0", 4, nvlink=(0, 1))


def test_any_flavor_job_is_packed_across_flavors() -> None:
    cluster = Cluster((_node("a0", 4, "A"), _node("b0", 1, "B")))
    snap = Snapshot(cluster, packing=BestFit())
    _hold(snap, 100, "a0", 0, 1000)
    plan = schedule(snap, [_job(1, 1000), _job(2, 1000, flavors=("A", "B"))], POLICY, 0.0)
    # Job 1 takes the tightest node (b0, whatever its flavor); job 2 keeps its own order.
    assert [s.flavor for s in plan.starts] == ["B", "A"]


def test_throughput_ranking_by_comparative_advantage() -> None:
    fast = _job(1, 1000, speeds=(("H100", 3.0),))
    slow = _job(2, 1000, speeds=(("H100", 1.2),))
    norms = speed_norms([fast, slow], ("H100", "T4"))
    assert rank_flavors(fast, ("H100", "T4"), norms) == ("H100", "T4")
    assert rank_flavors(slow, ("H100", "T4"), norms) == ("T4", "H100")
    ordered = _job(3, 1000, flavors=("T4", "H100"), speeds=(("H100", 3.0),))
    assert rank_flavors(ordered, ("T4", "H100"), norms) == ("T4", "H100")


def test_speeds_must_be_positive() -> None:
    with pytest.raises(SpecError, match="speeds"):
        _job(1, 1000, speeds=(("H100", 0.0),))
