"""What ``SqlStore`` writes in its tables besides what it reads back: one ``tasks`` row per
task (and the JSON copy in ``jobs.tasks``), one ``allocations`` row per task of a run, held
until the run ends and then carrying that task's exit code, the ``job_dependencies`` rows, and
no event row without a reason."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from allot.control.ports import ConflictError
from allot.control.records import Condition, Dependency
from allot.core.model import JobState, Resources
from allot.store import SqlStore
from allot.store.events import event_values
from allot.store.tables import AllocationRow, DependencyRow, JobRow, TaskRow
from store_builders import new_job, run_for


def _tasks(store: SqlStore, job_id: int) -> list[tuple[int, int, int, int]]:
    with store.engine.connect() as conn:
        query = (
            select(TaskRow.task_index, TaskRow.gpu_milli, TaskRow.cpu_milli, TaskRow.memory_mib)
            .where(TaskRow.job_id == job_id)
            .order_by(TaskRow.task_index)
        )
        return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]


def _allocations(store: SqlStore, run_id: str) -> list[tuple[bool, int | None]]:
    """(released, exit code) of each allocation of the run, in task order."""
    with store.engine.connect() as conn:
        query = (
            select(AllocationRow.released, AllocationRow.exit_code)
            .where(AllocationRow.run_id == run_id)
            .order_by(AllocationRow.task_index)
        )
        return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]


def test_submit_writes_one_row_per_task_in_order(store: SqlStore) -> None:
    shapes = (Resources(500, 2000, 8192), Resources(2000, 8000, 65536))
    job_id = store.submit(replace(new_job("mixed"), tasks=shapes), at=1.0, actor="ada")[0].id
    assert _tasks(store, job_id) == [(0, 500, 2000, 8192), (1, 2000, 8000, 65536)]
    with store.engine.connect() as conn:
        stored = conn.execute(select(JobRow.tasks).where(JobRow.id == job_id)).scalar_one()
    # The JSON column keeps the same list for readers of the first schema.
    assert stored == [
        {"gpu_milli": 500, "cpu_milli": 2000, "memory_mib": 8192},
        {"gpu_milli": 2000, "cpu_milli": 8000, "memory_mib": 65536},
    ]


def test_a_batch_writes_the_tasks_of_its_new_jobs_only(store: SqlStore) -> None:
    first = store.submit(new_job("old"), at=1.0, actor="ada", idempotency_key="k0")[0].id
    answers = store.submit_many(
        [new_job("old"), new_job("gang", tasks=3, gpus=2), new_job("one")],
        at=2.0,
        actor="ada",
        idempotency_keys=["k0", "k1", None],
        request_hashes=[None, None, None],
    )
    gang, one = answers[1][0].id, answers[2][0].id
    assert _tasks(store, first) == [(0, 1000, 4000, 16384)]
    assert _tasks(store, gang) == [(i, 2000, 4000, 16384) for i in range(3)]
    assert _tasks(store, one) == [(0, 1000, 4000, 16384)]
    with store.engine.connect() as conn:
        assert len(conn.execute(select(TaskRow.job_id)).all()) == 5


def test_a_refused_batch_leaves_no_tasks(store: SqlStore) -> None:
    store.submit(new_job("a"), at=1.0, actor="ada", idempotency_key="k", request_hash="h1")
    with pytest.raises(ConflictError, match="idempotency key 'k' was used"):
        store.submit_many(
            [new_job("b", tasks=2), new_job("a")],
            at=2.0,
            actor="ada",
            idempotency_keys=[None, "k"],
            request_hashes=[None, "h2"],
        )
    with store.engine.connect() as conn:
        assert len(conn.execute(select(TaskRow.job_id)).all()) == 1


def test_allocations_are_held_until_their_run_ends(store: SqlStore) -> None:
    job_id = store.submit(new_job(gpus=2), at=10.0, actor="ada")[0].id
    store.begin_run(run_for(job_id, at=20.0, gpus=2), actor="scheduler")
    assert _allocations(store, "run-1") == [(False, None)]
    store.mark_running("run-1", at=21.0)
    assert _allocations(store, "run-1") == [(False, None)]
    store.end_run(
        "run-1", outcome=JobState.SUCCEEDED, exit_code=0, reason="ok", at=120.0, actor="executor"
    )
    assert _allocations(store, "run-1") == [(True, None)]


def test_ending_a_run_writes_each_tasks_code_on_its_allocation(store: SqlStore) -> None:
    job_id = store.submit(new_job(tasks=3), at=0.0, actor="ada")[0].id
    store.begin_run(run_for(job_id, nodes=("n1", "n2", "n3")), actor="scheduler")
    assert _allocations(store, "run-1") == [(False, None)] * 3
    store.end_run(
        "run-1",
        outcome=JobState.FAILED,
        exit_code=3,
        reason="task 1 exited with code 3",
        at=110.0,
        actor="executor",
        exit_codes=(0, 3, -15),
    )
    assert _allocations(store, "run-1") == [(True, 0), (True, 3), (True, -15)]


def test_a_run_ended_without_codes_releases_allocations_without_codes(store: SqlStore) -> None:
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
    assert _allocations(store, "run-1") == [(True, None), (True, None)]


def test_refused_exit_codes_leave_the_allocations_held(store: SqlStore) -> None:
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
    assert _allocations(store, "run-1") == [(False, None), (False, None)]


def test_dependencies_are_stored_as_rows(store: SqlStore) -> None:
    first = store.submit(new_job(), at=1.0, actor="ada")[0].id
    second = store.submit(new_job(), at=1.0, actor="ada")[0].id
    after = (Dependency(first), Dependency(second, Condition.ANY))
    record, _ = store.submit(new_job(after=after), at=1.0, actor="ada")
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(DependencyRow.depends_on, DependencyRow.condition)
            .where(DependencyRow.job_id == record.id)
            .order_by(DependencyRow.depends_on)
        ).all()
    assert [tuple(r) for r in rows] == [(first, "ok"), (second, "any")]


def test_an_event_without_a_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="reason: event 'held' needs a reason in words"):
        event_values(
            at=1.0, kind="held", job_id=1, from_state="pending", to_state="pending", actor="a",
            reason="",
        )  # fmt: skip
