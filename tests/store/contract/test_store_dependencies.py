"""Dependencies and arrays in the store: dependencies read back with the job,
arrays are named by their first job, progress counts a job or an array's members by how they
ended, and pending jobs are cancelled in bulk with their reasons."""

from __future__ import annotations

import pytest

from allot.control.ports import NotFoundError, Store
from allot.control.records import NEW_ARRAY, Condition, Dependency, DependencyProgress
from allot.core.model import JobState
from store_builders import new_job, run_for


def _submit(store: Store, **fields: object) -> int:
    return store.submit(new_job(**fields), at=1.0, actor="ada")[0].id


def _end(store: Store, job_id: int, outcome: JobState) -> None:
    if outcome is JobState.CANCELLED:
        store.cancel_pending(job_id, at=3.0, actor="ada", reason="cancelled by ada")
        return
    run = run_for(job_id, f"run-{job_id}")
    assert store.begin_run(run, actor="scheduler")
    code = 0 if outcome is JobState.SUCCEEDED else 1
    store.end_run(run.run_id, outcome=outcome, exit_code=code, reason="ended", at=2.0, actor="x")


def _array(store: Store, size: int, **fields: object) -> list[int]:
    results = store.submit_many(
        [new_job(f"a[{i}]", **fields) for i in range(size)],
        at=1.0,
        actor="ada",
        idempotency_keys=[None] * size,
        request_hashes=[None] * size,
        array=NEW_ARRAY,
    )
    return [record.id for record, _ in results]


def test_dependencies_read_back_with_the_job(store: Store) -> None:
    first = _submit(store)
    second = _submit(store)
    after = (Dependency(first), Dependency(second, Condition.ANY))
    record, _ = store.submit(new_job(after=after), at=1.0, actor="ada")
    assert store.get_job(record.id).job.after == after
    assert [r.job.after for r in store.pending_jobs()] == [(), (), after]


def test_a_new_array_is_named_by_its_first_job_and_can_grow(store: Store) -> None:
    ids = _array(store, 3)
    assert [store.get_job(i).array_id for i in ids] == [ids[0]] * 3
    more = store.submit_many(
        [new_job("a[3]")],
        at=1.0,
        actor="ada",
        idempotency_keys=[None],
        request_hashes=[None],
        array=ids[0],
    )
    assert more[0][0].array_id == ids[0]
    assert store.get_job(more[0][0].id).array_id == ids[0]
    assert store.get_job(_submit(store)).array_id is None


def test_adding_to_a_job_that_is_no_array_changes_nothing(store: Store) -> None:
    single = _submit(store)
    with pytest.raises(NotFoundError, match=f"array {single} does not exist"):
        store.submit_many(
            [new_job()],
            at=1.0,
            actor="ada",
            idempotency_keys=[None],
            request_hashes=[None],
            array=single,
        )
    assert len(store.pending_jobs()) == 1


def test_a_retried_array_batch_keeps_its_array(store: Store) -> None:
    def batch() -> list[int | None]:
        results = store.submit_many(
            [new_job("a"), new_job("b")],
            at=1.0,
            actor="ada",
            idempotency_keys=["k:0", "k:1"],
            request_hashes=["h", "h"],
            array=NEW_ARRAY,
        )
        return [record.array_id for record, _ in results]

    first = batch()
    assert batch() == first
    assert len(store.pending_jobs()) == 2


def test_progress_of_single_jobs(store: Store) -> None:
    waiting, ok, failed, cancelled = (_submit(store) for _ in range(4))
    _end(store, ok, JobState.SUCCEEDED)
    _end(store, failed, JobState.FAILED)
    _end(store, cancelled, JobState.CANCELLED)
    found = store.dependency_progress([waiting, ok, failed, cancelled, 999])
    assert found == {
        waiting: DependencyProgress(waiting, False, 1, 0, 0),
        ok: DependencyProgress(ok, False, 1, 1, 0),
        failed: DependencyProgress(failed, False, 1, 0, 1, (failed, JobState.FAILED)),
        cancelled: DependencyProgress(cancelled, False, 1, 0, 1, (cancelled, JobState.CANCELLED)),
    }


def test_progress_of_an_array_counts_every_member(store: Store) -> None:
    ids = _array(store, 5)
    _end(store, ids[0], JobState.SUCCEEDED)
    _end(store, ids[1], JobState.SUCCEEDED)
    _end(store, ids[3], JobState.CANCELLED)
    _end(store, ids[2], JobState.FAILED)
    found = store.dependency_progress([ids[0], ids[2]])
    # The array's id names the whole array; any other member names itself alone.
    assert found == {
        ids[0]: DependencyProgress(ids[0], True, 5, 2, 2, (ids[2], JobState.FAILED)),
        ids[2]: DependencyProgress(ids[2], False, 1, 0, 1, (ids[2], JobState.FAILED)),
    }
    assert store.dependency_progress([]) == {}


def test_progress_reads_many_ids_at_once(store: Store) -> None:
    ids = _array(store, 2)
    many = store.submit_many(
        [new_job() for _ in range(2500)],
        at=1.0,
        actor="ada",
        idempotency_keys=[None] * 2500,
        request_hashes=[None] * 2500,
    )
    singles = [record.id for record, _ in many]
    found = store.dependency_progress([*singles, ids[0]])
    assert len(found) == 2501
    assert found[ids[0]].members == 2
    assert all(found[i].members == 1 for i in singles)


def test_cancel_pending_many_cancels_only_pending_jobs(store: Store) -> None:
    a, b, c = (_submit(store) for _ in range(3))
    _end(store, c, JobState.SUCCEEDED)
    reasons = {
        a: "dependency never satisfied: job 7 failed",
        b: "dependency never satisfied: job 8 was cancelled",
        c: "dependency never satisfied: job 9 failed",
    }
    assert store.cancel_pending_many(reasons, at=5.0, actor="scheduler") == [a, b]
    for job_id in (a, b):
        record = store.get_job(job_id)
        assert (record.state, record.reason, record.end_time) == (
            JobState.CANCELLED,
            reasons[job_id],
            5.0,
        )
        event = store.events(job_id)[-1]
        assert (event.kind, event.from_state, event.to_state, event.actor) == (
            "cancelled",
            "pending",
            "cancelled",
            "scheduler",
        )
        assert event.reason == reasons[job_id]
    assert store.get_job(c).state is JobState.SUCCEEDED
    assert store.cancel_pending_many({}, at=6.0, actor="scheduler") == []
    assert store.cancel_pending_many({999: "no such job"}, at=6.0, actor="scheduler") == []
