"""The settled tail and the pending index change how much a cycle walks, never what it decides.

- Stopping once the tail is settled gives the same Plan, explanations included, as taking every
  job one by one (``allot.core.tail``).
- A snapshot whose pending index was built for other jobs (some gone, some new, some with more
  attained service) gives the same Plan as a fresh snapshot (``allot.core.pending_index``);
  so does one kept with a driver's journal of pending jobs (``allot.core.pending_jobs``) after
  any puts, pops and replacements, and one handed an equal copy of the list it saw last time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allot.core import cycle
from allot.core.cycle import schedule
from allot.core.explain import Reason
from allot.core.model import (
    Cluster,
    JobSpec,
    Node,
    NodeState,
    Resources,
    RunningJob,
    TaskPlacement,
)
from allot.core.pending_index import pending_index
from allot.core.pending_jobs import PendingChangedError, PendingJobs
from allot.core.plan import Plan
from allot.core.policy import POLICIES, get_policy
from allot.core.quota.config import (
    CohortSpec,
    FairShareRule,
    PreemptionRules,
    QueueSpec,
    QuotaConfig,
    ResourceQuota,
    TenantSpec,
)
from allot.core.snapshot import Snapshot

FLAVORS = ("A100", "H100")
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Scenario:
    cluster: Cluster
    running: tuple[RunningJob, ...]
    pending: tuple[JobSpec, ...]
    quotas: QuotaConfig | None = None

    def snapshot(self) -> Snapshot:
        return Snapshot(self.cluster, self.running, quotas=self.quotas)


@st.composite
def _quotas(draw: st.DrawFn) -> QuotaConfig | None:
    """None, or queues q (tenant t1) and r (t2) with GPU quotas in one cohort, with reclaim,
    fair-share and within-queue preemption rules."""
    if not draw(st.booleans()):
        return None
    both = (FairShareRule.LTE_FINAL_SHARE, FairShareRule.LT_INITIAL_SHARE)
    fair: tuple[FairShareRule, ...] = both if draw(st.booleans()) else ()

    def queue(name: str, tenant: str) -> QueueSpec:
        return QueueSpec(
            name,
            tenant,
            "org",
            {
                (f, "gpu"): ResourceQuota(
                    draw(st.sampled_from((0, 1000, 4000))),
                    draw(st.sampled_from((None, 0, 2000))),
                )
                for f in FLAVORS
            },
            preemption=PreemptionRules(fair_share=fair),
        )

    return QuotaConfig(
        (TenantSpec("t1"), TenantSpec("t2")), (queue("q", "t1"), queue("r", "t2")),
        (CohortSpec("org"),),
    )  # fmt: skip


@st.composite
def _jobs(draw: st.DrawFn, first_id: int, count: int) -> list[JobSpec]:
    return [
        JobSpec(
            first_id + k,
            draw(st.sampled_from(("t1", "t2"))),
            "u",
            draw(st.sampled_from(("q", "r"))),
            (
                Resources(
                    draw(st.sampled_from((0, 500, 1000, 2000, 4000, 8000))),
                    draw(st.sampled_from((1000, 4000, 16_000))),
                    draw(st.sampled_from((1024, 8192, 65_536))),
                ),
            )
            * draw(st.sampled_from((1, 1, 2, 3))),
            flavors=draw(st.sampled_from(((), ("A100",), ("H100", "A100")))),
            priority=draw(st.integers(0, 2)),
            submit_time=float(draw(st.integers(0, 50))),
            runtime_estimate=draw(st.one_of(st.none(), st.integers(1, 400).map(float))),
            time_limit=draw(st.one_of(st.none(), st.integers(1, 800).map(float))),
            checkpointable=draw(st.booleans()),
        )
        for k in range(count)
    ]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    nodes = tuple(
        Node(
            f"n{i}",
            draw(st.sampled_from(FLAVORS)),
            draw(st.sampled_from((1, 2, 4, 8))),
            draw(st.sampled_from((16_000, 64_000))),
            draw(st.sampled_from((65_536, 524_288))),
            state=draw(st.sampled_from((NodeState.UP,) * 5 + (NodeState.DOWN,))),
        )
        for i in range(draw(st.integers(1, 6)))
    )
    cluster = Cluster(nodes)
    seed_jobs = draw(_jobs(1_000, draw(st.integers(0, 10))))
    plan = schedule(Snapshot(cluster), seed_jobs, get_policy("besteffort"), 0.0)
    by_id = {j.id: j for j in seed_jobs}
    running = tuple(
        RunningJob(by_id[s.job_id], float(draw(st.integers(0, 90))), s.placement, s.flavor)
        for s in plan.starts
    )
    pending = tuple(draw(_jobs(1, draw(st.integers(1, 8)))))
    return Scenario(cluster, running, pending, draw(_quotas()))


def _many(scenario: Scenario, copies: int) -> list[JobSpec]:
    """The scenario's pending jobs, each followed by ``copies`` twins (same decision key), so
    that tails settle."""
    out: list[JobSpec] = []
    next_id = 10_000
    for spec in scenario.pending:
        out.append(spec)
        for k in range(copies):
            next_id += 1
            out.append(replace(spec, id=next_id, submit_time=spec.submit_time + k))
    return out


def _walked(snap: Snapshot, jobs: list[JobSpec], name: str, now: float) -> Plan:
    cycle.SETTLE_TAIL = False
    try:
        return schedule(snap, jobs, get_policy(name), now)
    finally:
        cycle.SETTLE_TAIL = True


def _same(a: Plan, b: Plan) -> None:
    assert a.starts == b.starts
    assert a.reservations == b.reservations
    assert a.preemptions == b.preemptions
    assert dict(a.pending) == dict(b.pending)


@SETTINGS
@given(scenarios(), st.sampled_from(sorted(POLICIES)), st.integers(0, 6))
def test_a_settled_tail_explains_as_walking_every_job(
    scenario: Scenario, name: str, copies: int
) -> None:
    jobs = _many(scenario, copies)
    settled = schedule(scenario.snapshot(), jobs, get_policy(name), 100.0)
    walked = _walked(scenario.snapshot(), jobs, name, 100.0)
    _same(settled, walked)


@SETTINGS
@given(scenarios(), st.sampled_from(sorted(POLICIES)), st.data())
def test_a_kept_index_plans_as_a_fresh_one(
    scenario: Scenario, name: str, data: st.DataObject
) -> None:
    jobs = _many(scenario, 2)
    snap = Snapshot(scenario.cluster, scenario.running)
    schedule(snap, jobs, get_policy(name), 100.0)
    kept = data.draw(st.lists(st.sampled_from(jobs), unique_by=lambda j: j.id))
    served = data.draw(st.lists(st.sampled_from(jobs), unique_by=lambda j: j.id, max_size=3))
    new = [replace(j, id=j.id + 50_000) for j in data.draw(st.lists(st.sampled_from(jobs)))]
    later = list({j.id: j for j in [*kept, *new]}.values())
    attained = {j.id: 4_000.0 * (1 + k) for k, j in enumerate(served)}
    snap.attained.update(attained)
    reused = schedule(snap, later, get_policy(name), 100.0)
    fresh = Snapshot(scenario.cluster, scenario.running, attained=dict(attained))
    _same(reused, schedule(fresh, later, get_policy(name), 100.0))


def test_reading_a_job_that_is_not_pending_is_a_key_error() -> None:
    cluster = Cluster((Node("n0", "A100", 1, 4_000, 8_192),))
    plan = schedule(Snapshot(cluster), [], get_policy("fifo"), 0.0)
    with pytest.raises(KeyError):
        plan.pending[1]
    assert 1 not in plan.pending
    assert dict(plan.pending) == {}


@SETTINGS
@given(scenarios(), st.sampled_from(sorted(POLICIES)), st.data())
def test_a_journal_kept_index_plans_as_a_fresh_one(
    scenario: Scenario, name: str, data: st.DataObject
) -> None:
    policy = get_policy(name)
    jobs = _many(scenario, 2)
    pending = PendingJobs(jobs)
    snap = Snapshot(scenario.cluster, scenario.running)
    for round_ in range(data.draw(st.integers(1, 4))):
        ids = [j.id for j in pending]
        for job_id in data.draw(st.lists(st.sampled_from(ids), unique=True)) if ids else []:
            spec = pending.pop(job_id)
            if data.draw(st.booleans()):  # popped and put back: it goes last
                pending.put(spec)
        for spec in data.draw(st.lists(st.sampled_from(jobs), max_size=4)):
            # Back with a new estimate (a prediction), or a new job of the same shape.
            if data.draw(st.booleans()):
                pending.put(replace(spec, runtime_estimate=float(10 + round_)))
            else:
                pending.put(replace(spec, id=spec.id + 50_000 * (round_ + 1)))
        served = data.draw(st.lists(st.sampled_from(jobs), unique_by=lambda j: j.id, max_size=2))
        snap.attained.update({j.id: 4_000.0 * (1 + round_) for j in served})
        kept = schedule(snap, pending, policy, 100.0)
        fresh = Snapshot(scenario.cluster, scenario.running, attained=dict(snap.attained))
        _same(kept, schedule(fresh, list(pending), policy, 100.0))


@SETTINGS
@given(scenarios(), st.sampled_from(sorted(POLICIES)))
def test_an_equal_list_reuses_the_index_and_plans_the_same(scenario: Scenario, name: str) -> None:
    policy = get_policy(name)
    jobs = _many(scenario, 2)
    snap = Snapshot(scenario.cluster, scenario.running)
    first = schedule(snap, jobs, policy, 100.0)
    again = schedule(snap, [replace(j) for j in jobs], policy, 100.0)  # equal, not identical
    _same(first, again)


def test_a_plan_read_after_its_jobs_changed_refuses_to_answer() -> None:
    cluster = Cluster((Node("n0", "A100", 1, 4_000, 8_192),))
    task = (Resources(1000, 1000, 1024),)
    pending = PendingJobs(JobSpec(i, "t", "u", "q", task, submit_time=float(i)) for i in range(5))
    plan = schedule(Snapshot(cluster), pending, get_policy("fifo"), 0.0)
    assert len(plan.starts) == 1
    pending.pop(3)
    with pytest.raises(PendingChangedError, match="read its explanations before changing"):
        dict(plan.pending)


def test_pending_jobs_keep_arrival_order_and_a_trimmed_journal() -> None:
    task = (Resources(1000, 1000, 1024),)
    specs = [JobSpec(i, "t", "u", "q", task) for i in range(3)]
    pending = PendingJobs(specs)
    pending.put(replace(specs[0], priority=1))  # replaced in place
    pending.put(pending.pop(1))  # popped and put again: last
    assert [j.id for j in pending] == [0, 2, 1]
    assert pending[0].priority == 1
    assert pending.changed_since(0) == [0, 1, 2, 0, 1, 1]
    start = pending.version
    for _ in range(5_000):
        pending.put(specs[2])
    assert pending.changed_since(start) is None  # trimmed: a reader compares every job once
    assert pending.changed_since(pending.version) == []


@SETTINGS
@given(
    scenarios(),
    st.sampled_from(sorted(n for n, p in POLICIES.items() if p.preemption)),
    st.data(),
)
def test_victim_lists_kept_on_the_snapshot_plan_as_fresh_ones(
    scenario: Scenario, name: str, data: st.DataObject
) -> None:
    # A victim list built in one cycle is reused by the next while the running jobs are the
    # same; after any start, finish or stop it is built again.
    policy, jobs = get_policy(name), _many(scenario, 1)
    snap = Snapshot(scenario.cluster, scenario.running)
    for _ in range(3):
        kept = schedule(snap, jobs, policy, 100.0)
        fresh = Snapshot(scenario.cluster, tuple(snap.running.values()))
        _same(kept, schedule(fresh, jobs, policy, 100.0))
        if kept.preemptions and data.draw(st.booleans()):
            first = kept.preemptions[0]
            snap.mark_stopping(first.victim, first.stop_by)
        elif snap.running and data.draw(st.booleans()):
            snap.finish(data.draw(st.sampled_from(sorted(snap.running))))


@SETTINGS
@given(
    scenarios(),
    st.sampled_from(sorted(n for n, p in POLICIES.items() if "usage" not in p.order)),
    st.data(),
)
def test_the_by_key_walk_is_the_static_order_less_the_settled_keys(
    scenario: Scenario, name: str, data: st.DataObject
) -> None:
    # Kept up through puts and pops like the index itself; a key settled at its first job
    # leaves out exactly its later jobs.
    policy, jobs = get_policy(name), _many(scenario, 2)
    pending = PendingJobs(jobs)
    snap = Snapshot(scenario.cluster, scenario.running)
    for round_ in range(3):
        index = pending_index(snap, policy, pending)
        if not index.skips():
            return
        ordered = list(index.ordered(None))
        assert list(index.ordered_by_key(set())) == ordered
        keys = sorted({index.decision[j.id] for j in ordered}, key=str)
        drop = set(data.draw(st.lists(st.sampled_from(keys), unique=True))) if keys else set()
        settled: set[object] = set()
        walked = []
        for spec in index.ordered_by_key(settled):
            walked.append(spec)
            if index.decision[spec.id] in drop:
                settled.add(index.decision[spec.id])
        first: set[object] = set()
        expected = []
        for spec in ordered:
            key = index.decision[spec.id]
            if key not in drop or key not in first:
                expected.append(spec)
            first.add(key)
        assert walked == expected
        ids = [j.id for j in pending]
        for job_id in data.draw(st.lists(st.sampled_from(ids), unique=True)) if ids else []:
            pending.pop(job_id)
        for spec in data.draw(st.lists(st.sampled_from(jobs), max_size=5)):
            pending.put(replace(spec, id=spec.id + 50_000 * (round_ + 1)))


def test_behind_a_reservation_is_judged_again_after_a_start() -> None:
    # A long job that fits only without the head's hold waits behind the reservation; once a
    # short job takes the last free GPU, the next long job of the same key no longer fits at
    # all. That verdict is not lent across the start.
    cluster = Cluster((Node("n0", "A100", 4, 64_000, 524_288),))
    one, four = Resources(1000, 1000, 1024), Resources(4000, 1000, 1024)
    blocker = JobSpec(100, "t", "u", "q", (Resources(3000, 1000, 1024),), runtime_estimate=1e3)
    running = (RunningJob(blocker, 0.0, _on_n0(3), "A100"),)

    def spec(job_id: int, task: Resources, runtime: float) -> JobSpec:
        return JobSpec(job_id, "t", "u", "q", (task,), submit_time=float(job_id),
                       runtime_estimate=runtime)  # fmt: skip

    jobs = [spec(1, four, 50.0), spec(2, one, 5e3), spec(3, one, 10.0), spec(4, one, 5e3)]
    plan = schedule(Snapshot(cluster, running), jobs, get_policy("backfill"), 0.0)
    assert [s.job_id for s in plan.starts] == [3]
    assert plan.pending[2].reason is Reason.BEHIND_RESERVATION
    assert plan.pending[4].reason is Reason.NO_CAPACITY
    _same(plan, _walked(Snapshot(cluster, running), jobs, "backfill", 0.0))


def _on_n0(gpus: int) -> tuple[TaskPlacement, ...]:
    return (TaskPlacement("n0", tuple(range(gpus)), 1000),)


@SETTINGS
@given(
    scenarios(),
    st.sampled_from(sorted(POLICIES)),
    st.sampled_from(sorted(n for n, p in POLICIES.items() if p.preemption)),
)
def test_what_one_policy_keeps_on_a_snapshot_never_changes_another_s_plan(
    scenario: Scenario, first: str, then: str
) -> None:
    # Victim lists and orders kept on a snapshot are keyed by all they depend on: ``allot``
    # and ``las`` share LAS thresholds but not what protects a victim.
    snap, jobs, now = scenario.snapshot(), _many(scenario, 1), 40_000.0
    schedule(snap, jobs, get_policy(first), now)
    kept = schedule(snap, jobs, get_policy(then), now)
    _same(kept, schedule(scenario.snapshot(), jobs, get_policy(then), now))


def test_las_after_allot_on_one_snapshot_picks_its_own_victims() -> None:
    # allot keeps victim lists with its own protections folded into the victims' levels
    # (jobs that cannot checkpoint are protected); las on the same snapshot must not read them.
    now, one = 100_000.0, (Resources(1000, 1000, 1024),)
    cluster = Cluster((Node("n0", "A100", 4, 64_000, 524_288),))

    def running(job_id: int, ran: float, device: int, queue: str, ckpt: bool) -> RunningJob:
        spec = JobSpec(job_id, "t", "u", queue, one, checkpointable=ckpt)
        return RunningJob(spec, now - ran, (TaskPlacement("n0", (device,), 1000),), "A100")

    jobs = [JobSpec(1, "t", "u", "a", one), JobSpec(2, "t", "u", "b", one, submit_time=1.0)]
    on_node = (
        running(11, 10_000, 0, "q", False),
        running(12, 90_000, 1, "q", False),
        running(13, 90_000, 2, "r", True),
        running(14, 90_000, 3, "r", False),
    )
    snap = Snapshot(cluster, on_node, attained={2: 5_000.0})
    schedule(snap, jobs, get_policy("allot"), now)
    kept = schedule(snap, jobs, get_policy("las"), now)
    alone = Snapshot(cluster, on_node, attained={2: 5_000.0})
    fresh = schedule(alone, jobs, get_policy("las"), now)
    assert [p.victim for p in fresh.preemptions] == [13, 12]
    _same(kept, fresh)
