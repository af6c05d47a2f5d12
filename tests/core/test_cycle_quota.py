"""Cycles with quotas: which limit blocks a job (and the sentence that says so), guaranteed
quota before borrowed, dominant-share order, decayed-usage order and 2D-LAS order."""

from __future__ import annotations

from dataclasses import replace

from allot.core.cycle import schedule
from allot.core.explain import Reason
from allot.core.model import JobSpec, RunningJob, TaskPlacement
from allot.core.policy import get_policy
from allot.core.quota.config import (
    CohortSpec,
    QueueSpec,
    QuotaConfig,
    ResourceQuota,
    TenantSpec,
)
from allot.core.quota.fair_share import UsageHistory
from allot.core.snapshot import Snapshot
from builders import cluster, job, node

GPU = ("H100", "gpu")


def config(*queues: tuple[str, int, int | None], cohort: bool = True) -> QuotaConfig:
    """Queues (name, nominal GPUs, borrowing limit GPUs) in one cohort ``org``."""
    return QuotaConfig(
        tuple(TenantSpec(name) for name, _, _ in queues),
        tuple(
            QueueSpec(
                name,
                name,
                "org" if cohort else None,
                {GPU: ResourceQuota(n * 1000, None if b is None else b * 1000)},
            )
            for name, n, b in queues
        ),
        (CohortSpec("org"),) if cohort else (),
    )


def in_queue(job_id: int, queue: str, gpus: float = 1) -> JobSpec:
    return job(job_id).gpus(gpus).queue(queue).tenant(queue).build()


def hold(snap: Snapshot, spec: JobSpec, node_name: str, devices: tuple[int, ...]) -> None:
    snap.start(RunningJob(spec, 0.0, (TaskPlacement(node_name, devices, 1000),), "H100"))


def test_borrowing_limit_is_named_in_the_explanation() -> None:
    snap = Snapshot(cluster(node("a")), quotas=config(("x", 2, 1), ("y", 6, None)))
    plan = schedule(snap, [in_queue(1, "x", 4)], get_policy("kueue"), 0.0)
    reason = plan.pending[1]
    assert reason.reason is Reason.QUOTA
    assert reason.fields["limit"] == "borrowing_limit"
    assert reason.message() == (
        "queue x would exceed its borrowing limit of H100 GPUs: needs 4 GPUs, 3 GPUs left"
    )


def test_cohort_limit_is_named_when_the_pool_runs_dry() -> None:
    snap = Snapshot(cluster(node("a"), node("b")), quotas=config(("x", 2, None), ("y", 2, None)))
    hold(snap, in_queue(10, "y", 2), "a", (0, 1))
    plan = schedule(snap, [in_queue(1, "x", 4)], get_policy("fifo"), 0.0)
    assert plan.pending[1].message() == (
        "cohort org has 2 GPUs of H100 left to lend; queue x needs 4 GPUs"
    )


def test_nominal_quota_outside_a_cohort_and_uncovered_flavors() -> None:
    snap = Snapshot(cluster(node("a")), quotas=config(("x", 2, None), cohort=False))
    plan = schedule(snap, [in_queue(1, "x", 4)], get_policy("fifo"), 0.0)
    assert "would exceed its nominal quota of H100 GPUs" in plan.pending[1].message()
    snap = Snapshot(cluster(node("a"), node("l").flavor("L4")), quotas=config(("x", 2, None)))
    plan = schedule(snap, [replace(in_queue(1, "x"), flavors=("L4",))], get_policy("fifo"), 0.0)
    assert plan.pending[1].message() == "queue x has no quota for flavor L4"


def test_unknown_queue_lists_the_known_ones() -> None:
    snap = Snapshot(cluster(node("a")), quotas=config(("x", 2, None), ("y", 2, None)))
    plan = schedule(snap, [in_queue(1, "nope")], get_policy("fifo"), 0.0)
    assert plan.pending[1].reason is Reason.UNKNOWN_QUEUE
    assert plan.pending[1].message() == "queue nope is not configured; known queues: x, y"


def test_strict_fifo_blocks_only_the_queue_that_hit_its_quota() -> None:
    snap = Snapshot(cluster(node("a")), quotas=config(("x", 2, 0), ("y", 6, None)))
    plan = schedule(
        snap,
        [in_queue(1, "x", 4), in_queue(2, "x", 1), in_queue(3, "y", 1)],
        get_policy("fifo"),
        0.0,
    )
    assert [s.job_id for s in plan.starts] == [3]
    assert plan.pending[2].reason is Reason.BLOCKED_IN_QUEUE
    assert plan.pending[2].message() == "strict FIFO in queue x: waits behind job 1"


