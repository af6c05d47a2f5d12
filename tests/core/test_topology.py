"""Gangs that require or prefer one node, rack or block."""

from __future__ import annotations

from dataclasses import replace

import pytest

from allot.core.model import Cluster, JobSpec, Node, Resources, RunningJob, SpecError, gang
from allot.core.placement.select import choose_placement
from allot.core.snapshot import Snapshot


def _cluster() -> Cluster:
    # Two racks in one block: rack r0 has two 4-GPU nodes, rack r1 one 8-GPU and one 4-GPU.
    return Cluster(
        (
            Node("a", "A", 4, 64_000, 262_144, topology=("b0", "r0")),
            Node("b", "A", 4, 64_000, 262_144, topology=("b0", "r0")),
            Node("c", "A", 8, 64_000, 262_144, topology=("b0", "r1")),
            Node("d", "A", 4, 64_000, 262_144, topology=("b0", "r1")),
        )
    )


def _gang(count: int, gpus: int, colocate: str = "", required: bool = False) -> JobSpec:
    return JobSpec(
        1,
        "t",
        "u",
        "q",
        gang(count, Resources(gpus * 1000)),
        colocate=colocate,
        colocate_required=required,
    )


def test_rack_colocation_picks_the_tightest_rack() -> None:
    placement = choose_placement(Snapshot(_cluster()), _gang(2, 4, "rack", True), "A")
    assert placement is not None
    assert {p.node for p in placement} == {"a", "b"}  # r0 (8 free) before r1 (12 free)


def test_required_colocation_never_spans_domains() -> None:
    # 16 GPUs in one rack: none has more than 12.
    assert choose_placement(Snapshot(_cluster()), _gang(4, 4, "rack", True), "A") is None


def test_preferred_colocation_falls_back_to_any_nodes() -> None:
    placement = choose_placement(Snapshot(_cluster()), _gang(4, 4, "rack"), "A")
    assert placement is not None
    assert len(placement) == 4


def test_node_colocation_keeps_the_gang_on_one_node() -> None:
    placement = choose_placement(Snapshot(_cluster()), _gang(2, 4, "node", True), "A")
    assert placement is not None
    assert {p.node for p in placement} == {"c"}


def test_colocate_level_is_checked() -> None:
    with pytest.raises(SpecError, match="colocate"):
        _gang(2, 1, "zone")
    with pytest.raises(SpecError, match="colocate_required"):
        _gang(2, 1, "", True)


@pytest.mark.parametrize("policy", ["allot", "kueue", "las", "fairshare"])
def test_a_pending_colocated_gang_on_a_full_cluster_is_weighed_for_preemption(
    policy: str,
) -> None:
    # The pending backlog that preemption reads sums jobs by request shape, which for a gang
    # with a colocation rule carries the rule too.
    from allot.core.cycle import schedule
    from allot.core.model import TaskPlacement
    from allot.core.policy import get_policy

    cluster = _cluster()
    running = [
        RunningJob(
            JobSpec(10 + i, "t", "v", "q", (Resources(n.gpus * 1000),), priority=-5),
            0.0,
            (TaskPlacement(n.name, tuple(range(n.gpus))),),
            "A",
        )
        for i, n in enumerate(cluster.nodes)
    ]
    pending = [replace(_gang(2, 4, "rack", True), priority=5), replace(_gang(1, 2), id=2)]
    plan = schedule(Snapshot(cluster, running), pending, get_policy(policy), 100.0)
    assert set(plan.pending) | {s.job_id for s in plan.starts} >= {1}
