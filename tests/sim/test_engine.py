"""The discrete-event engine on small hand-built clusters and workloads.

Each case is small enough to work out by hand, so the expected start times are written down
exactly. ``decisions`` records every Plan the engine receives from ``schedule()`` (the same
function, wrapped), which shows where jobs were placed and which reservations were made.
Failure cases that need exact instants replace the engine's random source (``Simulation.rng``)
with scripted draws; the others use a real ``FailureModel`` and a seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest

import allot.sim.engine as engine
from allot.core.cycle import schedule
from allot.core.model import Cluster, JobSpec, Node, Resources, TaskPlacement, gang
from allot.core.plan import Plan
from allot.core.policy import POLICIES, Policy, get_policy
from allot.core.quota.config import QueueSpec, QuotaConfig, ResourceQuota, TenantSpec
from allot.core.snapshot import Snapshot
from allot.sim.cluster import FailureModel
from allot.sim.engine import Simulation, SimulationError, check_some_job_fits, with_estimates
from allot.sim.result import JobRecord, SimResult
from allot.sim.workload import TraceJob

FLAVOR = "A100"
GIB = 1024

# ---------------------------------------------------------------------------------------------
# Builders


def node(name: str, gpus: int = 8, cpus: int = 64, flavor: str = FLAVOR) -> Node:
    return Node(name, flavor, gpus, cpus * 1000, 512 * GIB)


def cluster(*nodes: Node, name: str = "tiny") -> Cluster:
    return Cluster(nodes or (node("n0"),), name=name)


def job(
    job_id: int,
    submit: float,
    duration: float,
    gpus: float = 1,
    *,
    tasks: int = 1,
    cpus: float = 1,
    flavors: tuple[str, ...] = (),
    tenant: str = "vision",
    time_limit: float | None = None,
) -> TraceJob:
    """A job of ``tasks`` identical tasks of ``gpus`` each; the estimate is the exact duration."""
    spec = JobSpec(
        job_id,
        tenant,
        f"{tenant}-user",
        f"{tenant}-queue",
        gang(tasks, Resources.of(gpus=gpus, cpus=cpus, memory_mib=4 * GIB)),
        flavors=flavors,
        submit_time=submit,
        runtime_estimate=duration,
        time_limit=time_limit,
    )
    return TraceJob(spec, duration)


def run(
    workload: Sequence[TraceJob],
    policy: str | Policy = "fifo",
    on: Cluster | None = None,
    **options: Any,
) -> SimResult:
    chosen = get_policy(policy) if isinstance(policy, str) else policy
    return Simulation(on or cluster(), workload, chosen, **options).run()


def by_id(result: SimResult) -> dict[int, JobRecord]:
    return {r.job_id: r for r in result.jobs}


def starts(result: SimResult) -> dict[int, float | None]:
    return {r.job_id: r.start for r in sorted(result.jobs, key=lambda r: r.job_id)}


@dataclass(frozen=True)
class Decision:
    """One call of ``schedule()`` made by the engine: when, what it decided, which nodes were
    down at that moment."""

    time: float
    plan: Plan
    down: frozenset[str]


@pytest.fixture
def decisions(monkeypatch: pytest.MonkeyPatch) -> list[Decision]:
    seen: list[Decision] = []

    def recording(
        snapshot: Snapshot, pending: Sequence[JobSpec], policy: Policy, now: float
    ) -> Plan:
        down = frozenset(
            n.name for i, n in enumerate(snapshot.nodes) if not snapshot.schedulable(i)
        )
        plan = schedule(snapshot, pending, policy, now)
        seen.append(Decision(now, plan, down))
        return plan

    monkeypatch.setattr(engine, "schedule", recording)
    return seen


def placements(
    decisions: Sequence[Decision],
) -> dict[int, list[tuple[float, tuple[TaskPlacement, ...]]]]:
    """Every start of every job: (time, placement), in order."""
    found: dict[int, list[tuple[float, tuple[TaskPlacement, ...]]]] = {}
    for d in decisions:
        for start in d.plan.starts:
            found.setdefault(start.job_id, []).append((d.time, start.placement))
    return found


def mixed_workload(count: int = 60, seed: int = 7) -> list[TraceJob]:
    """A reproducible mix of shares, single GPUs, whole nodes and 2 x 8 gangs, with several
    jobs arriving at the same instant."""
    draw = random.Random(seed)
    jobs = []
    submit = 0.0
    for job_id in range(1, count + 1):
        submit += draw.choice((0.0, 0.0, 30.0, 120.0, 600.0))
        gpus, tasks = draw.choice(((0.5, 1), (1, 1), (1, 1), (2, 1), (4, 1), (8, 1), (8, 2)))
        duration = float(draw.randint(60, 3600))
        tenant = draw.choice(("vision", "nlp", "speech"))
        jobs.append(job(job_id, submit, duration, gpus, tasks=tasks, tenant=tenant))
    return jobs


def three_nodes() -> Cluster:
    return cluster(node("n0"), node("n1"), node("n2"), name="three")


# ---------------------------------------------------------------------------------------------
# Invariants of a run without failures


def check_run(result: SimResult, on: Cluster, workload: Sequence[TraceJob]) -> None:
    """Every job runs once for its full duration (or is set aside as never fitting), records
    match the specs, and the timeline is sampled at event times with allocation and queue
    length that match the records."""
    specs = {j.spec.id: j for j in workload}
    records = result.jobs
    never_fit = {n.job_id for n in result.never_fit}
    assert sorted(r.job_id for r in records) == sorted(specs.keys() - never_fit)
    for r in records:
        traced = specs[r.job_id]
        spec = traced.spec
        assert (r.tenant, r.queue, r.submit) == (spec.tenant, spec.queue, spec.submit_time)
        assert (r.runtime, r.gpu_milli, r.num_tasks) == (
            traced.duration,
            spec.total.gpu_milli,
            len(spec.tasks),
        )
        assert r.start is not None
        assert r.start >= r.submit
        assert r.finish == r.start + r.runtime
        assert (r.preemptions, r.failure_restarts, r.lost_gpu_seconds) == (0, 0, 0.0)
        assert not r.timed_out
    line = result.timeline
    assert line.times == sorted(set(line.times))
    event_times = {j.spec.submit_time for j in workload} | {r.finish for r in records if r.finish}
    assert set(line.times) == event_times
    for t, allocated, waiting in zip(
        line.times, line.allocated_gpu_milli, line.queue_length, strict=True
    ):
        running = [r for r in records if r.start is not None and r.start <= t < (r.finish or 0)]
        assert allocated == sum(r.gpu_milli for r in running)
        assert allocated <= on.total_gpus * 1000
        assert waiting == sum(1 for r in records if r.submit <= t and (r.start or 0) > t)
    assert result.end_time == max(r.finish or 0 for r in records)
    assert result.events == len(workload) + len(records)  # arrivals, then completions
    assert result.cluster_gpus == on.total_gpus


NON_PREEMPTING = [name for name, p in POLICIES.items() if not p.preemption]
PREEMPTING = [name for name, p in POLICIES.items() if p.preemption]


@pytest.mark.parametrize("policy", NON_PREEMPTING)
def test_every_job_completes_once_and_the_timeline_matches(policy: str) -> None:
    workload = mixed_workload()
    result = run(workload, policy, three_nodes())
    assert result.policy == policy
    assert result.never_fit == []
    assert result.cycles > 0
    check_run(result, three_nodes(), workload)


@pytest.mark.parametrize("policy", PREEMPTING)
def test_preempting_policies_still_complete_every_job_once(policy: str) -> None:
    workload = mixed_workload()
    result = run(workload, policy, three_nodes())
    assert sorted(r.job_id for r in result.jobs) == sorted(j.spec.id for j in workload)
    for r in result.jobs:
        assert r.start is not None
        assert r.finish is not None
        # A stopped run is lost or resumed, so a job ends no earlier than one clean run.
        assert r.finish >= r.start + r.runtime
        if r.preemptions == 0:
            assert r.finish == r.start + r.runtime
    assert max(result.timeline.allocated_gpu_milli) <= three_nodes().total_gpus * 1000


def test_records_carry_the_spec_and_the_trace_duration() -> None:
    workload = [
        job(1, 0, 100, 2, tenant="nlp"),
        job(2, 10, 50, 8, tasks=2, tenant="speech"),
        job(3, 10, 30, 0.5),
    ]
    result = run(workload, "fifo", cluster(node("n0"), node("n1")))
    records = by_id(result)
    assert records[1] == JobRecord(1, "nlp", "nlp-queue", 0, 100, 2000, 1, 0, 100)
    # The gang needs both nodes whole, so it waits for job 1; strict FIFO holds job 3 behind it.
    assert records[2] == JobRecord(2, "speech", "speech-queue", 10, 50, 16000, 2, 100, 150)
    assert records[3] == JobRecord(3, "vision", "vision-queue", 10, 30, 500, 1, 150, 180)


def test_timeline_samples_each_event_time_once() -> None:
    # Two arrivals at t=0 and a completion coinciding with an arrival at t=100.
    workload = [job(1, 0, 100), job(2, 0, 300, 8), job(3, 100, 50)]
    result = run(workload, "fifo")
    line = result.timeline
    assert line.times == [0, 100, 400, 450]
    assert line.allocated_gpu_milli == [1000, 8000, 1000, 0]
    assert line.queue_length == [1, 1, 0, 0]


# ---------------------------------------------------------------------------------------------
# Policies: a big head on one 8-GPU node


def head_of_line() -> list[TraceJob]:
    """A half-node job runs; the whole-node head arrives; then a short and a long half-node job.

    The short one (ends at 52) fits the hole before the head's reservation at t=100; the long
    one (ends at 252 if started at 52) would delay the head.
    """
    return [job(1, 0, 100, 4), job(2, 1, 50, 8), job(3, 2, 50, 4), job(4, 3, 200, 4)]


def test_strict_fifo_blocks_everyone_behind_the_head() -> None:
    result = run(head_of_line(), "fifo")
    assert starts(result) == {1: 0, 2: 100, 3: 150, 4: 150}
    check_run(result, cluster(), head_of_line())


def test_best_effort_lets_smaller_jobs_pass_and_the_head_waits_longer() -> None:
    result = run(head_of_line(), "besteffort")
    assert starts(result) == {1: 0, 2: 252, 3: 2, 4: 52}
    check_run(result, cluster(), head_of_line())


def test_easy_backfill_fills_the_hole_without_delaying_the_head(
    decisions: list[Decision],
) -> None:
    result = run(head_of_line(), "backfill")
    assert starts(result) == {1: 0, 2: 100, 3: 2, 4: 150}
    check_run(result, cluster(), head_of_line())
    reserved = [(d.time, r.job_id, r.start_time) for d in decisions for r in d.plan.reservations]
    # The head is reserved at t=100, when job 1 ends; once it runs, job 4 becomes the head.
    assert reserved[0] == (1, 2, 100)
    assert {job_id for _, job_id, _ in reserved} == {2, 4}
    first_start = starts(result)
    assert all((first_start[job_id] or 0) <= at for _, job_id, at in reserved)


def test_backfill_without_estimates_cannot_reserve_and_acts_like_strict_fifo(
    decisions: list[Decision],
) -> None:
    blind = with_estimates(head_of_line(), "none")
    backfill = run(blind, "backfill")
    assert starts(backfill) == starts(run(head_of_line(), "fifo"))
    assert starts(backfill)[3] == 150  # the short job no longer jumps ahead of the head
    assert all(not d.plan.reservations for d in decisions)


def test_reserved_heads_start_no_later_than_any_reservation_they_got(
    decisions: list[Decision],
) -> None:
    workload = mixed_workload(count=120, seed=11)
    result = run(workload, "backfill", three_nodes())
    check_run(result, three_nodes(), workload)
    first_start = {r.job_id: r.start for r in result.jobs}
    reserved = [r for d in decisions for r in d.plan.reservations]
    assert reserved, "this workload is meant to exercise reservations"
    late = [
        (r.job_id, r.start_time, first_start[r.job_id])
        for r in reserved
        if (first_start[r.job_id] or 0) > r.start_time
    ]
    assert late == []


# ---------------------------------------------------------------------------------------------
# Gangs and shares of a GPU


def test_a_gang_starts_whole_on_two_nodes_at_once(decisions: list[Decision]) -> None:
    two = cluster(node("n0"), node("n1"))
    workload = [job(1, 0, 100, 1), job(2, 1, 50, 8, tasks=2)]
    result = run(workload, "fifo", two)
    check_run(result, two, workload)
    assert by_id(result)[2].start == 100
    # While job 1 holds one GPU nothing of the gang runs: no task starts on its own.
    line = result.timeline
    assert line.allocated_gpu_milli[line.times.index(1)] == 1000
    (only,) = placements(decisions)[2]
    at, where = only
    assert at == 100
    assert sorted(p.node for p in where) == ["n0", "n1"]
    assert all(p.devices == tuple(range(8)) for p in where)
    assert all(p.gpu_milli_per_device == 1000 for p in where)


def test_two_half_gpu_jobs_share_one_device(decisions: list[Decision]) -> None:
    one_gpu = cluster(node("n0", gpus=1))
    workload = [job(1, 0, 100, 0.5), job(2, 0, 200, 0.5), job(3, 0, 50, 0.5)]
    result = run(workload, "fifo", one_gpu)
    check_run(result, one_gpu, workload)
    assert starts(result) == {1: 0, 2: 0, 3: 100}
    assert result.timeline.allocated_gpu_milli[0] == 1000
    found = placements(decisions)
    for job_id in (1, 2):
        ((at, where),) = found[job_id]
        assert (at, where) == (0, (TaskPlacement("n0", (0,), 500),))


def test_shares_that_add_up_past_one_device_do_not_share_it() -> None:
    one_gpu = cluster(node("n0", gpus=1))
    workload = [job(1, 0, 100, 0.6), job(2, 0, 100, 0.5)]
    result = run(workload, "besteffort", one_gpu)
    assert starts(result) == {1: 0, 2: 100}
    check_run(result, one_gpu, workload)


# ---------------------------------------------------------------------------------------------
# Jobs that never fit


def test_jobs_that_never_fit_are_set_aside_with_a_reason() -> None:
    workload = [
        job(1, 0, 100, 1),
        job(2, 5, 100, 16),  # one task larger than any node
        job(3, 6, 100, 1, flavors=("H100",), tenant="nlp"),  # a flavor the cluster lacks
        job(4, 7, 100, 1, cpus=128),  # more CPU than any node
        job(5, 8, 100, 2),
    ]
    result = run(workload, "fifo")
    assert sorted(r.job_id for r in result.jobs) == [1, 5]
    check_run(result, cluster(), workload)
    assert by_id(result)[5].start == 8  # a job that never fits blocks no one
    never = {n.job_id: n for n in result.never_fit}
    assert sorted(never) == [2, 3, 4]
    assert never[3].tenant == "nlp"
    assert "8 GPUs" in never[2].reason
    assert "H100" in never[3].reason
    assert "64 CPUs" in never[4].reason


def test_a_workload_no_job_fits_names_the_cluster() -> None:
    workload = [job(1, 0, 100, 16), job(2, 0, 100, 1, flavors=("H100",))]
    with pytest.raises(SimulationError, match=r"cluster 'tiny' cannot fit any job of the trace"):
        run(workload, "fifo")


@pytest.mark.parametrize(
    ("workload", "field", "rule"),
    [
        pytest.param(
            [job(1, 0, 100, 1, flavors=("H100",))],
            "node_groups[*].flavor",
            "the jobs ask for flavor H100, which no node group has (flavors: A100)",
            id="flavor",
        ),
        pytest.param(
            [job(1, 0, 100, 16)],
            "node_groups[*].gpus",
            "a task asks for 16 GPUs and the largest A100 node has 8",
            id="gpus",
        ),
        pytest.param(
            [job(1, 0, 100, 1, cpus=128)],
            "node_groups[*].cpu",
            "a task asks for 128 CPUs and the largest A100 node has 64",
            id="cpu",
        ),
        pytest.param(
            [job(1, 0, 100, 8, tasks=3)],
            "node_groups[*].count",
            "the A100 nodes together cannot hold all 3 tasks",
            id="count",
        ),
    ],
)
def test_a_workload_no_job_fits_names_the_files_and_the_field(
    workload: list[TraceJob], field: str, rule: str
) -> None:
    with pytest.raises(SimulationError) as caught:
        check_some_job_fits(
            cluster(), workload, cluster_file="clusters/tiny.yaml", trace_file="jobs.csv"
        )
    message = str(caught.value)
    assert message.startswith(
        f"clusters/tiny.yaml: cluster 'tiny' cannot fit any job of the trace jobs.csv: "
        f"field {field!r}: {rule} (e.g. job 1: "
    )


def test_job_ids_must_be_unique() -> None:
    with pytest.raises(SimulationError, match="job ids must be unique"):
        run([job(1, 0, 10), job(1, 5, 10)])


def test_an_empty_workload_gives_an_empty_result() -> None:
    calls: list[tuple[int, int]] = []
    result = run([], "backfill", progress=lambda done, total: calls.append((done, total)))
    assert (result.jobs, result.never_fit, result.events, result.cycles) == ([], [], 0, 0)
    assert calls == [(0, 0)]


def unplaceable_gang() -> TraceJob:
    """A gang of 8 GPUs plus half a GPU: on one 8-GPU node each task fits alone, never both."""
    spec = JobSpec(
        1,
        "vision",
        "vision-user",
        "vision-queue",
        (Resources.of(gpus=8, cpus=1), Resources.of(gpus=0.5, cpus=1)),
        runtime_estimate=100,
    )
    return TraceJob(spec, 100)


def test_a_mixed_gang_no_node_set_can_hold_is_set_aside() -> None:
    result = run([unplaceable_gang(), job(2, 1, 10)], "fifo")
    assert [n.job_id for n in result.never_fit] == [1]
    assert by_id(result)[2].finish == 11


class EndlessRunError(Exception):
    """Raised once the engine has processed far more events than the workload needs."""


def test_a_run_with_failures_ends_even_when_a_job_can_never_be_placed() -> None:
    calls: list[int] = []

    def guard(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) > 5:  # progress fires every 2,048 events; the workload has 2 jobs
            raise EndlessRunError

    result = run(
        [unplaceable_gang(), job(2, 1, 10)],
        "besteffort",
        failures=FailureModel(1000, 100),
        progress=guard,
    )
    assert by_id(result)[2].finish is not None


def test_a_run_with_failures_ends_when_a_quota_blocked_job_can_never_start() -> None:
    # The vision queue's nominal quota is 1 GPU and it has no cohort to borrow from, so the
    # 4-GPU job 2 never starts; once job 1 is done, nothing runs and every node is up.
    quotas = QuotaConfig(
        (TenantSpec("vision"),),
        (QueueSpec("vision-queue", "vision", quotas={(FLAVOR, "gpu"): ResourceQuota(1000)}),),
    )
    calls: list[int] = []

    def guard(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) > 5:  # progress fires every 2,048 events; the workload has 2 jobs
            raise EndlessRunError

    workload = [job(1, 0, 100, 1), job(2, 10, 100, 4)]
    result = run(
        workload,
        "fifo",
        cluster(node("n0"), node("n1")),
        quotas=quotas,
        # Failures that never land within the run: the end comes from the rule, not luck.
        failures=FailureModel(1e9, 100),
        progress=guard,
    )
    records = by_id(result)
    assert (records[1].start, records[1].finish) == (0, 100)
    assert (records[2].start, records[2].finish) == (None, None)
    assert result.end_time == 100
    assert calls[-1] == 2


def test_a_run_with_every_node_down_waits_for_a_repair_before_it_ends() -> None:
    # Both nodes fail at 50, stopping job 1; nothing runs until n0 is back at 500 (n1 at 510).
    # The run must not end while a node is down: job 1 reruns and ends at 600, job 2 never
    # starts (its queue's quota is 1 GPU).
    quotas = QuotaConfig(
        (TenantSpec("vision"),),
        (QueueSpec("vision-queue", "vision", quotas={(FLAVOR, "gpu"): ResourceQuota(1000)}),),
    )
    sim = Simulation(
        cluster(node("n0"), node("n1")),
        [job(1, 0, 100, 1), job(2, 10, 100, 4)],
        get_policy("fifo"),
        quotas=quotas,
        failures=FailureModel(1.0, 1.0),
    )
    sim.rng = ScriptedDraws(50, 50, 450, 460)  # type: ignore[assignment]
    result = sim.run()
    records = by_id(result)
    assert (records[1].start, records[1].finish, records[1].failure_restarts) == (0, 600, 1)
    assert records[2].start is None
    assert result.end_time == 600


# ---------------------------------------------------------------------------------------------
# Node failures


class ScriptedDraws:
    """Stands in for the engine's random source: hands out the given exponential draws in
    order (initial failure per node, then repair and next-failure delays as events occur), then
    delays so long that nothing more fails within the run."""

    def __init__(self, *draws: float) -> None:
        self.draws = list(draws)

    def expovariate(self, rate: float) -> float:
        return self.draws.pop(0) if self.draws else 1e12


def scripted(
    workload: Sequence[TraceJob], on: Cluster, *draws: float, policy: str = "fifo"
) -> SimResult:
    sim = Simulation(on, workload, get_policy(policy), failures=FailureModel(1.0, 1.0))
    sim.rng = ScriptedDraws(*draws)  # type: ignore[assignment]
    return sim.run()


def test_a_failed_node_stops_its_job_which_reruns_in_full_after_repair() -> None:
    # n0 fails at 40 and is back at 50; the 8-GPU job loses 40 s x 8 GPUs and runs again.
    result = scripted([job(1, 0, 100, 8)], cluster(), 40, 10)
    (record,) = result.jobs
    assert (record.start, record.finish) == (0, 150)
    assert (record.preemptions, record.failure_restarts, record.lost_gpu_seconds) == (0, 1, 320.0)
    line = result.timeline
    # t=100 is the completion of the run that was cut short: an event, but it ends nothing.
    assert line.times == [0, 40, 50, 100, 150]
    assert line.allocated_gpu_milli == [8000, 0, 8000, 8000, 0]
    assert line.queue_length == [0, 1, 0, 0, 0]


def test_a_failure_stops_the_whole_gang() -> None:
    two = cluster(node("n0"), node("n1"))
    # n0 fails at 30 (n1 never does) and is repaired 20 s later.
    result = scripted([job(1, 0, 100, 8, tasks=2)], two, 30, 1e12, 20)
    (record,) = result.jobs
    assert (record.start, record.finish, record.failure_restarts) == (0, 150, 1)
    assert record.preemptions == 0
    assert record.lost_gpu_seconds == 30 * 16
    line = result.timeline
    assert line.allocated_gpu_milli[line.times.index(30)] == 0  # n1's task was released too


def test_a_job_ending_as_its_node_fails_has_completed() -> None:
    result = scripted([job(1, 0, 100, 8)], cluster(), 100, 10)
    (record,) = result.jobs
    assert (record.finish, record.failure_restarts, record.lost_gpu_seconds) == (100, 0, 0.0)


def test_a_job_that_fits_only_a_down_node_waits_for_the_repair() -> None:
    result = scripted([job(1, 0, 5, 1), job(2, 10, 20, 8)], cluster(), 7, 100)
    assert result.never_fit == []
    assert starts(result) == {1: 0, 2: 107}
    assert by_id(result)[2].finish == 127


def failure_run(seed: int) -> tuple[SimResult, list[TraceJob]]:
    workload = [
        job(i, i * 50.0, 300.0 + 37 * (i % 7), (1, 2, 4, 8)[i % 4], tenant="nlp")
        for i in range(1, 41)
    ]
    result = run(workload, "besteffort", three_nodes(), failures=FailureModel(2000, 300), seed=seed)
    return result, workload


def test_failures_requeue_jobs_and_every_job_still_completes_once(
    decisions: list[Decision],
) -> None:
    result, workload = failure_run(seed=1)
    records = by_id(result)
    assert sorted(records) == [j.spec.id for j in workload]
    assert sum(r.failure_restarts for r in result.jobs) > 0
    assert sum(r.preemptions for r in result.jobs) == 0  # besteffort never preempts
    assert sum(r.lost_gpu_seconds for r in result.jobs) > 0
    runs = placements(decisions)
    for r in result.jobs:
        assert r.start is not None
        assert r.finish is not None
        job_runs = runs[r.job_id]
        assert len(job_runs) == r.failure_restarts + 1
        assert job_runs[0][0] == r.start
        assert r.finish == job_runs[-1][0] + r.runtime  # the last run lasted its full duration
        if r.failure_restarts:
            # Each cut run was shorter than a full one.
            assert 0 < r.lost_gpu_seconds < r.failure_restarts * r.runtime * r.gpu_milli / 1000
        else:
            assert r.lost_gpu_seconds == 0
    for d in decisions:
        for start in d.plan.starts:
            assert not {p.node for p in start.placement} & d.down
    assert max(result.timeline.allocated_gpu_milli) <= three_nodes().total_gpus * 1000


def test_failures_are_deterministic_for_a_seed() -> None:
    first, _ = failure_run(seed=1)
    again, _ = failure_run(seed=1)
    other, _ = failure_run(seed=3)
    assert first.jobs == again.jobs
    assert first.timeline == again.timeline
    assert sum(r.failure_restarts for r in other.jobs) > 0
    # Failure and repair instants are event times, so they show in the timeline.
    assert first.timeline.times != other.timeline.times


# ---------------------------------------------------------------------------------------------
# Time limits


def test_a_job_longer_than_its_time_limit_ends_at_the_limit() -> None:
    # Job 1 would run 300 s but its limit is 120 s; it ends (not requeued) and job 2 starts.
    workload = [job(1, 0, 300, 8, time_limit=120), job(2, 5, 50, 8, time_limit=50)]
    result = run(workload, "fifo")
    records = by_id(result)
    assert (records[1].start, records[1].finish, records[1].timed_out) == (0, 120, True)
    assert records[1].runtime == 300  # the record keeps what the trace said
    # A limit equal to the work left is not a timeout: the job finishes its work.
    assert (records[2].start, records[2].finish, records[2].timed_out) == (120, 170, False)
    assert result.events == 4  # two arrivals, two ends; nothing requeued
    assert result.timeline.times == [0, 5, 120, 170]


def test_backfill_plans_with_the_time_limit_and_the_limit_holds(
    decisions: list[Decision],
) -> None:
    # No estimates: backfill reserves for the head at job 1's time limit (t=100), and job 1,
    # whose trace says 500 s, is ended there, so the head starts on its reservation.
    workload = with_estimates(
        [job(1, 0, 500, 4, time_limit=100), job(2, 1, 50, 8), job(3, 2, 40, 4, time_limit=60)],
        "none",
    )
    result = run(workload, "backfill")
    reserved = [(d.time, r.job_id, r.start_time) for d in decisions for r in d.plan.reservations]
    assert reserved[0] == (1, 2, 100)
    records = by_id(result)
    assert (records[1].finish, records[1].timed_out) == (100, True)
    assert starts(result) == {1: 0, 2: 100, 3: 2}  # job 3 ends by t=62 at the latest
    assert (records[3].finish, records[3].timed_out) == (42, False)


def test_a_time_limit_applies_to_each_run_after_a_failure() -> None:
    # n0 fails at 40 and is back at 50; the rerun gets the whole limit again (Slurm requeue).
    result = scripted([job(1, 0, 300, 8, time_limit=100)], cluster(), 40, 10)
    (record,) = result.jobs
    assert (record.start, record.finish, record.timed_out) == (0, 150, True)
    assert (record.failure_restarts, record.lost_gpu_seconds) == (1, 320.0)


# ---------------------------------------------------------------------------------------------
# Determinism, estimates, progress


@pytest.mark.parametrize("policy", ["fifo", "backfill", "sjf"])
def test_the_same_run_twice_gives_the_same_result(policy: str) -> None:
    workload = mixed_workload(count=80, seed=3)
    first = run(workload, policy, three_nodes())
    second = run(workload, policy, three_nodes())
    shuffled = run(list(reversed(workload)), policy, three_nodes())
    assert first.jobs == second.jobs == shuffled.jobs
    assert first.timeline == second.timeline == shuffled.timeline
    assert (first.events, first.cycles, first.end_time) == (
        second.events,
        second.cycles,
        second.end_time,
    )


def test_exact_estimates_are_the_trace_durations() -> None:
    workload = [replace(j, spec=replace(j.spec, runtime_estimate=None)) for j in head_of_line()]
    exact = with_estimates(workload, "exact")
    assert [j.spec.runtime_estimate for j in exact] == [100, 50, 50, 200]
    assert [replace(j.spec, runtime_estimate=None) for j in exact] == [j.spec for j in workload]
    assert [j.duration for j in exact] == [j.duration for j in workload]


def test_no_estimates_clears_them() -> None:
    cleared = with_estimates(head_of_line(), "none")
    assert [j.spec.runtime_estimate for j in cleared] == [None] * 4
    assert [j.duration for j in cleared] == [100, 50, 50, 200]


def test_keep_estimates_returns_the_workload_unchanged() -> None:
    lying = [replace(j, spec=replace(j.spec, runtime_estimate=999.0)) for j in head_of_line()]
    kept = with_estimates(lying, "keep")
    assert kept == lying
    assert kept is not lying


def test_an_unknown_estimates_mode_is_an_error() -> None:
    known = r"known: none, predicted, exact"
    with pytest.raises(SimulationError, match=rf"estimates: unknown mode 'guess'; {known}"):
        with_estimates(head_of_line(), "guess")


def test_progress_is_reported_and_ends_complete() -> None:
    # Jobs arrive one at a time and end before the next, so events come one per step and the
    # engine reports at its 2,048-event mark as well as at the end.
    workload = [job(i, 2.0 * i, 1.0) for i in range(1, 1501)]
    workload.append(job(1501, 0.5, 1.0, 16))  # never fits; still counts as handled
    calls: list[tuple[int, int]] = []
    result = run(workload, "fifo", progress=lambda done, total: calls.append((done, total)))
    assert len(result.jobs) == 1500
    assert len(calls) >= 2
    assert calls[-1] == (1501, 1501)
    assert all(total == 1501 and 0 <= done <= total for done, total in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
