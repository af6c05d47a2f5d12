"""The scheduling cycle: each policy's blocking rule, reservations and explanations."""

from __future__ import annotations

import pytest

from allot.core.cycle import schedule
from allot.core.explain import Reason
from allot.core.model import JobSpec, NodeState, RunningJob, TaskPlacement
from allot.core.policy import POLICIES, UnknownPolicyError, get_policy
from allot.core.snapshot import Snapshot
from builders import cluster, job, node, nodes


def _busy(snap: Snapshot, job_id: int, node_name: str, gpus: int, ends_at: float | None) -> None:
    spec = job(job_id).gpus(gpus).estimate(ends_at).submitted(-1).build()
    placement = (TaskPlacement(node_name, tuple(range(gpus)), 1000),)
    snap.start(RunningJob(spec, 0.0, placement, "H100"))


def _started(plan_jobs: object) -> list[int]:
    return [s.job_id for s in plan_jobs.starts]  # type: ignore[attr-defined]


@pytest.fixture
def half_busy() -> Snapshot:
    """Two 8-GPU nodes; node a runs a 6-GPU job until t=100."""
    snap = Snapshot(cluster(*nodes(2, "n")))
    _busy(snap, 900, "n0", 6, 100.0)
    return snap


def _queue() -> list[JobSpec]:
    return [
        job(1).gpus(4).estimate(50).build(),
        job(2).gpus(8).tasks(2).estimate(500).build(),  # needs both nodes empty
        job(3).gpus(2).estimate(50).build(),  # ends before t=100: may backfill
        job(4).gpus(2).estimate(1000).build(),  # would delay job 2
    ]


def test_strict_fifo_stops_at_the_first_job_that_does_not_fit(half_busy: Snapshot) -> None:
    plan = schedule(half_busy, _queue(), get_policy("fifo"), 0.0)
    assert _started(plan) == [1]
    assert plan.pending[2].reason is Reason.NO_CAPACITY
    assert plan.pending[3].reason is Reason.BLOCKED_BY_HEAD
    assert plan.pending[3].message() == "strict FIFO: waits behind job 2, which does not fit yet"


def test_best_effort_skips_the_blocked_job(half_busy: Snapshot) -> None:
    plan = schedule(half_busy, _queue(), get_policy("besteffort"), 0.0)
    assert _started(plan) == [1, 3, 4]
    assert set(plan.pending) == {2}


def test_easy_backfill_starts_only_what_cannot_delay_the_head(half_busy: Snapshot) -> None:
    plan = schedule(half_busy, _queue(), get_policy("backfill"), 0.0)
    assert _started(plan) == [1, 3]
    (reservation,) = plan.reservations
    assert reservation.job_id == 2
    assert reservation.start_time == 100.0
    assert plan.pending[2].reason is Reason.RESERVED
    assert plan.pending[4].reason is Reason.BEHIND_RESERVATION
    assert "not to delay job 2, which has room reserved from t=100" in plan.pending[4].message()


def test_easy_backfill_judges_a_job_by_its_estimate_else_its_time_limit(
    half_busy: Snapshot,
) -> None:
    queue = [
        job(1).gpus(8).tasks(2).build(),  # head: needs both nodes empty, reserved at t=100
        job(2).gpus(2).limit(50).build(),  # no estimate; its limit ends it by t=50
        job(3).gpus(2).limit(1000).build(),  # no estimate; its limit runs past t=100
        job(4).gpus(2).estimate(30).limit(1000).build(),  # the estimate comes first
        job(5).gpus(2).build(),  # neither: nothing says it ends before the head starts
    ]
    plan = schedule(half_busy, queue, get_policy("backfill"), 0.0)
    (reservation,) = plan.reservations
    assert (reservation.job_id, reservation.start_time) == (1, 100.0)
    assert _started(plan) == [2, 4]
    for held in (3, 5):
        assert plan.pending[held].reason is Reason.BEHIND_RESERVATION
        assert (
            "not to delay job 1, which has room reserved from t=100" in plan.pending[held].message()
        )


