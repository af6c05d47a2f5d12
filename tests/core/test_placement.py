"""Placement: best fit, fewest nodes for a gang, fractional sharing, flavors, node states."""

from __future__ import annotations

from allot.core.model import Cluster, Node, NodeState, RunningJob, TaskPlacement
from allot.core.placement import choose_placement
from allot.core.snapshot import Snapshot
from builders import cluster, job, node


def _occupy(snap: Snapshot, job_id: int, node_name: str, devices: tuple[int, ...]) -> None:
    spec = job(job_id).gpus(len(devices)).build()
    snap.start(RunningJob(spec, 0.0, (TaskPlacement(node_name, devices, 1000),), "H100"))


def test_best_fit_prefers_the_node_with_the_fewest_sufficient_free_gpus() -> None:
    snap = Snapshot(cluster(node("a"), node("b"), node("c")))
    _occupy(snap, 100, "b", (0, 1, 2, 3, 4, 5))  # b has 2 free
    _occupy(snap, 101, "c", (0, 1, 2, 3))  # c has 4 free
    placement = choose_placement(snap, job(1).gpus(2).build(), "H100")
    assert placement == (TaskPlacement("b", (6, 7), 1000),)
    placement = choose_placement(snap, job(2).gpus(3).build(), "H100")
    assert placement == (TaskPlacement("c", (4, 5, 6), 1000),)


def test_ties_go_to_the_lowest_node_index() -> None:
    snap = Snapshot(cluster(node("z"), node("a")))
    assert choose_placement(snap, job(1).build(), "H100") == (TaskPlacement("z", (0,), 1000),)


def test_gang_uses_the_fewest_nodes() -> None:
    snap = Snapshot(cluster(node("a"), node("b"), node("c")))
    _occupy(snap, 100, "a", (0, 1, 2, 3))  # a: 4 free, b and c: 8 free
    placement = choose_placement(snap, job(1).gpus(2).tasks(4).build(), "H100")
    assert placement is not None
    assert {p.node for p in placement} == {"b"}
    placement = choose_placement(snap, job(2).gpus(4).tasks(3).build(), "H100")
    assert placement is not None
    # 12 GPUs: one full node holds two tasks; the third goes to the best fit (a, 4 free).
    assert sorted(p.node for p in placement) == ["a", "b", "b"]


def test_gang_all_or_nothing_and_no_lasting_edit() -> None:
    snap = Snapshot(cluster(node("a"), node("b")))
    before = [list(d) for d in snap.dev_free]
    assert choose_placement(snap, job(1).gpus(8).tasks(3).build(), "H100") is None
    assert [list(d) for d in snap.dev_free] == before


def test_multi_gpu_task_never_spans_nodes() -> None:
    snap = Snapshot(cluster(node("a"), node("b")))
    _occupy(snap, 100, "a", (0, 1, 2, 3))
    _occupy(snap, 101, "b", (0, 1, 2, 3))
    assert choose_placement(snap, job(1).gpus(8).build(), "H100") is None


def test_fractional_tasks_share_a_device_best_fit() -> None:
    snap = Snapshot(cluster(node("a").gpus(2)))
    half = job(1).gpus(0.5).build()
    first = choose_placement(snap, half, "H100")
    assert first == (TaskPlacement("a", (0,), 500),)
    snap.start(RunningJob(half, 0.0, first, "H100"))
    second = choose_placement(snap, job(2).gpus(0.3).build(), "H100")
    assert second == (TaskPlacement("a", (0,), 300),)  # packs onto the used device
    too_big = choose_placement(snap, job(3).gpus(0.6).build(), "H100")
    assert too_big == (TaskPlacement("a", (1,), 600),)


def test_cpu_only_task_prefers_nodes_with_fewest_free_gpus() -> None:
    snap = Snapshot(cluster(node("gpu"), node("cpu").flavor("H100").gpus(0)))
    placement = choose_placement(snap, job(1).gpus(0).build(), "H100")
    assert placement == (TaskPlacement("cpu", (), 0),)


def test_cpu_and_memory_limit_tasks_per_node() -> None:
    snap = Snapshot(cluster(node("a").cpus(8), node("b").cpus(8)))
    placement = choose_placement(snap, job(1).gpus(1).cpus(4).tasks(4).build(), "H100")
    assert placement is not None
    assert sorted(p.node for p in placement) == ["a", "a", "b", "b"]


def test_only_up_nodes_take_work() -> None:
    snap = Snapshot(cluster(node("a").state(NodeState.DRAINING), node("b").state(NodeState.DOWN)))
    assert choose_placement(snap, job(1).build(), "H100") is None
    snap.set_node_state("b", NodeState.UP)
    assert choose_placement(snap, job(1).build(), "H100") == (TaskPlacement("b", (0,), 1000),)


def test_unknown_flavor_places_nothing() -> None:
    snap = Snapshot(cluster(node("a")))
    assert choose_placement(snap, job(1).build(), "A100") is None


def test_a_gang_never_spans_node_pools() -> None:
    # One 4-GPU node in each of two pools of the same flavor: a gang of two 3-GPU tasks would
    # need both nodes, so it does not fit; two 2-GPU tasks fit on one node.
    snap = Snapshot(
        Cluster(
            (
                Node("local-0", "H100", 4, 64_000, 65_536, pool="local"),
                Node("slurm-0", "H100", 4, 64_000, 65_536, pool="slurm:gpu"),
            )
        )
    )
    assert choose_placement(snap, job(1).gpus(3).tasks(2).build(), "H100") is None
    placed = choose_placement(snap, job(2).gpus(2).tasks(2).build(), "H100")
    assert placed is not None
    assert {p.node for p in placed} == {"local-0"}
    single = choose_placement(snap, job(3).gpus(4).build(), "H100")
    assert single is not None
