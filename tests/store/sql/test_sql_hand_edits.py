"""Rows written by hand, as an operator, another tool or an older release could leave them: the
store reads them as its own. These tests are the SQL store's alone: no ``Store`` method revokes
a token or makes a job disagree with its run, and the bulk read is fed ten thousand rows in
one statement."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from sqlalchemy import insert, select, update

from allot.control.ports import ConflictError
from allot.control.records import RunPhase
from allot.core.model import JobState
from allot.store import SqlStore
from allot.store.jobs import job_values
from allot.store.tables import AllocationRow, JobRow, TokenRow
from store_builders import new_job, run_for


def test_a_revoked_token_is_not_found(store: SqlStore) -> None:
    token_hash = hashlib.sha256(b"s3cret").hexdigest()
    store.add_user("ci", cluster_admin=False, at=5.0)
    store.add_token("ci", "ci-token", token_hash, at=5.0)
    with store.engine.begin() as conn:
        conn.execute(update(TokenRow).values(revoked_at=9.0))
    assert store.find_token(token_hash) is None


def test_pending_jobs_reads_ten_thousand_jobs(store: SqlStore) -> None:
    # A sanity check of the bulk read; timings belong in benchmarks/.
    rows = [
        job_values(
            new_job(f"job-{i}", gpus=1 + i % 4),
            at=float(i),
            actor="ada",
            idempotency_key=None,
            request_hash=None,
        )
        for i in range(10_000)
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(JobRow), rows)
    pending = store.pending_jobs()
    assert len(pending) == 10_000
    assert [r.job.name for r in pending[:2]] == ["job-0", "job-1"]
    assert pending[-1].job.tasks[0].gpu_milli == 4000
    assert all(a.id < b.id for a, b in itertools.pairwise(pending))


def test_a_transition_the_state_machine_forbids_changes_nothing(store: SqlStore) -> None:
    job_id = store.submit(new_job(), at=0.0, actor="ada")[0].id
    store.begin_run(run_for(job_id), actor="scheduler")
    # A job record that disagrees with its run (only a bug or a hand edit could cause it).
    with store.engine.begin() as conn:
        conn.execute(update(JobRow).where(JobRow.id == job_id).values(state="cancelled"))
    with pytest.raises(ConflictError, match=f"job {job_id}: cannot go from cancelled to preempted"):
        store.end_run(
            "run-1", outcome=JobState.PENDING, exit_code=None, reason="x", at=5.0, actor="s"
        )
    with pytest.raises(ConflictError, match=f"job {job_id}: cannot go from cancelled to failed"):
        store.end_run("run-1", outcome=JobState.FAILED, exit_code=1, reason="x", at=5.0, actor="s")
    assert store.runs_of(job_id)[0].phase is RunPhase.STARTING
    with store.engine.connect() as conn:
        released = conn.execute(
            select(AllocationRow.released).where(AllocationRow.run_id == "run-1")
        ).scalars()
        assert list(released) == [False]