def test_backfill_long_job_may_use_capacity_the_head_does_not_need() -> None:
    snap = Snapshot(cluster(*nodes(3, "n")))
    _busy(snap, 900, "n0", 8, 100.0)
    _busy(snap, 901, "n1", 8, 100.0)
    queue = [
        job(1).gpus(8).tasks(3).estimate(10).build(),  # head: needs all three nodes at t=100
        job(2).gpus(8).estimate(1000).build(),  # would take n2, which the head needs
    ]
    plan = schedule(snap, queue, get_policy("backfill"), 0.0)
    assert _started(plan) == []
    assert plan.pending[2].reason is Reason.BEHIND_RESERVATION
    queue[0] = job(1).gpus(8).tasks(2).estimate(10).build()  # head needs only two nodes
    plan = schedule(snap, queue, get_policy("backfill"), 0.0)
    assert plan.reservations[0].start_time == 100.0
    assert _started(plan) == [2]


def test_backfill_without_estimates_cannot_reserve(half_busy: Snapshot) -> None:
    snap = Snapshot(cluster(*nodes(2, "n")))
    _busy(snap, 900, "n0", 6, None)
    plan = schedule(snap, _queue(), get_policy("backfill"), 0.0)
    assert _started(plan) == [1]
    assert not plan.reservations
    assert plan.pending[3].reason is Reason.NO_RESERVATION


def test_priority_and_sjf_orders() -> None:
    snap = Snapshot(cluster(node("a").gpus(1)))
    queue = [
        job(1).estimate(300).build(),
        job(2).priority(5).estimate(200).build(),
        job(3).estimate(100).build(),
    ]
    assert _started(schedule(snap, queue, get_policy("priority"), 0.0)) == [2]
    assert _started(schedule(snap, queue, get_policy("sjf"), 0.0)) == [3]
    assert _started(schedule(snap, queue, get_policy("fifo"), 0.0)) == [1]


def test_jobs_that_can_never_fit_are_explained_and_do_not_block() -> None:
    snap = Snapshot(cluster(*nodes(2, "n")))
    queue = [
        job(1).gpus(16).build(),
        job(2).flavors("A100").build(),
        job(3).gpus(8).tasks(3).build(),
        job(4).build(),
    ]
    plan = schedule(snap, queue, get_policy("fifo"), 0.0)
    assert _started(plan) == [4]
    assert plan.pending[1].reason is Reason.NEVER_FITS
    assert plan.pending[1].message() == (
        "needs 16 GPUs per task on one H100 node; the largest has 8 GPUs"
    )
    assert plan.pending[1].fields["limit_resource"] == "gpu"
    assert plan.pending[2].reason is Reason.NO_FLAVOR
    assert plan.pending[3].reason is Reason.NEVER_FITS


def test_nodes_that_are_down_are_named_as_the_reason() -> None:
    snap = Snapshot(cluster(node("a"), node("b").gpus(2)))
    snap.set_node_state("a", NodeState.DOWN)
    plan = schedule(snap, [job(1).gpus(8).build()], get_policy("fifo"), 0.0)
    assert plan.pending[1].reason is Reason.NODES_UNAVAILABLE


def test_flavor_preference_order() -> None:
    snap = Snapshot(cluster(node("h").flavor("H100"), node("a").flavor("A100")))
    plan = schedule(snap, [job(1).flavors("A100", "H100").build()], get_policy("fifo"), 0.0)
    assert plan.starts[0].flavor == "A100"
    assert plan.starts[0].nodes == ("a",)


def test_no_capacity_message_names_the_largest_free_block(half_busy: Snapshot) -> None:
    _busy(half_busy, 901, "n1", 4, 100.0)
    plan = schedule(half_busy, [job(1).gpus(8).build()], get_policy("fifo"), 0.0)
    assert plan.pending[1].message() == (
        "needs 8 GPUs of H100 on one node; at most 4 GPUs of H100 are free on one node"
    )
    assert plan.pending[1].to_dict()["reason"] == "no_capacity"


def test_unknown_policy_lists_the_known_ones() -> None:
    with pytest.raises(UnknownPolicyError, match="known policies: " + ", ".join(POLICIES)):
        get_policy("lottery")


def test_schedule_leaves_the_snapshot_as_it_found_it(half_busy: Snapshot) -> None:
    before = (
        [list(d) for d in half_busy.dev_free],
        list(half_busy.cpu_free),
        dict(half_busy.running),
    )
    first = schedule(half_busy, _queue(), get_policy("backfill"), 0.0)
    after = (
        [list(d) for d in half_busy.dev_free],
        list(half_busy.cpu_free),
        dict(half_busy.running),
    )
    assert before == after
    assert schedule(half_busy, _queue(), get_policy("backfill"), 0.0) == first
