"""Preemption: each strategy, victim choice, grace periods, and waiting for stopping jobs."""

from __future__ import annotations

from dataclasses import replace

from allot.core.cycle import schedule
from allot.core.explain import Reason
from allot.core.model import JobSpec, RunningJob, TaskPlacement
from allot.core.plan import Plan
from allot.core.policy import get_policy
from allot.core.preemption import Strategy
from allot.core.quota.config import (
    CohortSpec,
    FairShareRule,
    PreemptionRules,
    QueueSpec,
    QuotaConfig,
    ReclaimWithinCohort,
    ResourceQuota,
    TenantSpec,
    WithinQueue,
)
from allot.core.snapshot import Snapshot
from builders import cluster, job, node

GPU = ("H100", "gpu")
KUEUE = get_policy("kueue")


def quotas(
    *nominals: tuple[str, int],
    rules: PreemptionRules | None = None,
) -> QuotaConfig:
    """One cohort, one queue per (name, nominal GPUs), tenants named after the queues."""
    rules = rules or PreemptionRules(grace_seconds=45)
    return QuotaConfig(
        tuple(TenantSpec(name) for name, _ in nominals),
        tuple(
            QueueSpec(name, name, "org", {GPU: ResourceQuota(n * 1000)}, preemption=rules)
            for name, n in nominals
        ),
        (CohortSpec("org"),),
    )


def running(
    snap: Snapshot, spec: JobSpec, node_name: str, devices: tuple[int, ...], at: float = 0.0
) -> None:
    placement = tuple(TaskPlacement(node_name, devices, 1000) for _ in spec.tasks)
    snap.start(RunningJob(spec, at, placement, "H100"))


def in_queue(job_id: int, queue: str) -> JobSpec:
    return job(job_id).queue(queue).tenant(queue).build()


def victims(plan: Plan) -> dict[int, Strategy]:
    return {p.victim: p.strategy for p in plan.preemptions}


def test_higher_priority_preempts_lower_in_its_own_queue() -> None:
    snap = Snapshot(cluster(node("a").gpus(2)))
    running(snap, job(1).gpus(2).priority(0).build(), "a", (0, 1))
    plan = schedule(snap, [job(2).gpus(2).priority(5).build()], KUEUE, 10.0)
    assert victims(plan) == {1: Strategy.WITHIN_QUEUE}
    assert plan.preemptions[0].stop_by == 10.0 + KUEUE.grace_seconds
    assert plan.pending[2].reason is Reason.PREEMPTING
    # Equal priority: nothing to take.
    plan = schedule(snap, [job(3).gpus(2).priority(0).build()], KUEUE, 10.0)
    assert not plan.preemptions


def test_within_queue_never_takes_from_other_queues() -> None:
    snap = Snapshot(cluster(node("a").gpus(1)), quotas=quotas(("x", 1), ("y", 0)))
    running(snap, in_queue(1, "x"), "a", (0,))
    plan = schedule(snap, [replace(in_queue(2, "y"), priority=9)], KUEUE, 0.0)
    assert not plan.preemptions


def test_a_queue_under_nominal_reclaims_what_another_borrowed() -> None:
    snap = Snapshot(cluster(node("a").gpus(4)), quotas=quotas(("x", 2), ("y", 2)))
    for k in range(4):
        running(snap, in_queue(10 + k, "y"), "a", (k,), at=float(k))
    plan = schedule(snap, [in_queue(1, "x")], KUEUE, 100.0)
    # y borrows 2; the most recently started borrower goes first, and one is enough.
    assert victims(plan) == {13: Strategy.RECLAIM}
    assert plan.preemptions[0].stop_by == 145.0  # the victim's queue grants 45 s


