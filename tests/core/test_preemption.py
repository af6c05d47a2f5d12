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
    # Two low-priority jobs, one already stopping: a new preemptor that needs two GPUs finds
    # no allowed set (the stopping one is no victim), and one that needs a single GPU waits
    # for the stopping job instead of taking the other one.
    snap = Snapshot(cluster(node("a").gpus(2)))
    running(snap, job(20).build(), "a", (0,))
    running(snap, job(21).build(), "a", (1,))
    snap.mark_stopping(21, 40.0)
    wants_two = schedule(snap, [job(2).gpus(2).priority(9).build()], KUEUE, 10.0)
    assert not wants_two.preemptions
    wants_one = schedule(snap, [job(3).priority(9).build()], KUEUE, 10.0)
    assert not wants_one.preemptions
    assert wants_one.pending[3].reason is Reason.WAITING_FOR_PREEMPTED


def test_a_gang_takes_the_fewest_victims_whole_nodes_over_many_small_jobs() -> None:
    snap = Snapshot(cluster(node("a").gpus(4), node("b").gpus(4), node("c").gpus(4)))
    for k in range(4):
        running(snap, job(20 + k).priority(0).build(), "a", (k,))
    running(snap, job(10).gpus(4).priority(1).build(), "b", (0, 1, 2, 3))
    running(snap, job(11).gpus(4).priority(1).build(), "c", (0, 1, 2, 3))
    plan = schedule(snap, [job(1).gpus(4).tasks(2).priority(9).build()], KUEUE, 0.0)
    # Two whole-node holders beat four one-GPU jobs plus one holder.
    assert set(victims(plan)) == {10, 11}


def test_gang_victims_tie_break_by_priority_then_recency() -> None:
    snap = Snapshot(cluster(node("a").gpus(4), node("b").gpus(4), node("c").gpus(4)))
    running(snap, job(10).gpus(4).priority(2).build(), "a", (0, 1, 2, 3), at=0.0)
    running(snap, job(11).gpus(4).priority(1).build(), "b", (0, 1, 2, 3), at=0.0)
    running(snap, job(12).gpus(4).priority(1).build(), "c", (0, 1, 2, 3), at=5.0)
    plan = schedule(snap, [job(1).gpus(4).tasks(1).priority(9).build()], KUEUE, 10.0)
    assert set(victims(plan)) == {12}  # lowest priority, most recently started
    plan = schedule(snap, [job(1).gpus(4).tasks(2).priority(9).build()], KUEUE, 10.0)
    assert set(victims(plan)) == {11, 12}  # two victims either way: the lower priorities


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


def _stop(snap: Snapshot, plan: Plan) -> None:
    """Apply ``plan``'s preemptions the way a driver does: victims stopping, preemptor
    nominated."""
    for p in plan.preemptions:
        snap.mark_stopping(p.victim, p.stop_by)
        snap.nominated.add(p.preemptor)


def _start(snap: Snapshot, plan: Plan, specs: dict[int, JobSpec], at: float) -> None:
    for s in plan.starts:
        snap.start(RunningJob(specs[s.job_id], at, s.placement, s.flavor))
        snap.nominated.discard(s.job_id)


