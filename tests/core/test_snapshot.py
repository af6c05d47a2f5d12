"""The snapshot: free capacity, bucket indexes, and what-if edits with undo."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from allot.core.model import NodeState, RunningJob, TaskPlacement
from allot.core.snapshot import OverAllocationError, Snapshot
from builders import cluster, job, node


def _state(snap: Snapshot) -> tuple[object, ...]:
    return (
        [list(d) for d in snap.dev_free],
        list(snap.cpu_free),
        list(snap.mem_free),
        {f: list(b) for f, b in snap.buckets.items()},
        {f: list(b) for f, b in snap.partial.items()},
        dict(snap.free_gpu_milli),
        dict(snap.running),
        list(snap.ends),
        snap.allocated_gpu_milli,
    )


def test_start_takes_devices_and_undo_restores_everything() -> None:
    snap = Snapshot(cluster(node("a"), node("b")))
    before = _state(snap)
    spec = job(1).gpus(4).estimate(100).build()
    undo = snap.start(RunningJob(spec, 0.0, (TaskPlacement("a", (0, 1, 2, 3), 1000),), "H100"))
    assert snap.whole_free[0] == 4
    assert snap.largest_free_block("H100") == 8
    assert snap.tasks_that_fit("H100", 4) == 3
    assert snap.ends == [(100.0, 1)]
    undo()
    assert _state(snap) == before


def test_finish_is_the_inverse_of_start() -> None:
    snap = Snapshot(cluster(node("a")))
    spec = job(1).gpus(0.5).build()
    snap.start(RunningJob(spec, 0.0, (TaskPlacement("a", (3,), 500),), "H100"))
    assert snap.dev_free[0][3] == 500
    assert snap.partial_key[0] == 5
    undo = snap.finish(1)
    assert snap.dev_free[0][3] == 1000
    assert not snap.running
    undo()
    assert snap.running[1].spec is spec


def test_over_allocation_is_refused_and_changes_nothing() -> None:
    snap = Snapshot(cluster(node("a").gpus(2), node("b").gpus(2)))
    before = _state(snap)
    gang_spec = job(1).gpus(2).tasks(2).build()
    # The second task asks for a device the node does not have.
    bad = (TaskPlacement("a", (0, 1), 1000), TaskPlacement("b", (1, 2), 1000))
    with pytest.raises(OverAllocationError, match="has no device 2"):
        snap.start(RunningJob(gang_spec, 0.0, bad, "H100"))
    assert _state(snap) == before
    snap.start(RunningJob(job(2).gpus(2).build(), 0.0, (TaskPlacement("a", (0, 1), 1000),), "H100"))
    with pytest.raises(OverAllocationError, match="cannot take 1000"):
        snap.start(RunningJob(job(3).build(), 0.0, (TaskPlacement("a", (0,), 1000),), "H100"))


def test_cpu_and_memory_are_checked() -> None:
    snap = Snapshot(cluster(node("a").cpus(2)))
    spec = job(1).cpus(3).build()
    with pytest.raises(OverAllocationError, match="CPU or memory"):
        snap.start(RunningJob(spec, 0.0, (TaskPlacement("a", (0,), 1000),), "H100"))


def test_drained_node_leaves_the_index_but_keeps_its_jobs() -> None:
    snap = Snapshot(cluster(node("a"), node("b")))
    snap.start(RunningJob(job(1).build(), 0.0, (TaskPlacement("a", (0,), 1000),), "H100"))
    undo = snap.set_node_state("a", NodeState.DRAINING)
    assert snap.free_gpu_milli["H100"] == 8000
    assert 1 in snap.running
    undo()
    assert snap.free_gpu_milli["H100"] == 15000


def test_unknown_node_in_placement() -> None:
    snap = Snapshot(cluster(node("a")))
    with pytest.raises(OverAllocationError, match="unknown node 'zz'"):
        snap.start(RunningJob(job(1).build(), 0.0, (TaskPlacement("zz", (0,), 1000),), "H100"))


@given(st.lists(st.tuples(st.sampled_from(("start", "finish", "stop", "undo", "read")),
                          st.integers(1, 6), st.integers(0, 300)), max_size=60))  # fmt: skip
def test_the_end_list_read_after_any_edits_is_the_running_jobs_sorted(
    steps: list[tuple[str, int, int]],
) -> None:
    # Edits are noted and applied when read: however they interleave with reads and undos,
    # the list read is every running job's (expected end, id), sorted.
    snap = Snapshot(cluster(*(node(f"n{i}") for i in range(6))))
    undos: list[Callable[[], None]] = []
    for action, job_id, t in steps:
        running = job_id in snap.running
        if action == "start" and not running:
            spec = job(job_id).gpus(1).estimate(float(t + 1)).build()
            where = (TaskPlacement(f"n{job_id - 1}", (0,), 1000),)
            undos.append(snap.start(RunningJob(spec, float(t), where, "H100")))
        elif action == "finish" and running:
            undos.append(snap.finish(job_id))
        elif action == "stop" and running:
            undos.append(snap.mark_stopping(job_id, float(t)))
        elif action == "undo" and undos:
            undos.pop()()
        elif action == "read":
            assert snap.ends == sorted((j.expected_end, i) for i, j in snap.running.items())
    while undos:
        undos.pop()()
        assert snap.ends == sorted((j.expected_end, i) for i, j in snap.running.items())