def test_reclaim_stops_once_the_borrower_is_back_to_its_nominal() -> None:
    snap = Snapshot(cluster(node("a").gpus(4)), quotas=quotas(("x", 2), ("y", 2)))
    for k in range(4):
        running(snap, in_queue(10 + k, "y"), "a", (k,), at=float(k))
    wants_three = replace(in_queue(1, "x"), tasks=job(1).gpus(3).build().tasks)
    plan = schedule(snap, [wants_three], KUEUE, 100.0)
    # x may hold 3 only by borrowing 1, so it is not within nominal: no reclaim at all.
    assert not plan.preemptions


def test_reclaim_lower_priority_rule() -> None:
    rules = PreemptionRules(reclaim_within_cohort=ReclaimWithinCohort.LOWER_PRIORITY)
    snap = Snapshot(cluster(node("a").gpus(2)), quotas=quotas(("x", 1), ("y", 1), rules=rules))
    running(snap, replace(in_queue(10, "y"), priority=5), "a", (0,))
    running(snap, replace(in_queue(11, "y"), priority=5), "a", (1,))
    assert not schedule(snap, [in_queue(1, "x")], KUEUE, 0.0).preemptions
    # Equal priority and start: the lower id goes first.
    assert victims(schedule(snap, [replace(in_queue(1, "x"), priority=6)], KUEUE, 0.0)) == {
        10: Strategy.RECLAIM
    }


def test_fair_share_takes_from_the_queue_that_borrows_more() -> None:
    rules = PreemptionRules(
        reclaim_within_cohort=ReclaimWithinCohort.NEVER,
        fair_share=(FairShareRule.LTE_FINAL_SHARE,),
    )
    snap = Snapshot(
        cluster(node("a").gpus(6)), quotas=quotas(("x", 1), ("y", 1), ("z", 4), rules=rules)
    )
    # x borrows 1 (holds 2), y borrows 3 (holds 4): y's share is higher.
    running(snap, in_queue(10, "x"), "a", (0,))
    running(snap, in_queue(11, "x"), "a", (1,))
    for k in range(4):
        running(snap, in_queue(20 + k, "y"), "a", (2 + k,), at=float(k))
    plan = schedule(snap, [in_queue(1, "x")], KUEUE, 10.0)
    # After admission x borrows 2 (share 2/6); y after losing one borrows 2 (2/6): S2-a holds.
    assert victims(plan) == {23: Strategy.FAIR_SHARE}
    strict = PreemptionRules(
        reclaim_within_cohort=ReclaimWithinCohort.NEVER,
        fair_share=(FairShareRule.LT_INITIAL_SHARE,),
    )
    snap2 = Snapshot(
        cluster(node("a").gpus(6)), quotas=quotas(("x", 1), ("y", 1), ("z", 4), rules=strict)
    )
    for j in list(snap.running.values()):
        snap2.start(j)
    # S2-b: x after admission (2/6) < y before (3/6): also allowed.
    assert victims(schedule(snap2, [in_queue(1, "x")], KUEUE, 10.0)) == {23: Strategy.FAIR_SHARE}


def test_fair_share_refuses_when_the_preemptor_would_end_above_its_target() -> None:
    rules = PreemptionRules(
        reclaim_within_cohort=ReclaimWithinCohort.NEVER,
        fair_share=(FairShareRule.LTE_FINAL_SHARE, FairShareRule.LT_INITIAL_SHARE),
    )
    snap = Snapshot(
        cluster(node("a").gpus(4)), quotas=quotas(("x", 1), ("y", 1), ("z", 2), rules=rules)
    )
    for k in range(2):
        running(snap, in_queue(10 + k, "x"), "a", (k,))
        running(snap, in_queue(20 + k, "y"), "a", (2 + k,))
    # Both borrow 1; x taking one of y's would leave x at 2 borrowed vs y at 0.
    assert not schedule(snap, [in_queue(1, "x")], KUEUE, 0.0).preemptions