def test_a_waiting_preemptor_holds_its_own_room_only() -> None:
    rules = PreemptionRules(grace_seconds=60)
    snap = Snapshot(
        cluster(node("a").gpus(4), node("b").gpus(4)),
        quotas=quotas(("x", 2), ("y", 2), ("z", 4), rules=rules),
    )
    for k in range(4):  # y borrows 2
        running(snap, in_queue(10 + k, "y"), "a", (k,), at=float(k))
    for k in range(3):
        running(snap, in_queue(20 + k, "z"), "b", (k,))
    x = replace(in_queue(1, "x"), tasks=job(1).gpus(2).build().tasks)
    z = in_queue(2, "z")
    first = schedule(snap, [x, z], KUEUE, 0.0)
    assert victims(first) == {12: Strategy.RECLAIM, 13: Strategy.RECLAIM}
    # z's job is within z's nominal and fits b3, which x does not need: it starts at once.
    assert [s.job_id for s in first.starts] == [2]
    _stop(snap, first)
    _start(snap, first, {2: z}, 0.0)
    second = schedule(snap, [x], KUEUE, 10.0)
    waiting = second.pending[1]
    assert waiting.reason is Reason.WAITING_FOR_PREEMPTED
    assert (waiting.fields["victims"], waiting.fields["stop_by"]) == ("12, 13", 60.0)
    assert not second.preemptions
    snap.finish(12)
    snap.finish(13)
    third = schedule(snap, [x], KUEUE, 60.0)
    assert [s.job_id for s in third.starts] == [1]


def test_no_one_takes_the_room_a_preemptor_waits_for() -> None:
    rules = PreemptionRules(grace_seconds=60)
    config = QuotaConfig(
        (TenantSpec("x"), TenantSpec("y"), TenantSpec("solo")),
        (
            QueueSpec("x", "x", "org", {GPU: ResourceQuota(4000)}, preemption=rules),
            QueueSpec("y", "y", "org", {GPU: ResourceQuota(4000)}, preemption=rules),
            QueueSpec("solo", "solo", None, {GPU: ResourceQuota(4000)}, preemption=rules),
        ),
        (CohortSpec("org"),),
    )
    snap = Snapshot(cluster(*(node(n).gpus(4) for n in "abcd")), quotas=config)
    for k in range(4):
        running(snap, in_queue(10 + k, "y"), "a", (k,), at=0.0)
    running(snap, in_queue(14, "y"), "b", (0,), at=5.0)  # y borrows these two
    running(snap, in_queue(15, "y"), "b", (1,), at=6.0)
    x = replace(in_queue(1, "x"), tasks=job(1).gpus(4).build().tasks)
    first = schedule(snap, [x], KUEUE, 0.0)
    assert victims(first) == {14: Strategy.RECLAIM, 15: Strategy.RECLAIM}
    _stop(snap, first)
    # During the grace period: y's next job fits the quota now, but not once x has started,
    # so it waits behind x; a job of another tree that fits elsewhere starts.
    y_job = in_queue(2, "y")
    solo = replace(in_queue(3, "solo"), tasks=job(3).gpus(4).build().tasks)
    during = schedule(snap, [x, y_job, solo], KUEUE, 10.0)
    assert [s.job_id for s in during.starts] == [3]
    assert during.pending[1].reason is Reason.WAITING_FOR_PREEMPTED
    assert during.pending[2].reason is Reason.BEHIND_PREEMPTOR
    assert during.pending[2].fields["preemptor"] == 1
    _start(snap, during, {3: solo}, 10.0)
    snap.finish(14)
    snap.finish(15)
    after = schedule(snap, [x, y_job], KUEUE, 60.0)
    assert [s.job_id for s in after.starts] == [1]
    assert not after.preemptions


