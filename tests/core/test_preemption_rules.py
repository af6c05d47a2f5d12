"""The preemption rules of docs/quotas.md, one test each: victim sets that mix the
preemptor's own lower-priority jobs with other queues' borrowed jobs (taking its own jobs can
bring its queue back within nominal, which makes it eligible to reclaim), reclaim in nested
cohorts, borrowing while preempting, newer equal-priority jobs within a queue, the order of
victims across queues, minimum runtimes, pure borrowers, zero weights and cohort weights."""

from __future__ import annotations

from dataclasses import replace

from allot.core.cycle import schedule
from allot.core.model import JobSpec, RunningJob, TaskPlacement
from allot.core.policy import get_policy
from allot.core.preemption import Strategy
from allot.core.quota.config import (
    BorrowWithinCohort,
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


def _quotas() -> QuotaConfig:
    return QuotaConfig(
        (TenantSpec("x"), TenantSpec("y")),
        (
            QueueSpec("x", "x", "org", {GPU: ResourceQuota(2000)}),
            QueueSpec("y", "y", "org", {GPU: ResourceQuota(2000)}),
        ),
        (CohortSpec("org"),),
    )


def _run(snap: Snapshot, spec: JobSpec, devices: tuple[int, ...]) -> None:
    placement = tuple(TaskPlacement("a", devices, 1000) for _ in spec.tasks)
    snap.start(RunningJob(spec, 0.0, placement, "H100"))


def _in(job_id: int, queue: str, priority: int = 0, gpus: int = 1) -> JobSpec:
    return job(job_id).queue(queue).tenant(queue).priority(priority).gpus(gpus).build()


def test_own_low_priority_job_makes_the_queue_eligible_to_reclaim() -> None:
    # x: nominal 2, runs one priority -1 job on 1 GPU; y: nominal 2, runs three (borrows 1).
    # x's 2-GPU job at priority 0 is entitled to 2 GPUs: take x's own job (within the queue),
    # which brings x back within nominal, and y's borrowed one (reclaim).
    snap = Snapshot(cluster(node("a").gpus(4)), quotas=_quotas())
    _run(snap, _in(1, "x", priority=-1), (0,))
    for k, device in enumerate((1, 2, 3)):
        _run(snap, _in(10 + k, "y"), (device,))
    plan = schedule(snap, [_in(2, "x", gpus=2)], get_policy("kueue"), 100.0)
    chosen = {p.victim: p.strategy for p in plan.preemptions}
    assert len(chosen) == 2
    assert chosen[1] is Strategy.WITHIN_QUEUE
    assert set(chosen) - {1} <= {10, 11, 12}
    assert Strategy.RECLAIM in chosen.values()


def _tree_config(*queues: QueueSpec, cohorts: tuple[CohortSpec, ...]) -> QuotaConfig:
    tenants = tuple(TenantSpec(t) for t in sorted({q.tenant for q in queues}))
    return QuotaConfig(tenants, queues, cohorts)


def test_nested_reclaim_counts_the_preemptors_cohort_not_only_its_queue() -> None:
    # R has cohorts A (queues a1: 1 GPU, a2: 3 GPUs, idle) and B (b: 4 GPUs). a1 runs 1 and
    # asks for 2 more: over its own nominal, but A stays within A's 4. B borrows 2 from R.
    config = _tree_config(
        QueueSpec("a1", "a", "A", {GPU: ResourceQuota(1000)}),
        QueueSpec("a2", "a", "A", {GPU: ResourceQuota(3000)}),
        QueueSpec("b", "b", "B", {GPU: ResourceQuota(4000)}),
        cohorts=(CohortSpec("R"), CohortSpec("A", "R"), CohortSpec("B", "R")),
    )
    snap = Snapshot(cluster(node("a").gpus(8)), quotas=config)
    _run(snap, _in(1, "a1"), (0,))
    for k in range(6):
        _run(snap, _in(10 + k, "b"), (1 + k,))
    _run(snap, _in(20, "b"), (7,))  # b holds 7: borrows 3 of A's idle quota... minus a1's 1
    plan = schedule(snap, [_in(2, "a1", gpus=2)], get_policy("kueue"), 100.0)
    chosen = {p.victim: p.strategy for p in plan.preemptions}
    assert len(chosen) == 2
    assert set(chosen.values()) == {Strategy.RECLAIM}
    assert set(chosen) <= {10, 11, 12, 13, 14, 15, 20}


def test_borrowing_while_preempting_takes_lower_priorities_up_to_the_threshold() -> None:
    def config(rules: PreemptionRules) -> QuotaConfig:
        return _tree_config(
            QueueSpec("x", "x", "org", {GPU: ResourceQuota(1000)}, preemption=rules),
            QueueSpec("y", "y", "org", {GPU: ResourceQuota(1000)}),
            QueueSpec("z", "z", "org", {GPU: ResourceQuota(1000)}),  # idle: lends its GPU
            cohorts=(CohortSpec("org"),),
        )

    def victims_with(rules: PreemptionRules) -> dict[int, Strategy]:
        snap = Snapshot(cluster(node("a").gpus(3)), quotas=config(rules))
        _run(snap, _in(1, "x"), (0,))  # x at its nominal
        _run(snap, _in(4, "y"), (1,))
        _run(snap, _in(2, "y", priority=-5), (2,))  # y borrows z's GPU
        plan = schedule(snap, [_in(3, "x", priority=5)], get_policy("kueue"), 100.0)
        return {p.victim: p.strategy for p in plan.preemptions}

    # x would borrow to admit its job, so it may not reclaim; within its queue it may take
    # its own lower-priority job 1 instead.
    assert victims_with(PreemptionRules(within_queue=WithinQueue.NEVER)) == {}
    borrow = PreemptionRules(
        within_queue=WithinQueue.NEVER, borrow_within_cohort=BorrowWithinCohort.LOWER_PRIORITY
    )
    assert victims_with(borrow) == {2: Strategy.BORROW_WITHIN_COHORT}
    assert victims_with(replace(borrow, max_priority_threshold=-5)) == {
        2: Strategy.BORROW_WITHIN_COHORT
    }
    assert victims_with(replace(borrow, max_priority_threshold=-6)) == {}


def test_newer_jobs_of_equal_priority_may_be_preempted_within_the_queue() -> None:
    rules = PreemptionRules(within_queue=WithinQueue.LOWER_OR_NEWER_EQUAL_PRIORITY)
    config = _tree_config(QueueSpec("x", "x", preemption=rules), cohorts=())
    snap = Snapshot(cluster(node("a").gpus(1)), quotas=config)
    newer = replace(_in(5, "x"), submit_time=50.0)
    _run(snap, newer, (0,))
    older = replace(_in(1, "x"), submit_time=10.0)
    plan = schedule(snap, [older], get_policy("kueue"), 100.0)
    assert {p.victim: p.strategy for p in plan.preemptions} == {5: Strategy.WITHIN_QUEUE}
    # The other way round nothing happens: the older job is never taken by a newer one.
    snap = Snapshot(cluster(node("a").gpus(1)), quotas=config)
    _run(snap, older, (0,))
    assert schedule(snap, [newer], get_policy("kueue"), 100.0).preemptions == ()


def test_other_queues_borrowed_jobs_go_before_the_queues_own() -> None:
    # x (nominal 2) runs one low-priority job; y borrows one. Either victim frees the GPU x's
    # new job needs: the borrowed one is taken, the queue's own job keeps running.
    y_borrows = replace(_quotas(), queues=(
        QueueSpec("x", "x", "org", {GPU: ResourceQuota(2000)}),
        QueueSpec("y", "y", "org", {GPU: ResourceQuota(0)}),
    ))  # fmt: skip
    snap = Snapshot(cluster(node("a").gpus(2)), quotas=y_borrows)
    _run(snap, _in(1, "x", priority=-1), (0,))
    _run(snap, _in(2, "y"), (1,))
    plan = schedule(snap, [_in(3, "x")], get_policy("kueue"), 100.0)
    assert {p.victim: p.strategy for p in plan.preemptions} == {2: Strategy.RECLAIM}


def test_a_job_is_not_preempted_before_its_minimum_runtime() -> None:
    def plan_at(now: float, config: QuotaConfig, priority: int = 0) -> dict[int, Strategy]:
        snap = Snapshot(cluster(node("a").gpus(1)), quotas=config)
        spec = replace(_in(1, "x", priority=priority - 1))
        snap.start(RunningJob(spec, 1000.0, (TaskPlacement("a", (0,), 1000),), "H100"))
        plan = schedule(snap, [_in(2, "x", priority=priority)], get_policy("kueue"), now)
        return {p.victim: p.strategy for p in plan.preemptions}

    exempt = PreemptionRules(min_runtime_seconds=600.0)
    config = _tree_config(QueueSpec("x", "x", preemption=exempt), cohorts=())
    assert plan_at(1000.0 + 599, config) == {}
    assert plan_at(1000.0 + 600, config) == {1: Strategy.WITHIN_QUEUE}
    # By priority class: jobs of class "batch" (priority 9) are exempt for 300 s.
    by_class = replace(
        _tree_config(QueueSpec("x", "x"), cohorts=()),
        priority_classes={"batch": 9, "urgent": 10},
        min_runtime_by_class={"batch": 300.0},
    )
    assert plan_at(1000.0 + 299, by_class, priority=10) == {}
    assert plan_at(1000.0 + 300, by_class, priority=10) == {1: Strategy.WITHIN_QUEUE}


def test_a_pure_borrower_gives_back_what_it_borrowed() -> None:
    config = _tree_config(
        QueueSpec("owner", "o", "org", {GPU: ResourceQuota(2000)}),
        QueueSpec("borrower", "b", "org"),
        cohorts=(CohortSpec("org"),),
    )
    snap = Snapshot(cluster(node("a").gpus(2)), quotas=config)
    _run(snap, _in(1, "borrower"), (0,))
    _run(snap, _in(2, "borrower"), (1,))
    plan = schedule(snap, [_in(3, "owner")], get_policy("kueue"), 100.0)
    assert list({p.victim: p.strategy for p in plan.preemptions}.values()) == [Strategy.RECLAIM]


def test_two_zero_weight_queues_compare_what_they_borrow() -> None:
    rules = PreemptionRules(
        reclaim_within_cohort=ReclaimWithinCohort.NEVER,
        fair_share=(FairShareRule.LT_INITIAL_SHARE,),
    )
    config = _tree_config(
        QueueSpec("x", "x", "org", {GPU: ResourceQuota(0)}, weight=0, preemption=rules),
        QueueSpec("y", "y", "org", {GPU: ResourceQuota(0)}, weight=0, preemption=rules),
        QueueSpec("lender", "l", "org", {GPU: ResourceQuota(4000)}),
        cohorts=(CohortSpec("org"),),
    )
    snap = Snapshot(cluster(node("a").gpus(4)), quotas=config)
    for k in range(4):  # y borrows everything
        _run(snap, _in(10 + k, "y"), (k,))
    tree = snap.quota
    assert tree is not None
    assert tree.dominant_share("y") == float("inf")
    plan = schedule(snap, [_in(1, "x")], get_policy("kueue"), 100.0)
    # Infinity against infinity would refuse; at weight 1, x (1 GPU) < y (4 GPUs).
    assert list({p.victim: p.strategy for p in plan.preemptions}.values()) == [Strategy.FAIR_SHARE]


def test_cohort_weights_scale_the_cohorts_share() -> None:
    config = _tree_config(
        QueueSpec("a", "a", "A", {GPU: ResourceQuota(1000)}),
        QueueSpec("b", "b", "B", {GPU: ResourceQuota(1000)}),
        cohorts=(CohortSpec("R"), CohortSpec("A", "R", weight=2.0), CohortSpec("B", "R")),
    )
    tree = Snapshot(cluster(node("a").gpus(2)), quotas=config).quota
    assert tree is not None
    tree.add("a", {GPU: 2000})
    tree.add("b", {GPU: 2000})
    shares = {name: tree.share(tree.cohorts[name]) for name in ("A", "B")}
    assert shares["A"] == shares["B"] / 2


def test_a_swap_within_a_queue_on_borrowed_quota_cannot_start_a_three_queue_round() -> None:
    # q1 takes q2's borrowed room by fair share; q2 reclaims it with a one-GPU job and a
    # queue-mate borrows what is left; if q2's older two-GPU job could then swap for both, it
    # would run on borrowed quota again and the three preemptions would go round for ever.
    # Swaps within a queue happen on its own quota only, so the replay settles.
    gpu, cpu = ("H100", "gpu"), ("H100", "cpu")
    classic = PreemptionRules(
        within_queue=WithinQueue.LOWER_OR_NEWER_EQUAL_PRIORITY, grace_seconds=0.0
    )
    fair = PreemptionRules(
        reclaim_within_cohort=ReclaimWithinCohort.NEVER,
        fair_share=(FairShareRule.LT_INITIAL_SHARE,),
        grace_seconds=0.0,
    )
    quotas = QuotaConfig(
        (TenantSpec("t1"), TenantSpec("t2")),
        (
            QueueSpec("q1", "t1", "org", {gpu: ResourceQuota(2000), cpu: ResourceQuota(4000)},
                      preemption=fair),
            QueueSpec("q2", "t2", "org", {gpu: ResourceQuota(1000), cpu: ResourceQuota(4000)},
                      weight=0.5, preemption=classic),
        ),
        (CohortSpec("org"),),
    )  # fmt: skip
    snap = Snapshot(cluster(node("n0").gpus(4)), quotas=quotas)
    waves = [
        [job(8).gpus(1).cpus(1).tasks(2).queue("q2").tenant("t2").build()]
        + [job(i).gpus(1).cpus(1).queue("q2").tenant("t2").build() for i in (9, 10, 11, 12)],
        [job(13).gpus(1).cpus(1).queue("q1").tenant("t1").build(),
         job(14).gpus(1).cpus(1).tasks(2).queue("q1").tenant("t1").build()],
    ]  # fmt: skip
    pending: dict[int, JobSpec] = {}
    plans = []
    for _ in range(40):
        if waves and (not plans or not (plans[-1].starts or plans[-1].preemptions)):
            pending.update({j.id: j for j in waves.pop(0)})
        plan = schedule(snap, list(pending.values()), get_policy("kueue"), 0.0)
        plans.append(plan)
        for p in plan.preemptions:
            pending[p.victim] = snap.running[p.victim].spec
            snap.finish(p.victim)
            snap.nominated.add(p.preemptor)
        for s in plan.starts:
            snap.start(RunningJob(pending.pop(s.job_id), 0.0, s.placement, s.flavor))
            snap.nominated.discard(s.job_id)
        if not waves and not plan.starts and not plan.preemptions:
            break
    assert not plans[-1].starts, "no fixed point"
    assert not plans[-1].preemptions, "no fixed point"
    assert sum(len(p.preemptions) for p in plans) <= 4