def test_las_preempts_only_more_served_jobs() -> None:
    las = get_policy("las")
    snap = Snapshot(cluster(node("a").gpus(2)), attained={1: 0.0, 2: 50_000.0})
    running(snap, job(10).build(), "a", (0,), at=0.0)  # 1 GPU for 7200 s: level 1
    running(snap, job(11).build(), "a", (1,), at=7_000.0)  # 200 GPU-s: level 0
    plan = schedule(snap, [job(1).build()], las, 7_200.0)
    assert victims(plan) == {10: Strategy.LAS}
    plan = schedule(snap, [job(2).build()], las, 7_200.0)  # attained 50,000: level 2
    assert not plan.preemptions


def test_fewest_victims_then_lowest_priority_then_checkpointable() -> None:
    snap = Snapshot(cluster(node("a").gpus(4), node("b").gpus(4)))
    running(snap, job(10).gpus(4).priority(1).build(), "a", (0, 1, 2, 3))
    for k in range(4):
        running(snap, job(20 + k).priority(0).build(), "b", (k,))
    plan = schedule(snap, [job(1).gpus(4).priority(9).build()], KUEUE, 0.0)
    assert set(victims(plan)) == {10}  # one victim beats four of lower priority
    snap = Snapshot(cluster(node("a").gpus(1), node("b").gpus(1), node("c").gpus(1)))
    running(snap, job(30).priority(2).build(), "a", (0,))
    running(snap, replace(job(31).priority(1).build(), checkpointable=False), "b", (0,), at=5.0)
    running(snap, replace(job(32).priority(1).build(), checkpointable=True), "c", (0,), at=1.0)
    plan = schedule(snap, [job(1).priority(9).build()], KUEUE, 10.0)
    assert set(victims(plan)) == {32}


def test_not_preemptible_and_stopping_jobs_are_never_victims() -> None:
    snap = Snapshot(cluster(node("a").gpus(1)))
    running(snap, replace(job(10).build(), preemptible=False), "a", (0,))
    assert not schedule(snap, [job(1).priority(9).build()], KUEUE, 0.0).preemptions


def test_a_preemptor_waits_for_its_victims_instead_of_taking_more() -> None:
    snap = Snapshot(cluster(node("a").gpus(2)))
    running(snap, job(10).build(), "a", (0,))
    running(snap, job(11).build(), "a", (1,))
    first = schedule(snap, [job(1).priority(9).build()], KUEUE, 0.0)
    assert len(first.preemptions) == 1
    snap.mark_stopping(first.preemptions[0].victim, first.preemptions[0].stop_by)
    snap.nominated.add(1)
    second = schedule(snap, [job(1).priority(9).build(), job(2).priority(9).build()], KUEUE, 5.0)
    assert second.pending[1].reason is Reason.WAITING_FOR_PREEMPTED
    assert second.pending[2].reason is Reason.WAITING_FOR_PREEMPTED
    assert not second.preemptions


def test_a_nominated_job_goes_first_once_its_victims_are_gone() -> None:
    snap = Snapshot(cluster(node("a").gpus(1)))
    snap.nominated.add(5)
    plan = schedule(snap, [job(1).priority(9).build(), job(5).build()], get_policy("priority"), 0.0)
    assert [s.job_id for s in plan.starts] == [5]


def test_policies_without_preemption_never_preempt() -> None:
    snap = Snapshot(cluster(node("a").gpus(1)))
    running(snap, job(10).build(), "a", (0,))
    for name in ("fifo", "backfill", "priority", "fairshare"):
        assert not schedule(snap, [job(1).priority(9).build()], get_policy(name), 0.0).preemptions


def test_within_queue_can_be_switched_off_per_queue() -> None:
    rules = PreemptionRules(within_queue=WithinQueue.NEVER)
    snap = Snapshot(cluster(node("a").gpus(1)), quotas=quotas(("x", 1), rules=rules))
    running(snap, in_queue(10, "x"), "a", (0,))
    assert not schedule(snap, [replace(in_queue(1, "x"), priority=9)], KUEUE, 0.0).preemptions
