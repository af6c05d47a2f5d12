"""Invariants of quotas and preemption over random cohort trees, quotas and job streams.

Each scenario is driven for several rounds: schedule, apply the plan (victims stop at once and
are requeued; the preemptor is nominated; starts run), finish a few jobs, and check.

- A queue never uses more than its nominal quota plus its borrowing limit, and a cohort never
  hands out the part of a member's quota that member does not lend (checked from the running
  jobs with the tree's documented formulas, not the tree's own counters).
- A queue at or under its nominal quota gets its nominal back by reclaim within a bounded
  number of cycles, when the other queues' jobs are preemptible.
- Every preemption is one the preemptor's queue rules and the policy allow.
- Replaying a scenario at a fixed instant reaches a fixed point, and no two jobs preempt each
  other (no ping-pong).
- The same inputs give the same Plan, and ``schedule`` leaves quota usage as it found it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allot.core.cycle import schedule
from allot.core.model import Cluster, JobSpec, Node, Resources, RunningJob
from allot.core.plan import Plan
from allot.core.policy import Policy, get_policy
from allot.core.preemption import Strategy
from allot.core.quota import request_of
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

FLAVOR = "H100"
GPU = (FLAVOR, "gpu")
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PREEMPTING = ("kueue", "allot")


@dataclass(frozen=True)
class World:
    cluster: Cluster
    quotas: QuotaConfig
    jobs: tuple[JobSpec, ...]


@st.composite
def worlds(draw: st.DrawFn, *, one_gpu_jobs: bool = False) -> World:
    node_gpus = draw(st.sampled_from((4, 8)))
    nodes = tuple(
        Node(f"n{i}", FLAVOR, node_gpus, 256_000, 1 << 20) for i in range(draw(st.integers(1, 4)))
    )
    capacity = node_gpus * len(nodes)
    nested = draw(st.booleans())
    cohorts = (
        (CohortSpec("root"), CohortSpec("a", "root"), CohortSpec("b", "root"))
        if nested
        else (CohortSpec("org"),)
    )
    count = draw(st.integers(2, 4))
    left = capacity
    queues = []
    for k in range(count):
        nominal = draw(st.integers(0, max(0, left)))
        left -= nominal
        rules = PreemptionRules(
            within_queue=draw(st.sampled_from(list(WithinQueue))),
            reclaim_within_cohort=draw(st.sampled_from(list(ReclaimWithinCohort))),
            fair_share=tuple(draw(st.sets(st.sampled_from(list(FairShareRule))))),
            grace_seconds=float(draw(st.integers(0, 60))),
        )
        quota = ResourceQuota(
            nominal * 1000,
            draw(st.one_of(st.none(), st.integers(0, capacity).map(lambda g: g * 1000))),
            draw(st.one_of(st.none(), st.integers(0, nominal).map(lambda g: g * 1000))),
        )
        cohort = ("a", "b")[k % 2] if nested else "org"
        queues.append(
            QueueSpec(
                f"q{k}",
                f"t{k}",
                cohort,
                {GPU: quota},
                weight=draw(st.sampled_from((1.0, 2.0))),
                preemption=rules,
            )
        )
    config = QuotaConfig(tuple(TenantSpec(f"t{k}") for k in range(count)), tuple(queues), cohorts)
    jobs = []
    for j in range(draw(st.integers(1, 16))):
        k = draw(st.integers(0, count - 1))
        gpus = 1 if one_gpu_jobs else draw(st.sampled_from((1, 1, 2, 4)))
        tasks = 1 if one_gpu_jobs else draw(st.sampled_from((1, 1, 2)))
        jobs.append(
            JobSpec(
                j + 1,
                f"t{k}",
                "u",
                f"q{k}",
                (Resources(gpus * 1000, 1000, 1024),) * tasks,
                priority=draw(st.integers(0, 2)),
                submit_time=float(j),
                runtime_estimate=float(draw(st.integers(10, 500))),
                checkpointable=draw(st.booleans()),
            )
        )
    return World(Cluster(nodes), config, tuple(jobs))


def _usage(running: list[RunningJob]) -> dict[str, int]:
    usage: dict[str, int] = defaultdict(int)
    for job in running:
        usage[job.spec.queue] += job.spec.total.gpu_milli
    return usage


def assert_within_limits(config: QuotaConfig, running: list[RunningJob]) -> None:
    """Recompute the tree from the running jobs with the documented formulas and check it."""
    usage = _usage(running)
    children: dict[str, list[tuple[str, ResourceQuota, bool]]] = defaultdict(list)
    for q in config.queues:
        assert q.quotas is not None
        quota = q.quotas[GPU]
        if quota.borrowing_limit is not None:
            assert usage[q.name] <= quota.nominal + quota.borrowing_limit, q.name
        if q.cohort:
            children[q.cohort].append((q.name, quota, True))
    for c in config.cohorts:
        if c.parent:
            children[c.parent].append((c.name, ResourceQuota(), False))

    def values(name: str, quota: ResourceQuota, leaf: bool) -> tuple[int, int]:
        """(subtree quota, usage counted in the parent's pool) of one node."""
        if leaf:
            subtree, used = quota.nominal, usage[name]
        else:
            subtree, used = 0, 0
            for child in children[name]:
                child_subtree, child_used = values(*child)
                subtree += child_subtree
                used += child_used
        guaranteed = 0 if quota.lending_limit is None else max(0, subtree - quota.lending_limit)
        # What the node keeps for itself never goes to the pool; only the rest is shared.
        return subtree - guaranteed, max(0, used - guaranteed)

    for root in (c for c in config.cohorts if c.parent is None):
        pool, drawn = values(root.name, ResourceQuota(), False)
        assert drawn <= pool, (root.name, drawn, pool)


def _apply(snap: Snapshot, pending: dict[int, JobSpec], plan: Plan, now: float) -> None:
    for preemption in plan.preemptions:
        victim = snap.running[preemption.victim]
        snap.finish(preemption.victim)
        pending[preemption.victim] = victim.spec
        snap.nominated.add(preemption.preemptor)
    for start in plan.starts:
        spec = pending.pop(start.job_id)
        snap.nominated.discard(start.job_id)
        snap.start(RunningJob(spec, now, start.placement, start.flavor))


def _allowed(
    snap: Snapshot, policy: Policy, spec: JobSpec, victim: RunningJob, strategy: Strategy
) -> bool:
    """Independent statement of each strategy's rule, at the state before the plan."""
    assert snap.quota is not None
    rules = snap.quota.config.queue_by_name[spec.queue].preemption
    tree = snap.quota
    if strategy not in policy.preemption or not victim.spec.preemptible:
        return False
    if strategy is Strategy.WITHIN_QUEUE:
        return (
            rules.within_queue is WithinQueue.LOWER_PRIORITY
            and victim.spec.queue == spec.queue
            and victim.spec.priority < spec.priority
        )
    same_root = tree.cohort_root(spec.queue) == tree.cohort_root(victim.spec.queue) is not None
    if strategy is Strategy.RECLAIM:
        lower_ok = rules.reclaim_within_cohort is ReclaimWithinCohort.ANY or (
            rules.reclaim_within_cohort is ReclaimWithinCohort.LOWER_PRIORITY
            and victim.spec.priority < spec.priority
        )
        return (
            lower_ok
            and same_root
            and victim.spec.queue != spec.queue
            and tree.within_nominal(spec.queue, request_of(spec, FLAVOR))
            and tree.borrowing(victim.spec.queue, GPU) > 0
        )
    if strategy is Strategy.FAIR_SHARE:
        return bool(rules.fair_share) and same_root and tree.dominant_share(victim.spec.queue) > 0
    return False


def _drive(
    world: World, policy: Policy, rounds: int, *, finish_some: bool
) -> tuple[Snapshot, dict[int, JobSpec], list[tuple[int, int]]]:
    snap = Snapshot(world.cluster, quotas=world.quotas)
    pending = {j.id: j for j in world.jobs}
    pairs: list[tuple[int, int]] = []
    for step in range(rounds):
        now = float(step) if finish_some else 0.0
        before = dict(snap.running)
        plan = schedule(snap, list(pending.values()), policy, now)
        specs = dict(pending)
        for p in plan.preemptions:
            assert _allowed(snap, policy, specs[p.preemptor], before[p.victim], p.strategy), p
            pairs.append((p.preemptor, p.victim))
        _apply(snap, pending, plan, now)
        assert_within_limits(world.quotas, list(snap.running.values()))
        if finish_some and snap.running and step % 2:
            snap.finish(min(snap.running))
        if not plan.starts and not plan.preemptions and not finish_some:
            break
    return snap, pending, pairs


@SETTINGS
@given(worlds(), st.sampled_from(("fifo", "backfill", "kueue", "allot", "fairshare")))
def test_usage_stays_within_nominal_plus_borrowing_and_lending_limits(
    world: World, name: str
) -> None:
    _drive(world, get_policy(name), 12, finish_some=True)


@SETTINGS
@given(worlds(), st.sampled_from(PREEMPTING))
def test_replay_reaches_a_fixed_point_without_ping_pong(world: World, name: str) -> None:
    policy = get_policy(name)
    limit = 4 * len(world.jobs) + 4
    snap, pending, pairs = _drive(world, policy, limit, finish_some=False)
    plan = schedule(snap, list(pending.values()), policy, 0.0)
    assert not plan.starts, "no fixed point within the bound"
    assert not plan.preemptions, "no fixed point within the bound"
    taken = set(pairs)
    assert not any((victim, preemptor) in taken for preemptor, victim in taken)


@SETTINGS
@given(worlds(one_gpu_jobs=True), st.sampled_from(PREEMPTING))
def test_a_queue_within_nominal_reclaims_in_bounded_time(world: World, name: str) -> None:
    policy = get_policy(name)
    config = world.quotas
    # Let every queue reclaim, and give q0 a backlog that stays within its nominal quota.
    queues = tuple(
        QueueSpec(q.name, q.tenant, q.cohort, q.quotas, q.weight, PreemptionRules(grace_seconds=0))
        for q in config.queues
    )
    config = QuotaConfig(config.tenants, queues, config.cohorts)
    assert queues[0].quotas is not None
    nominal = queues[0].quotas[GPU].nominal // 1000
    others = [j for j in world.jobs if j.queue != "q0"]
    mine = [
        JobSpec(1000 + k, "t0", "u", "q0", (Resources(1000, 1000, 1024),), submit_time=1e6 + k)
        for k in range(nominal)
    ]
    snap = Snapshot(world.cluster, quotas=config)
    pending = {j.id: j for j in others}
    for _ in range(len(others) + 2):  # let the others fill the cluster first
        plan = schedule(snap, list(pending.values()), policy, 0.0)
        _apply(snap, pending, plan, 0.0)
    pending.update({j.id: j for j in mine})
    for _ in range(2 * nominal + 2):
        plan = schedule(snap, list(pending.values()), policy, 0.0)
        _apply(snap, pending, plan, 0.0)
    assert not any(j.id in pending for j in mine), "q0 did not get its nominal quota back"


@SETTINGS
@given(worlds(), st.sampled_from(PREEMPTING))
def test_same_inputs_same_plan_and_quota_usage_restored(world: World, name: str) -> None:
    policy = get_policy(name)
    snap, pending, _ = _drive(world, policy, 3, finish_some=True)
    assert snap.quota is not None
    tree = snap.quota

    def usage() -> dict[str, dict[object, int]]:
        nodes = {**tree.queues, **{f"cohort {c}": n for c, n in tree.cohorts.items()}}
        return {name: {fr: v for fr, v in n.usage.items() if v} for name, n in nodes.items()}

    before = usage()
    first = schedule(snap, list(pending.values()), policy, 5.0)
    assert usage() == before
    assert schedule(snap, list(reversed(pending.values())), policy, 5.0) == first
