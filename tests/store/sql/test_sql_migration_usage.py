"""Revision 0004 on a database that already holds runs: it fills in each run's stop cause from
its stop reason and writes the usage ledger for the runs that had ended."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import insert

from allot.control.records import StopCause, UsageRecord
from allot.store import SqlStore
from allot.store.jobs import job_values
from allot.store.migrations import alembic_config
from allot.store.tables import AllocationRow, JobRow, RunRow
from store_builders import new_job


@pytest.fixture
def store_at_0003(database_url: str) -> Iterator[SqlStore]:
    """A store whose database is at revision 0003."""
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
    del values["profile"]  # a column of revision 0006
    del values["placement"]  # a column of revision 0010
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
