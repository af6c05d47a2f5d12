"""Runs in the store: begin_run's conditional claim, the life of a run, preemption and
requeue, stop requests, and the transitions the job state machine forbids."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from allot.control.ports import ConflictError, NotFoundError, Store
from allot.control.records import RunPhase, StopCause
from allot.core.model import JobState, TaskPlacement
from store_builders import new_job, run_for


def _events(store: Store, job_id: int) -> list[tuple[str, str | None, str | None]]:
    return [(e.kind, e.from_state, e.to_state) for e in store.events(job_id)]


def test_the_life_of_a_job_that_succeeds(store: Store) -> None:
    job_id = store.submit(new_job(gpus=2), at=10.0, actor="ada")[0].id
    assert store.begin_run(run_for(job_id, at=20.0, gpus=2), actor="scheduler")

    starting = store.get_job(job_id)
    assert starting.state is JobState.RUNNING
    assert (starting.start_time, starting.run_count) == (20.0, 1)
    assert starting.run is not None
    assert starting.run.phase is RunPhase.STARTING
    assert starting.run.placement == (TaskPlacement("node-1", (0, 1), 1000),)

    store.mark_running("run-1", at=21.0)
    running = store.active_jobs()
    assert [r.id for r in running] == [job_id]
    assert running[0].run is not None
    assert running[0].run.phase is RunPhase.RUNNING

    done = store.end_run(
        "run-1",
        outcome=JobState.SUCCEEDED,
        exit_code=0,
        reason="exited 0",
        at=120.0,
        actor="executor",
    )
    assert done.state is JobState.SUCCEEDED
    assert (done.end_time, done.exit_code, done.reason, done.run) == (120.0, 0, "exited 0", None)
    assert done.attained_service == pytest.approx(2 * 100.0)
    assert store.active_jobs() == []
    (run,) = store.runs_of(job_id)
    assert (run.phase, run.ended_at, run.exit_code) == (RunPhase.ENDED, 120.0, 0)
    assert _events(store, job_id) == [
        ("submitted", None, "pending"),
        ("starting", "pending", "running"),
        ("running", "running", "running"),
        ("succeeded", "running", "succeeded"),
    ]
    assert [e.data.get("phase") for e in store.events(job_id)] == [
        None,
        "starting",
        "running",
        "ended",
    ]
    assert [e.time for e in store.events(job_id)] == [10.0, 20.0, 21.0, 120.0]


def test_begin_run_refuses_jobs_that_cannot_start_and_changes_nothing(store: Store) -> None:
    held = store.submit(new_job(held=True), at=1.0, actor="ada")[0].id
    cancelled = store.submit(new_job(), at=1.0, actor="ada")[0].id
    store.cancel_pending(cancelled, at=2.0, actor="ada", reason="no")
    started = store.submit(new_job(), at=1.0, actor="ada")[0].id
    assert store.begin_run(run_for(started, "first"), actor="scheduler")

    assert not store.begin_run(run_for(held, "h"), actor="scheduler")
    assert not store.begin_run(run_for(cancelled, "c"), actor="scheduler")
    assert not store.begin_run(run_for(started, "second"), actor="scheduler")
    assert not store.begin_run(run_for(12345, "missing"), actor="scheduler")
    assert store.runs_of(held) == []
    assert store.runs_of(cancelled) == []
    assert [r.run_id for r in store.runs_of(started)] == ["first"]
    assert store.get_job(started).run_count == 1


def test_two_schedulers_racing_for_one_job_one_wins(store: Store) -> None:
    job_id = store.submit(new_job(), at=1.0, actor="ada")[0].id
    start = threading.Barrier(2)

    def claim(run_id: str) -> bool:
        start.wait()
        return store.begin_run(run_for(job_id, run_id), actor=run_id)

    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(["a", "b"], pool.map(claim, ["a", "b"]), strict=True))
    assert sorted(results.values()) == [False, True]
    winner = next(run_id for run_id, won in results.items() if won)
    record = store.get_job(job_id)
    assert record.run is not None
    assert record.run.run_id == winner
    assert [r.run_id for r in store.runs_of(job_id)] == [winner]
    assert [e.kind for e in store.events(job_id)] == ["submitted", "starting"]


def test_a_gang_keeps_its_placement_in_task_order(store: Store) -> None:
    job_id = store.submit(new_job(tasks=3, gpus=4), at=1.0, actor="ada")[0].id
    run = run_for(job_id, nodes=("node-3", "node-1", "node-2"), gpus=4)
    store.begin_run(run, actor="scheduler")
    (active,) = store.active_jobs()
    assert active.run is not None
    assert active.run.placement == run.placement
    assert [p.node for p in store.runs_of(job_id)[0].placement] == ["node-3", "node-1", "node-2"]


def test_a_placement_that_does_not_match_the_tasks_is_refused(store: Store) -> None:
    job_id = store.submit(new_job(tasks=2), at=1.0, actor="ada")[0].id
    with pytest.raises(ConflictError, match=r"placement has 1 tasks, job \d+ has 2"):
        store.begin_run(run_for(job_id), actor="scheduler")
    assert store.get_job(job_id).state is JobState.PENDING
    assert store.runs_of(job_id) == []


def test_a_run_id_is_never_reused(store: Store) -> None:
    first = store.submit(new_job(), at=1.0, actor="ada")[0].id
    second = store.submit(new_job(), at=1.0, actor="ada")[0].id
    store.begin_run(run_for(first, "same"), actor="scheduler")
    with pytest.raises(ConflictError, match="run same already exists"):
        store.begin_run(run_for(second, "same"), actor="scheduler")
    assert store.get_job(second).state is JobState.PENDING


def test_preemption_requeues_the_job_and_keeps_its_service(store: Store) -> None:
    job_id = store.submit(new_job(gpus=4), at=0.0, actor="ada")[0].id
    store.begin_run(run_for(job_id, "r1", at=100.0, gpus=4), actor="scheduler")
    store.mark_running("r1", at=101.0)
    store.request_stop(
        "r1",
        stop_by=430.0,
        cause=StopCause.PREEMPTED,
        reason="preempted",
        at=400.0,
        actor="scheduler",
    )
    stopping = store.get_job(job_id).run
    assert stopping is not None
    assert (stopping.phase, stopping.stop_by, stopping.stop_reason) == (
        RunPhase.STOPPING,
        430.0,
        "preempted",
    )

    requeued = store.end_run(
        "r1",
        outcome=JobState.PENDING,
        exit_code=-15,
        reason="preempted by job 9",
        at=425.0,
        actor="scheduler",
    )
    assert requeued.state is JobState.PENDING
    assert requeued.run is None
    assert (requeued.end_time, requeued.exit_code) == (None, None)
    assert requeued.attained_service == pytest.approx(4 * 325.0)
    assert [r.id for r in store.pending_jobs()] == [job_id]
    assert _events(store, job_id)[-3:] == [
        ("stopping", "running", "running"),
        ("preempted", "running", "preempted"),
        ("requeued", "preempted", "pending"),
    ]

    assert store.begin_run(run_for(job_id, "r2", at=500.0, gpus=4), actor="scheduler")
    again = store.end_run(
        "r2", outcome=JobState.FAILED, exit_code=1, reason="exited 1", at=600.0, actor="executor"
    )
    assert again.attained_service == pytest.approx(4 * 325.0 + 4 * 100.0)
    assert (again.start_time, again.run_count, again.end_time) == (100.0, 2, 600.0)
    assert [r.run_id for r in store.runs_of(job_id)] == ["r1", "r2"]


def test_request_stop_is_a_no_op_once_stopping_or_ended(store: Store) -> None:
    job_id = store.submit(new_job(), at=0.0, actor="ada")[0].id
    store.begin_run(run_for(job_id), actor="scheduler")
    store.request_stop(
        "run-1",
        stop_by=50.0,
        cause=StopCause.CANCELLED,
        reason="cancelled by ada",
        at=20.0,
        actor="ada",
    )
    store.request_stop(
        "run-1",
        stop_by=99.0,
        cause=StopCause.TIME_LIMIT,
        reason="time limit",
        at=21.0,
        actor="scheduler",
    )
    store.mark_running("run-1", at=22.0)  # a late launch confirmation keeps it stopping
    run = store.get_job(job_id).run
    assert run is not None
    assert (run.phase, run.stop_by, run.stop_reason) == (
        RunPhase.STOPPING,
        50.0,
        "cancelled by ada",
    )
    store.end_run(
        "run-1",
        outcome=JobState.CANCELLED,
        exit_code=-15,
        reason="cancelled by ada",
        at=30.0,
        actor="executor",
    )
    store.request_stop(
        "run-1", stop_by=99.0, cause=StopCause.CANCELLED, reason="late", at=31.0, actor="scheduler"
    )
    assert [e.kind for e in store.events(job_id)] == [
        "submitted",
        "starting",
        "stopping",
        "cancelled",
    ]
    with pytest.raises(NotFoundError, match="run nope does not exist"):
        store.request_stop(
            "nope", stop_by=1.0, cause=StopCause.CANCELLED, reason="x", at=1.0, actor="x"
        )


def test_ending_a_run_twice_names_both_states(store: Store) -> None:
    job_id = store.submit(new_job(), at=0.0, actor="ada")[0].id
    store.begin_run(run_for(job_id), actor="scheduler")
    store.end_run(
        "run-1", outcome=JobState.SUCCEEDED, exit_code=0, reason="ok", at=5.0, actor="executor"
    )
    with pytest.raises(ConflictError, match="cannot go from succeeded to failed"):
        store.end_run(
            "run-1", outcome=JobState.FAILED, exit_code=1, reason="x", at=6.0, actor="executor"
        )
    with pytest.raises(ConflictError, match="run run-1 has ended"):
        store.mark_running("run-1", at=7.0)
    assert store.get_job(job_id).state is JobState.SUCCEEDED


def test_end_run_only_accepts_an_ending_outcome(store: Store) -> None:
    job_id = store.submit(new_job(), at=0.0, actor="ada")[0].id
    store.begin_run(run_for(job_id), actor="scheduler")
    with pytest.raises(ValueError, match="outcome: must be one of"):
        store.end_run(
            "run-1", outcome=JobState.PREEMPTED, exit_code=None, reason="x", at=1.0, actor="s"
        )
    with pytest.raises(NotFoundError, match="run nope does not exist"):
        store.end_run(
            "nope", outcome=JobState.FAILED, exit_code=None, reason="x", at=1.0, actor="s"
        )


def test_runs_of_an_unknown_job_is_empty(store: Store) -> None:
    assert store.runs_of(404) == []
