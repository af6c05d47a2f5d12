"""The usage ledger and stop causes: every ended run appends one usage record in the
transaction that ends it, in write order, whatever the outcome; a stop's cause is stored and
read back; revision 0004 fills both in for runs recorded before it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import insert

from allot.control.records import StopCause, UsageRecord
from allot.core.model import JobState
from allot.store import SqlStore
from allot.store.jobs import job_values
from allot.store.migrations import alembic_config
from allot.store.tables import AllocationRow, JobRow, RunRow
from store_builders import new_job, run_for


def _ended(store: SqlStore, run_id: str, outcome: JobState, at: float) -> None:
    store.end_run(run_id, outcome=outcome, exit_code=0, reason="", at=at, actor="executor")


def test_each_ended_run_appends_one_record_in_write_order(store: SqlStore) -> None:
    first = store.submit(new_job(gpus=2, tasks=2), at=0.0, actor="ada")[0].id
    second = store.submit(new_job(user="bo", tenant="nlp", queue="q2"), at=0.0, actor="bo")[0].id
    store.begin_run(run_for(first, "r1", at=10.0, nodes=("n1", "n2"), gpus=2), actor="s")
    store.begin_run(run_for(second, "r2", at=20.0), actor="s")
    assert store.usage() == []
    _ended(store, "r2", JobState.SUCCEEDED, 50.0)
    _ended(store, "r1", JobState.FAILED, 70.0)
    records = store.usage()
    assert [(r.run_id, r.tenant, r.user, r.queue) for r in records] == [
        ("r2", "nlp", "bo", "q2"),
        ("r1", "vision", "ada", "research"),
    ]
    r2, r1 = records
    assert (r1.started_at, r1.ended_at, r1.gpu_milli, r1.cpu_milli, r1.memory_mib) == (
        10.0,
        70.0,
        4000,
        8000,
        32768,
    )
    assert (r1.job_id, r1.flavor) == (first, "H100-80G")
    assert store.usage(after=r2.id) == [r1]
    assert store.usage(ended_after=60.0) == [r1]


def test_a_preempted_run_is_recorded_and_its_next_run_too(store: SqlStore) -> None:
    job_id = store.submit(new_job(), at=0.0, actor="ada")[0].id
    store.begin_run(run_for(job_id, "r1", at=10.0), actor="s")
    store.request_stop(
        "r1", stop_by=40.0, cause=StopCause.PREEMPTED, reason="preempted", at=30.0, actor="s"
    )
    assert store.runs_of(job_id)[0].stop_cause is StopCause.PREEMPTED
    _ended(store, "r1", JobState.PENDING, 35.0)
    store.begin_run(run_for(job_id, "r2", at=50.0), actor="s")
    _ended(store, "r2", JobState.SUCCEEDED, 80.0)
    spans = [(u.run_id, u.started_at, u.ended_at) for u in store.usage()]
    assert spans == [("r1", 10.0, 35.0), ("r2", 50.0, 80.0)]


def test_restating_a_stop_changes_its_cause(store: SqlStore) -> None:
    job_id = store.submit(new_job(), at=0.0, actor="ada")[0].id
    store.begin_run(run_for(job_id, "r1", at=10.0), actor="s")
    store.request_stop(
        "r1", stop_by=40.0, cause=StopCause.PREEMPTED, reason="preempted", at=30.0, actor="s"
    )
    store.restate_stop(
        "r1", cause=StopCause.CANCELLED, reason="cancelled by ada", at=31.0, actor="ada"
    )
    run = store.runs_of(job_id)[0]
    assert (run.stop_cause, run.stop_reason) == (StopCause.CANCELLED, "cancelled by ada")
    assert run.executor == "local"


@pytest.fixture
def store_at_0003(database_url: str) -> Iterator[SqlStore]:
    opened = SqlStore(database_url)
    with opened.engine.begin() as conn:
        command.upgrade(alembic_config(opened.engine.url, conn), "0003")
    try:
        yield opened
    finally:
        opened.close()


def test_revision_0004_fills_causes_and_the_ledger(store_at_0003: SqlStore) -> None:
    store = store_at_0003
    values = job_values(new_job(gpus=2), at=1.0, actor="ada", idempotency_key=None,
                        request_hash=None)  # fmt: skip
    runs = [
        ("r1", "ended", 30.0, "preempted for job 9 (reclaim)"),
        ("r2", "ended", 60.0, "time limit of 10 s"),
        ("r3", "stopping", None, "cancelled by ada"),
    ]
    with store.engine.begin() as conn:
        job_id = conn.execute(
            insert(JobRow).returning(JobRow.id), {**values, "state": "running"}
        ).scalar_one()
        for attempt, (run_id, phase, ended_at, reason) in enumerate(runs, start=1):
            conn.execute(insert(RunRow), {
                "run_id": run_id, "job_id": job_id, "attempt": attempt, "phase": phase,
                "flavor": "H100-80G", "started_at": 10.0 * attempt, "ended_at": ended_at,
                "stop_reason": reason,
            })  # fmt: skip
            conn.execute(insert(AllocationRow), {
                "run_id": run_id, "task_index": 0, "node": "n1", "devices": [0, 1],
                "gpu_milli_per_device": 1000, "cpu_milli": 4000, "memory_mib": 16384,
                "released": phase == "ended",
            })  # fmt: skip
    store.migrate()
    causes = [r.stop_cause for r in store.runs_of(job_id)]
    assert causes == [StopCause.PREEMPTED, StopCause.TIME_LIMIT, StopCause.CANCELLED]
    assert all(r.executor == "local" for r in store.runs_of(job_id))
    assert store.usage() == [
        UsageRecord(1, job_id, "r1", "vision", "ada", "research", "H100-80G", 10.0, 30.0,
                    2000, 4000, 16384),
        UsageRecord(2, job_id, "r2", "vision", "ada", "research", "H100-80G", 20.0, 60.0,
                    2000, 4000, 16384),
    ]  # fmt: skip
