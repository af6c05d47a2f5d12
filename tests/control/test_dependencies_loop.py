"""Dependencies in the scheduling loop, in virtual time over the in-memory store: a pipeline
runs in order, ``failed`` runs only after a failure, a dependency that can never be met ends
its job with the reason, arrays wait for arrays, and each cycle reads dependencies once."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace

import pytest

from allot.control.dependencies import DEPENDENCY
from allot.control.ports import RunState, RunStatus
from allot.control.principal import Principal
from allot.control.records import (
    NEW_ARRAY,
    Condition,
    Dependency,
    DependencyProgress,
    JobFilter,
    JobRecord,
    Launch,
    NewJob,
)
from allot.control.services import RejectedError
from allot.control.system import SystemConfig, build
from allot.core.model import JobState, Resources
from harness import FakeExecutor, ManualClock, MemoryStore, default_nodes

JOB = NewJob(
    name="step",
    tenant="default",
    user="ada",
    queue="default",
    tasks=(Resources.of(gpus=1, cpus=1, memory_mib=1024),),
    launch=Launch(("true",)),
)


@dataclass
class ScriptedExecutor(FakeExecutor):
    """Launched runs run until the test says how they exit."""

    exits: dict[str, int] = field(default_factory=dict)

    def status(self, run_id: str, num_tasks: int) -> RunStatus:
        if run_id in self.exits:
            return RunStatus(run_id, RunState.EXITED, (self.exits[run_id],) * num_tasks)
        if any(t.run_id == run_id for t in self.launched):
            return RunStatus(run_id, RunState.RUNNING, (None,) * num_tasks)
        return RunStatus(run_id, RunState.UNKNOWN)


class CountingStore(MemoryStore):
    """Counts how often the loop reads dependency progress."""

    reads = 0

    def dependency_progress(self, job_ids: Collection[int]) -> dict[int, DependencyProgress]:
        self.reads += 1
        return super().dependency_progress(job_ids)


class Plant:
    """The real loop and use cases over the in-memory store and a scripted executor."""

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.store = CountingStore()
        self.executor = ScriptedExecutor(default_nodes())
        system = build(SystemConfig(), store=self.store, executors=self.executor, clock=self.clock)
        self.loop, self.control = system.loop, system.control

    def submit(self, *after: Dependency, name: str = "step") -> int:
        record, _ = self.control.submit(
            replace(JOB, name=name, after=after), principal=Principal.admin("ada")
        )
        return record.id

    def array(self, size: int, *after: Dependency) -> list[int]:
        job = replace(JOB, after=after)
        results = self.control.submit_many(
            [job] * size,
            principal=Principal.admin("ada"),
            idempotency_keys=[None] * size,
            request_hashes=[None] * size,
            array=NEW_ARRAY,
        )
        return [record.id for record, _ in results]

    def cycle(self) -> None:
        self.clock.advance(1)
        self.loop.run_once()

    def exit(self, job_id: int, code: int = 0) -> None:
        run = self.store.get_job(job_id).run
        assert run is not None, f"job {job_id} is not running"
        self.executor.exits[run.run_id] = code

    def state(self, job_id: int) -> JobState:
        return self.store.get_job(job_id).state

    def job(self, job_id: int) -> JobRecord:
        return self.store.get_job(job_id)


@pytest.fixture
def plant() -> Plant:
    return Plant()


def test_a_pipeline_runs_in_order(plant: Plant) -> None:
    pre = plant.submit(name="preprocess")
    train = plant.submit(Dependency(pre), name="train")
    evaluate = plant.submit(Dependency(train), name="evaluate")
    plant.cycle()
    assert [plant.state(j) for j in (pre, train, evaluate)] == ["running", "pending", "pending"]
    assert plant.loop.last is not None
    assert plant.loop.last.waiting == 2
    plant.exit(pre)
    plant.cycle()
    assert [plant.state(j) for j in (pre, train, evaluate)] == ["succeeded", "running", "pending"]
    plant.exit(train)
    plant.cycle()
    assert plant.state(evaluate) is JobState.RUNNING
    plant.exit(evaluate)
    plant.cycle()
    starts = [plant.job(j).start_time for j in (pre, train, evaluate)]
    assert starts == sorted(starts)
    assert len(set(starts)) == 3
    assert plant.state(evaluate) is JobState.SUCCEEDED


def test_a_waiting_job_says_what_it_waits_for(plant: Plant) -> None:
    pre = plant.submit()
    train = plant.submit(Dependency(pre))
    later = plant.submit(Dependency(pre, Condition.ANY), Dependency(train, Condition.FAILED))
    plant.cycle()
    why = plant.control.explain(train, principal=Principal.admin("tester"))
    assert (why.reason, why.message) == (DEPENDENCY, f"waits for job {pre} to succeed")
    assert why.remedy == (f"starts once job {pre} has succeeded; ended if it fails or is cancelled")
    assert why.fields["after"] == pre
    assert why.fields["condition"] == "ok"
    listed = {
        r.id: r.reason
        for r in plant.control.list_jobs(JobFilter(), principal=Principal.admin("tester"))
    }
    assert listed[train] == f"dependency: waits for job {pre} to succeed"
    assert listed[later] == (f"dependency: waits for job {pre} to end, and for 1 more dependency")
    assert plant.control.get(train, principal=Principal.admin("tester")).reason == listed[train]


def test_failed_runs_only_after_a_failure(plant: Plant) -> None:
    train = plant.submit()
    cleanup = plant.submit(Dependency(train, Condition.FAILED))
    report = plant.submit(Dependency(train, Condition.ANY))
    plant.cycle()
    plant.exit(train, 3)
    plant.cycle()
    assert plant.state(train) is JobState.FAILED
    assert plant.state(cleanup) is JobState.RUNNING
    assert plant.state(report) is JobState.RUNNING


def test_failed_after_a_success_is_ended(plant: Plant) -> None:
    train = plant.submit()
    cleanup = plant.submit(Dependency(train, Condition.FAILED))
    plant.cycle()
    plant.exit(train)
    plant.cycle()
    record = plant.job(cleanup)
    assert record.state is JobState.CANCELLED
    assert record.reason == f"dependency never satisfied: job {train} succeeded"


def test_a_dependency_that_can_never_be_met_ends_the_chain(plant: Plant) -> None:
    pre = plant.submit()
    train = plant.submit(Dependency(pre))
    evaluate = plant.submit(Dependency(train))
    plant.cycle()
    plant.exit(pre, 1)
    plant.cycle()
    assert plant.loop.last is not None
    assert plant.loop.last.unsatisfiable == (train,)
    record = plant.job(train)
    assert (record.state, record.reason) == (
        JobState.CANCELLED,
        f"dependency never satisfied: job {pre} failed",
    )
    event = plant.store.events(train)[-1]
    assert (event.kind, event.actor, event.reason) == ("cancelled", "scheduler", record.reason)
    plant.cycle()  # the loop asked for this one itself (wake), to settle the next link
    assert plant.job(evaluate).reason == f"dependency never satisfied: job {train} was cancelled"


def test_a_cancelled_dependency_ends_an_ok_dependent(plant: Plant) -> None:
    pre = plant.submit()
    plant.control.hold(pre, principal=Principal.admin("ada"))
    train = plant.submit(Dependency(pre))
    plant.control.cancel(pre, principal=Principal.admin("ada"))
    plant.cycle()
    assert plant.job(train).reason == f"dependency never satisfied: job {pre} was cancelled"


def test_an_array_waits_for_every_job_of_an_array(plant: Plant) -> None:
    first = plant.array(3)
    second = plant.array(2, Dependency(first[0]))
    plant.cycle()
    assert [plant.state(j) for j in first] == ["running"] * 3
    assert [plant.state(j) for j in second] == ["pending"] * 2
    plant.exit(first[0])
    plant.exit(first[1])
    plant.cycle()
    why = plant.control.explain(second[1], principal=Principal.admin("tester"))
    assert why.message == f"waits for every job of array {first[0]} to succeed (2 of 3 have ended)"
    assert why.fields["array"] is True
    assert why.fields["members"] == 3
    plant.exit(first[2])
    plant.cycle()
    assert [plant.state(j) for j in second] == ["running"] * 2


def test_one_failed_member_ends_the_arrays_waiting_on_it(plant: Plant) -> None:
    first = plant.array(3)
    second = plant.array(2, Dependency(first[0]))
    after_all = plant.submit(Dependency(first[0], Condition.FAILED))
    plant.cycle()
    plant.exit(first[1], 2)
    plant.cycle()
    reason = f"dependency never satisfied: array {first[0]}: job {first[1]} failed"
    assert [plant.job(j).reason for j in second] == [reason, reason]
    assert plant.state(after_all) is JobState.PENDING  # the other members are still running
    plant.exit(first[0])
    plant.exit(first[2])
    plant.cycle()
    assert plant.state(after_all) is JobState.RUNNING


def test_each_cycle_reads_dependencies_once(plant: Plant) -> None:
    pre = plant.submit()
    for _ in range(300):
        plant.submit(Dependency(pre))
    plant.store.reads = 0
    plant.cycle()
    plant.cycle()
    assert plant.store.reads == 2
    assert plant.loop.last is not None
    assert plant.loop.last.waiting == 300


def test_a_cycle_without_dependencies_reads_none(plant: Plant) -> None:
    plant.submit()
    plant.store.reads = 0
    plant.cycle()
    assert plant.store.reads == 0


def test_submit_refuses_dependencies_that_cannot_hold(plant: Plant) -> None:
    pre = plant.submit()
    plant.cycle()
    plant.exit(pre, 1)
    plant.cycle()
    before = len(plant.store.list_jobs(JobFilter()))
    cases = [
        ((Dependency(99),), "after[0].job", "job 99 does not exist"),
        ((Dependency(pre, Condition.ANY), Dependency(pre)), "after[1].job", "names job"),
        ((Dependency(pre),), "after[0]", f"job {pre} failed, so 'ok' (afterok) can never hold"),
    ]
    for after, field_name, rule in cases:
        with pytest.raises(RejectedError) as caught:
            plant.submit(*after)
        assert caught.value.field == field_name
        assert rule in caught.value.rule
    assert len(plant.store.list_jobs(JobFilter())) == before
    # The id the next job gets does not exist yet: no job can wait for itself.
    with pytest.raises(RejectedError, match=f"job {before + 1} does not exist"):
        plant.submit(Dependency(before + 1))
    assert plant.submit(Dependency(pre, Condition.FAILED)) == before + 1


def test_adding_to_an_array_checks_it(plant: Plant) -> None:
    members = plant.array(2)
    single = plant.submit()

    def add(array: int, *after: Dependency) -> list[tuple[JobRecord, bool]]:
        return plant.control.submit_many(
            [replace(JOB, after=after)],
            principal=Principal.admin("ada"),
            idempotency_keys=[None],
            request_hashes=[None],
            array=array,
        )

    with pytest.raises(RejectedError, match="does not name an array") as caught:
        add(single)
    assert caught.value.field == "array_id"
    with pytest.raises(RejectedError, match="which this job joins") as caught:
        add(members[0], Dependency(members[0]))
    assert caught.value.field == "jobs[0].after[0].job"
    added = add(members[0], Dependency(single))
    assert added[0][0].array_id == members[0]
    assert plant.store.dependency_progress([members[0]])[members[0]].members == 3
