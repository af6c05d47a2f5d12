"""Revision 0002 on a database that already holds jobs: it backfills ``tasks`` from
``jobs.tasks`` and single-task runs' exit codes, the store then works as on a new database,
and a downgrade to 0001 leaves every job readable from ``jobs.tasks``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import insert, inspect, select

from allot.control.records import NewJob
from allot.core.model import JobState
from allot.store import SqlStore
from allot.store.jobs import job_values
from allot.store.migrations import alembic_config
from allot.store.tables import AllocationRow, JobRow, RunRow, TaskRow
from store_builders import new_job, run_for


@pytest.fixture
def old_store(database_url: str) -> Iterator[SqlStore]:
    """A store whose database is at revision 0001."""
    opened = SqlStore(database_url)
    with opened.engine.begin() as conn:
        command.upgrade(alembic_config(opened.engine.url, conn), "0001")
    try:
        yield opened
    finally:
        opened.close()


def _old_job(store: SqlStore, job: NewJob, *, state: JobState = JobState.PENDING) -> int:
    """Insert a job as revision 0001 stored it: its tasks only in ``jobs.tasks``."""
    values = job_values(job, at=1.0, actor="ada", idempotency_key=None, request_hash=None)
    for later in ("array_id", "dependencies", "profile", "placement"):  # of 0003, 0006, 0010
        del values[later]
    with store.engine.begin() as conn:
        job_id: int = conn.execute(
            insert(JobRow).returning(JobRow.id), {**values, "state": state.value}
        ).scalar_one()
    return job_id


def _old_run(store: SqlStore, job_id: int, run_id: str, *, tasks: int, code: int | None) -> None:
    """An ended run (``code`` given) or a running one, with one allocation per task."""
    ended = code is not None
    with store.engine.begin() as conn:
        conn.execute(
            insert(RunRow),
            {
                "run_id": run_id,
                "job_id": job_id,
                "attempt": 1,
                "phase": "ended" if ended else "running",
                "flavor": "H100-80G",
                "started_at": 2.0,
                "ended_at": 3.0 if ended else None,
                "exit_code": code,
            },
        )
        conn.execute(
            insert(AllocationRow),
            [
                {
                    "run_id": run_id,
                    "task_index": i,
                    "node": f"n{i}",
                    "devices": [0],
                    "gpu_milli_per_device": 1000,
                    "cpu_milli": 4000,
                    "memory_mib": 16384,
                    "released": ended,
                }
                for i in range(tasks)
            ],
        )


def _rows(store: SqlStore) -> dict[int, list[tuple[int, int, int, int]]]:
    with store.engine.connect() as conn:
        query = select(
            TaskRow.job_id,
            TaskRow.task_index,
            TaskRow.gpu_milli,
            TaskRow.cpu_milli,
            TaskRow.memory_mib,
        ).order_by(TaskRow.job_id, TaskRow.task_index)
        found: dict[int, list[tuple[int, int, int, int]]] = {}
        for job_id, *task in conn.execute(query):
            found.setdefault(job_id, []).append(tuple(task))  # type: ignore[arg-type]
        return found


def _codes(store: SqlStore) -> dict[str, list[int | None]]:
    with store.engine.connect() as conn:
        query = select(AllocationRow.run_id, AllocationRow.exit_code).order_by(
            AllocationRow.run_id, AllocationRow.task_index
        )
        found: dict[str, list[int | None]] = {}
        for run_id, code in conn.execute(query):
            found.setdefault(run_id, []).append(code)
        return found


def test_upgrade_backfills_tasks_and_single_task_exit_codes(old_store: SqlStore) -> None:
    pending = _old_job(old_store, new_job("p", tasks=3, gpus=2))
    single = _old_job(old_store, new_job("s"), state=JobState.FAILED)
    gang = _old_job(old_store, new_job("g", tasks=2), state=JobState.FAILED)
    running = _old_job(old_store, new_job("r"), state=JobState.RUNNING)
    _old_run(old_store, single, "single", tasks=1, code=7)
    _old_run(old_store, gang, "gang", tasks=2, code=3)
    _old_run(old_store, running, "running", tasks=1, code=None)

    old_store.migrate()

    shape = (1000, 4000, 16384)
    assert _rows(old_store) == {
        pending: [(i, 2000, 4000, 16384) for i in range(3)],
        single: [(0, *shape)],
        gang: [(0, *shape), (1, *shape)],
        running: [(0, *shape)],
    }
    # Which task of a gang failed was never stored: those codes stay unknown.
    assert _codes(old_store) == {"gang": [None, None], "running": [None], "single": [7]}
    assert old_store.runs_of(single)[0].exit_codes == (7,)


def test_a_migrated_database_works_as_a_new_one(old_store: SqlStore) -> None:
    job_id = _old_job(old_store, new_job("old", tasks=2))
    old_store.migrate()
    fresh = old_store.submit(new_job("new"), at=5.0, actor="ada")[0].id
    assert sorted(_rows(old_store)) == [job_id, fresh]
    assert old_store.get_job(job_id).job.tasks == new_job(tasks=2).tasks
    assert old_store.begin_run(run_for(job_id, nodes=("n1", "n2")), actor="scheduler")
    done = old_store.end_run(
        "run-1",
        outcome=JobState.SUCCEEDED,
        exit_code=0,
        reason="all tasks exited with code 0",
        at=110.0,
        actor="executor",
        exit_codes=(0, 0),
    )
    assert done.attained_service == pytest.approx(2 * 10.0)
    assert _codes(old_store) == {"run-1": [0, 0]}


def test_downgrade_to_0001_keeps_every_job_readable(old_store: SqlStore) -> None:
    job_id = _old_job(old_store, new_job("old", tasks=2))
    old_store.migrate()
    with old_store.engine.begin() as conn:
        command.downgrade(alembic_config(old_store.engine.url, conn), "0001")
    inspector = inspect(old_store.engine)
    assert "tasks" not in inspector.get_table_names()
    assert "exit_code" not in {c["name"] for c in inspector.get_columns("allocations")}
    with old_store.engine.connect() as conn:
        stored = conn.execute(select(JobRow.tasks).where(JobRow.id == job_id)).scalar_one()
    assert len(stored) == 2
    old_store.migrate()  # and up again: the backfill runs once more
    assert list(_rows(old_store)) == [job_id]
