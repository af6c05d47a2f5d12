"""A job's tasks in the store: read back in task order, stored with their job (single and
batch submissions, all or nothing), and each task's exit code recorded when its run ends,
including the codes reconcile hands over from the executor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from allot.control.ports import ConflictError, RunState, RunStatus, Store, TaskLaunch
from allot.control.reconcile import reconcile
from allot.control.records import RunPhase
from allot.control.registry import ExecutorRegistry
from allot.core.model import JobState, Resources
from harness import ManualClock
from store_builders import new_job, run_for


def test_tasks_read_back_in_order(store: Store) -> None:
    shapes = (Resources(500, 2000, 8192), Resources(2000, 8000, 65536))
    job_id = store.submit(replace(new_job("mixed"), tasks=shapes), at=1.0, actor="ada")[0].id
    assert store.get_job(job_id).job.tasks == shapes


def test_a_batch_stores_the_tasks_of_its_new_jobs(store: Store) -> None:
    first = store.submit(new_job("old"), at=1.0, actor="ada", idempotency_key="k0")[0].id
    answers = store.submit_many(
        [new_job("old"), new_job("gang", tasks=3, gpus=2), new_job("one")],
        at=2.0,
        actor="ada",
        idempotency_keys=["k0", "k1", None],
        request_hashes=[None, None, None],
    )
    assert [created for _, created in answers] == [False, True, True]
    assert answers[0][0].id == first
    gang, one = answers[1][0].id, answers[2][0].id
    assert store.get_job(gang).job.tasks == (Resources(2000, 4000, 16384),) * 3
    assert store.get_job(one).job.tasks == (Resources(1000, 4000, 16384),)
    assert len(store.pending_jobs()) == 3


def test_a_refused_batch_stores_nothing(store: Store) -> None:
    store.submit(new_job("a"), at=1.0, actor="ada", idempotency_key="k", request_hash="h1")
    with pytest.raises(ConflictError, match="idempotency key 'k' was used"):
        store.submit_many(
            [new_job("b", tasks=2), new_job("a")],
            at=2.0,
            actor="ada",
            idempotency_keys=[None, "k"],
            request_hashes=[None, "h2"],
        )
    assert [r.job.name for r in store.pending_jobs()] == ["a"]
    assert [e.kind for e in store.events()] == ["submitted"]


def test_ending_a_run_records_each_tasks_exit_code(store: Store) -> None:
    job_id = store.submit(new_job(tasks=3), at=0.0, actor="ada")[0].id
    store.begin_run(run_for(job_id, nodes=("n1", "n2", "n3")), actor="scheduler")
    assert store.get_job(job_id).run.exit_codes == ()  # type: ignore[union-attr]
    done = store.end_run(
        "run-1",
        outcome=JobState.FAILED,
        exit_code=3,
        reason="task 1 exited with code 3",
        at=110.0,
        actor="executor",
        exit_codes=(0, 3, -15),
    )
    assert (done.state, done.exit_code, done.attained_service) == (JobState.FAILED, 3, 30.0)
    (run,) = store.runs_of(job_id)
    assert (run.exit_code, run.exit_codes) == (3, (0, 3, -15))
    ended = store.events(job_id)[-1]
    assert ended.data["exit_codes"] == [0, 3, -15]


def test_a_run_ended_without_codes_has_none_per_task(store: Store) -> None:
    job_id = store.submit(new_job(tasks=2), at=0.0, actor="ada")[0].id
    store.begin_run(run_for(job_id, nodes=("n1", "n2")), actor="scheduler")
    store.end_run(
        "run-1",
        outcome=JobState.FAILED,
        exit_code=None,
        reason="launch failed: no such file",
        at=1.0,
        actor="executor",
    )
    assert store.runs_of(job_id)[0].exit_codes == (None, None)
    assert "exit_codes" not in store.events(job_id)[-1].data


def test_exit_codes_must_match_the_tasks_and_nothing_changes(store: Store) -> None:
    job_id = store.submit(new_job(tasks=2), at=0.0, actor="ada")[0].id
    store.begin_run(run_for(job_id, nodes=("n1", "n2")), actor="scheduler")
    with pytest.raises(ValueError, match="exit_codes: run run-1 has 2 tasks, got 1 exit codes"):
        store.end_run(
            "run-1",
            outcome=JobState.SUCCEEDED,
            exit_code=0,
            reason="ok",
            at=1.0,
            actor="executor",
            exit_codes=(0,),
        )
    assert store.get_job(job_id).state is JobState.RUNNING
    (run,) = store.runs_of(job_id)
    assert (run.phase, run.exit_codes) == (RunPhase.STARTING, ())
    assert store.usage() == []


class _ExitedExecutor:
    """Reports every run as exited with the given per-task codes."""

    def __init__(self, codes: tuple[int | None, ...]) -> None:
        self.codes = codes

    def status(self, run_id: str, num_tasks: int) -> RunStatus:
        return RunStatus(run_id, RunState.EXITED, self.codes)

    def statuses(self, runs: Sequence[tuple[str, int]]) -> list[RunStatus]:
        return [self.status(run_id, n) for run_id, n in runs]

    def launch(self, tasks: Sequence[TaskLaunch]) -> None:
        raise AssertionError("nothing is launched again")

    def signal(self, run_id: str, *, kill: bool) -> None:
        raise AssertionError("nothing is signalled")


def test_reconcile_hands_the_executors_codes_to_the_store(store: Store) -> None:
    job_id = store.submit(new_job(tasks=2), at=0.0, actor="ada")[0].id
    store.begin_run(run_for(job_id, nodes=("n1", "n2"), at=5.0), actor="scheduler")
    store.mark_running("run-1", at=6.0)
    executors = ExecutorRegistry.of(_ExitedExecutor((0, 3)))  # type: ignore[arg-type]
    seen = reconcile(store, executors, ManualClock(50.0), 30.0)
    assert seen.ended == 1
    record = store.get_job(job_id)
    assert (record.state, record.exit_code, record.reason) == (
        JobState.FAILED,
        3,
        "task 1 exited with code 3",
    )
    (run,) = store.runs_of(job_id)
    assert (run.phase, run.exit_codes) == (RunPhase.ENDED, (0, 3))