def test_fair_share_across_nested_cohorts_compares_at_the_common_ancestor() -> None:
    rules = PreemptionRules(
        reclaim_within_cohort=ReclaimWithinCohort.NEVER,  # so fair share alone decides
        fair_share=(FairShareRule.LTE_FINAL_SHARE, FairShareRule.LT_INITIAL_SHARE),
    )
    config = QuotaConfig(
        (TenantSpec("t"),),
        (
            QueueSpec("qa1", "t", "A", {GPU: ResourceQuota(1000)}, preemption=rules),
            QueueSpec("qa2", "t", "A", {GPU: ResourceQuota(1000)}, preemption=rules),
            QueueSpec("qb", "t", "B", {GPU: ResourceQuota(6000)}, preemption=rules),
        ),
        (CohortSpec("R"), CohortSpec("A", "R"), CohortSpec("B", "R")),
    )
    snap = Snapshot(cluster(node("n").gpus(8)), quotas=config)
    running(snap, job(1).queue("qa1").tenant("t").build(), "n", (0,))
    for k in range(7):  # qb borrows one GPU of A's idle quota
        running(snap, job(10 + k).queue("qb").tenant("t").build(), "n", (1 + k,), at=float(k))
    tree = snap.quota
    assert tree is not None
    sides = tree.sides("qa1", "qb")
    assert sides is not None
    assert [n.name for n in sides] == ["A", "B"]
    assert [n.name for n in tree.sides("qa1", "qa2") or ()] == ["qa1", "qa2"]
    # qa1 borrows qa2's idle GPU inside A, so A borrows nothing from R; B borrows 1 of 8.
    plan = schedule(snap, [job(2).queue("qa1").tenant("t").build()], KUEUE, 0.0)
    assert victims(plan) == {16: Strategy.FAIR_SHARE}


def test_fair_share_counts_the_room_the_preemptors_queue_mates_would_take() -> None:
    rules = PreemptionRules(
        reclaim_within_cohort=ReclaimWithinCohort.NEVER,
        fair_share=(FairShareRule.LT_INITIAL_SHARE,),
    )
    snap = Snapshot(
        cluster(node("a").gpus(8), node("b").gpus(8)),
        quotas=quotas(("x", 0), ("y", 6), ("z", 3), rules=rules),
    )
    running(snap, in_queue(10, "y"), "a", (0,), at=0.0)
    running(snap, in_queue(11, "y"), "a", (1,), at=1.0)
    running(snap, in_queue(12, "y"), "a", (2,), at=2.0)
    running(snap, in_queue(13, "y"), "a", (3,), at=3.0)
    big = replace(in_queue(14, "y"), tasks=job(14).gpus(4).build().tasks)
    running(snap, big, "b", (0, 1, 2, 3), at=4.0)  # y holds 8 of the pool's 9: borrows 2
    running(snap, in_queue(20, "z"), "a", (4,))
    # Alone, x's one-GPU job may evict y's newest job, the large one: x ends at 1/9, below y's
    # 2/9 before.
    alone = schedule(snap, [in_queue(1, "x")], KUEUE, 10.0)
    assert victims(alone) == {14: Strategy.FAIR_SHARE}
    # With three more of x's jobs waiting, they would take the three GPUs job 1 does not need,
    # leaving x at 4/9, above y's 2/9: y would take them back. Only a one-GPU victim qualifies.
    crowd = [in_queue(k, "x") for k in (1, 2, 3, 4)]
    plan = schedule(snap, crowd, KUEUE, 10.0)
    assert victims(plan) == {13: Strategy.FAIR_SHARE}


def test_a_swap_within_a_queue_never_makes_the_queue_borrow_more() -> None:
    snap = Snapshot(cluster(node("a").gpus(4)), quotas=quotas(("x", 2), ("y", 2)))
    running(snap, in_queue(10, "x"), "a", (0,))
    running(snap, in_queue(11, "x"), "a", (1,))
    urgent = replace(in_queue(1, "x"), priority=9, tasks=job(1).gpus(2).build().tasks)
    running(snap, in_queue(20, "y"), "a", (2,))
    running(snap, in_queue(21, "y"), "a", (3,))
    # Within its nominal quota, x's urgent job may take the place of its own jobs.
    assert victims(schedule(snap, [urgent], KUEUE, 0.0)) == {
        10: Strategy.WITHIN_QUEUE,
        11: Strategy.WITHIN_QUEUE,
    }
    # A job that would make x borrow by swapping out x's own jobs does not: x would become a
    # fair-share target it was not.
    snap.finish(20)
    snap.finish(21)
    bigger = replace(urgent, tasks=job(1).gpus(3).build().tasks)
    assert not schedule(snap, [bigger], KUEUE, 0.0).preemptions