def test_guaranteed_quota_is_admitted_before_anyone_borrows() -> None:
    snap = Snapshot(cluster(node("a").gpus(4)), quotas=config(("x", 2, None), ("y", 2, None)))
    # y's jobs come first in FIFO order and would borrow; x's stay within its nominal.
    jobs = [
        in_queue(1, "y"),
        in_queue(2, "y"),
        in_queue(3, "y"),
        in_queue(4, "y"),
        in_queue(5, "x"),
    ]
    plan = schedule(snap, jobs, get_policy("kueue"), 0.0)
    assert sorted(s.job_id for s in plan.starts) == [1, 2, 3, 5]


def test_borrowers_are_served_lowest_dominant_share_first() -> None:
    snap = Snapshot(
        cluster(node("a").gpus(6)), quotas=config(("x", 1, None), ("y", 1, None), ("z", 4, None))
    )
    hold(snap, in_queue(10, "x", 2), "a", (0, 1))  # x already borrows 1
    plan = schedule(snap, [in_queue(1, "x"), in_queue(2, "y", 2)], get_policy("kueue"), 0.0)
    # y borrowing 1 after admission has a lower share than x borrowing 2: y goes first.
    assert [s.job_id for s in plan.starts] == [2, 1]


def test_decayed_usage_puts_the_lighter_tenant_first() -> None:
    history = UsageHistory(0.0, {"heavy": 1_000.0, "light": 10.0}, {})
    snap = Snapshot(cluster(node("a").gpus(1)), history=history)
    jobs = [
        replace(job(1).build(), tenant="heavy"),
        replace(job(2).build(), tenant="light"),
    ]
    plan = schedule(snap, jobs, get_policy("fairshare"), 0.0)
    assert [s.job_id for s in plan.starts] == [2]


def test_las_orders_by_attained_service_level() -> None:
    snap = Snapshot(cluster(node("a").gpus(1)), attained={1: 50_000.0, 2: 10.0})
    plan = schedule(snap, [job(1).build(), job(2).build()], get_policy("las"), 0.0)
    assert [s.job_id for s in plan.starts] == [2]


def test_a_binding_lending_limit_is_named_in_the_fields() -> None:
    config = QuotaConfig(
        (TenantSpec("t"),),
        (
            QueueSpec("qa", "t", "R", {GPU: ResourceQuota(4000)}),
            QueueSpec("qb", "t", "R", {GPU: ResourceQuota(4000, None, 1000)}),
        ),
        (CohortSpec("R"),),
    )
    snap = Snapshot(cluster(node("n"), node("m")), quotas=config)
    plan = schedule(
        snap, [job(2).queue("qa").tenant("t").gpus(6).build()], get_policy("kueue"), 0.0
    )
    fields = plan.pending[2].fields
    assert plan.pending[2].reason is Reason.QUOTA
    assert (fields["node"], fields["limit"], fields["available"]) == ("R", "cohort", 5000)
    # qb keeps 3 of its 4 GPUs to itself, idle: its lending limit is what binds.
    assert (fields["binding_node"], fields["binding_kind"], fields["binding_limit"]) == (
        "qb",
        "queue",
        "lending_limit",
    )
    assert fields["withheld"] == 3000


def test_a_borrowing_limit_binds_where_it_is() -> None:
    snap = Snapshot(cluster(node("a")), quotas=config(("x", 2, 1), ("y", 6, None)))
    fields = schedule(snap, [in_queue(1, "x", 4)], get_policy("kueue"), 0.0).pending[1].fields
    assert (fields["binding_node"], fields["binding_kind"], fields["binding_limit"]) == (
        "x",
        "queue",
        "borrowing_limit",
    )
    assert "withheld" not in fields


def test_reclaim_that_frees_quota_but_no_node_is_explained_by_placement() -> None:
    snap = Snapshot(
        cluster(node("a").gpus(4), node("b").gpus(4)),
        quotas=config(("x", 4, None), ("y", 2, None), ("z", 2, None)),
    )
    # y borrows 2, spread over both nodes; z holds its nominal; one GPU is free on each node.
    hold(snap, in_queue(10, "y"), "a", (0,))
    hold(snap, in_queue(11, "y"), "a", (1,))
    hold(snap, in_queue(12, "y"), "b", (0,))
    hold(snap, in_queue(13, "y"), "b", (1,))
    hold(snap, in_queue(20, "z"), "a", (2,))
    hold(snap, in_queue(21, "z"), "b", (2,))
    plan = schedule(snap, [in_queue(1, "x", 4)], get_policy("kueue"), 0.0)
    # x is within its nominal, so reclaim could give it the quota; but y's borrowed GPUs free
    # at most three on a node, so no victim set makes room for a whole node.
    assert not plan.preemptions
    reason = plan.pending[1]
    assert reason.reason is Reason.NO_CAPACITY
    assert reason.fields["no_node_freed_by"] == "reclaim"
    # Without reclaim, quota is what stops it.
    plan = schedule(snap, [in_queue(1, "x", 4)], get_policy("fifo"), 0.0)
    assert plan.pending[1].reason is Reason.QUOTA
