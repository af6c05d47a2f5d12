"""Jobs in the store: submission and idempotency keys (also from many threads at once: each
method is one transaction), reads, filters and pagination, hold and release, cancelling a
pending job."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from allot.control.ports import ConflictError, NotFoundError, Store
from allot.control.records import JobFilter, JobRecord, Launch, NewJob
from allot.core.model import JobState, Resources
from store_builders import new_job, run_for


def test_submit_stores_a_pending_job_that_reads_back_equal(store: Store) -> None:
    job = NewJob(
        name="sweep",
        tenant="nlp",
        user="grace",
        queue="batch",
        tasks=(Resources(2000, 8000, 65536), Resources(500, 1000, 2048)),
        launch=Launch(("bash", "-c", "echo 'hi there'"), None, {"A": "1", "B": ""}),
        priority=5,
        flavors=("H100-80G", "A100-40G"),
        runtime_estimate=3600.0,
        time_limit=7200.5,
        checkpointable=True,
        preemptible=False,
    )
    record, created = store.submit(job, at=1_700_000_000.25, actor="grace")
    assert created
    assert record == JobRecord(record.id, job, JobState.PENDING, 1_700_000_000.25)
    assert store.get_job(record.id) == record
    assert store.events(record.id)[0].kind == "submitted"


def test_get_job_names_a_missing_job(store: Store) -> None:
    with pytest.raises(NotFoundError, match="job 12 does not exist"):
        store.get_job(12)


def test_a_repeated_idempotency_key_returns_the_stored_job(store: Store) -> None:
    first, created = store.submit(
        new_job(), at=1.0, actor="ada", idempotency_key="k1", request_hash="h1"
    )
    again, created_again = store.submit(
        new_job(), at=2.0, actor="ada", idempotency_key="k1", request_hash="h1"
    )
    assert (created, created_again) == (True, False)
    assert again == first
    assert len(store.pending_jobs()) == 1
    assert [e.kind for e in store.events()] == ["submitted"]


def test_an_idempotency_key_reused_for_another_request_conflicts(store: Store) -> None:
    store.submit(new_job(), at=1.0, actor="ada", idempotency_key="k1", request_hash="h1")
    with pytest.raises(ConflictError, match="idempotency key 'k1' was used for a different"):
        store.submit(new_job("other"), at=2.0, actor="ada", idempotency_key="k1", request_hash="h2")


def test_idempotency_keys_belong_to_one_actor(store: Store) -> None:
    a, _ = store.submit(new_job(), at=1.0, actor="ada", idempotency_key="k", request_hash="h")
    b, created = store.submit(new_job(), at=1.0, actor="bob", idempotency_key="k", request_hash="h")
    assert created
    assert a.id != b.id


def test_submissions_without_a_key_always_create_jobs(store: Store) -> None:
    ids = {store.submit(new_job(), at=1.0, actor="ada")[0].id for _ in range(3)}
    assert len(ids) == 3


def test_concurrent_submits_with_one_key_create_exactly_one_job(store: Store) -> None:
    start = threading.Barrier(8)

    def submit(_: int) -> tuple[int, bool]:
        start.wait()
        record, created = store.submit(
            new_job(), at=1.0, actor="ada", idempotency_key="once", request_hash="h"
        )
        return record.id, created

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(submit, range(8)))
    assert len({job_id for job_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False] * 7 + [True]
    assert len(store.pending_jobs()) == 1


def test_concurrent_submits_from_many_threads_all_land(store: Store) -> None:
    def submit(i: int) -> int:
        return store.submit(new_job(f"job-{i}"), at=float(i), actor="ada")[0].id

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(submit, range(200)))
    assert len(set(ids)) == 200
    assert len(store.pending_jobs()) == 200


def _submit_all(store: Store) -> list[int]:
    specs = [
        ("a", "ada", "vision", "research"),
        ("b", "bob", "vision", "batch"),
        ("c", "ada", "nlp", "research"),
        ("d", "cy", "nlp", "batch"),
        ("e", "ada", "vision", "research"),
    ]
    return [
        store.submit(new_job(name, user=user, tenant=tenant, queue=queue), at=float(i), actor=user)[
            0
        ].id
        for i, (name, user, tenant, queue) in enumerate(specs)
    ]


def test_list_jobs_filters_by_every_field_newest_first(store: Store) -> None:
    b = _submit_all(store)[1]
    store.cancel_pending(b, at=10.0, actor="bob", reason="not needed")

    def names(where: JobFilter) -> list[str]:
        return [r.job.name for r in store.list_jobs(where)]

    assert names(JobFilter()) == ["e", "d", "c", "b", "a"]
    assert names(JobFilter(user="ada")) == ["e", "c", "a"]
    assert names(JobFilter(tenant="nlp")) == ["d", "c"]
    assert names(JobFilter(tenants=frozenset({"nlp", "vision"}))) == ["e", "d", "c", "b", "a"]
    assert names(JobFilter(tenants=frozenset({"nlp"}), user="cy")) == ["d"]
    assert names(JobFilter(tenants=frozenset())) == []
    assert names(JobFilter(queue="batch")) == ["d", "b"]
    assert names(JobFilter(states=(JobState.CANCELLED,))) == ["b"]
    assert names(JobFilter(states=(JobState.PENDING, JobState.CANCELLED), queue="batch")) == [
        "d",
        "b",
    ]
    assert names(JobFilter(user="ada", tenant="vision", queue="research")) == ["e", "a"]
    assert names(JobFilter(user="nobody")) == []


def test_list_jobs_pages_by_keyset(store: Store) -> None:
    ids = _submit_all(store)
    pages: list[list[int]] = []
    before: int | None = None
    while True:
        page = [r.id for r in store.list_jobs(JobFilter(limit=2, before=before))]
        if not page:
            break
        pages.append(page)
        before = page[-1]
    assert pages == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]
    assert store.list_jobs(JobFilter(limit=0)) == []


def test_list_jobs_carries_the_current_run(store: Store) -> None:
    job_id = store.submit(new_job(), at=1.0, actor="ada")[0].id
    store.submit(new_job("idle"), at=2.0, actor="ada")
    store.begin_run(run_for(job_id), actor="scheduler")
    listed = {r.id: r for r in store.list_jobs(JobFilter())}
    run = listed[job_id].run
    assert run is not None
    assert run.run_id == "run-1"
    assert [r.run for r in listed.values() if r.id != job_id] == [None]


def test_pending_jobs_are_oldest_first_and_include_held_ones(store: Store) -> None:
    first = store.submit(new_job("first"), at=1.0, actor="ada")[0].id
    held = store.submit(new_job("held", held=True), at=2.0, actor="ada")[0].id
    running = store.submit(new_job("running"), at=3.0, actor="ada")[0].id
    last = store.submit(new_job("last"), at=4.0, actor="ada")[0].id
    store.begin_run(run_for(running), actor="scheduler")
    pending = store.pending_jobs()
    assert [r.id for r in pending] == [first, held, last]
    assert [r.held for r in pending] == [False, True, False]


def test_hold_and_release_a_pending_job(store: Store) -> None:
    job_id = store.submit(new_job(), at=1.0, actor="ada")[0].id
    held = store.set_held(job_id, True, at=2.0, actor="ada")
    assert held.held
    assert held.state is JobState.PENDING
    assert store.begin_run(run_for(job_id), actor="scheduler") is False
    assert store.set_held(job_id, True, at=3.0, actor="ada").held  # no change, no event
    released = store.set_held(job_id, False, at=4.0, actor="ada")
    assert not released.held
    assert [e.kind for e in store.events(job_id)] == ["submitted", "held", "released"]
    assert store.begin_run(run_for(job_id), actor="scheduler") is True


def test_hold_refuses_a_job_that_is_not_pending(store: Store) -> None:
    job_id = store.submit(new_job(), at=1.0, actor="ada")[0].id
    store.begin_run(run_for(job_id), actor="scheduler")
    with pytest.raises(ConflictError, match=f"job {job_id} is running; only a pending job"):
        store.set_held(job_id, True, at=2.0, actor="ada")


def test_cancel_a_pending_job(store: Store) -> None:
    job_id = store.submit(new_job(), at=1.0, actor="ada")[0].id
    record = store.cancel_pending(job_id, at=5.0, actor="ada", reason="cancelled by ada")
    assert record.state is JobState.CANCELLED
    assert (record.end_time, record.reason) == (5.0, "cancelled by ada")
    assert store.pending_jobs() == []
    last = store.events(job_id)[-1]
    assert (last.kind, last.from_state, last.to_state, last.actor) == (
        "cancelled",
        "pending",
        "cancelled",
        "ada",
    )


def test_cancel_pending_refuses_other_states_naming_them(store: Store) -> None:
    job_id = store.submit(new_job(), at=1.0, actor="ada")[0].id
    store.begin_run(run_for(job_id), actor="scheduler")
    with pytest.raises(ConflictError, match=f"job {job_id} is running, not pending"):
        store.cancel_pending(job_id, at=2.0, actor="ada", reason="no")
    with pytest.raises(NotFoundError, match="job 999 does not exist"):
        store.cancel_pending(999, at=2.0, actor="ada", reason="no")


def test_submit_many_in_one_transaction_with_keys(store: Store) -> None:
    jobs = [new_job(name=f"j{i}") for i in range(5)]
    keys = [f"k{i}" for i in range(5)]
    first = store.submit_many(
        jobs, at=1.0, actor="alice", idempotency_keys=keys, request_hashes=keys
    )
    assert [created for _, created in first] == [True] * 5
    again = store.submit_many(
        jobs, at=2.0, actor="alice", idempotency_keys=keys, request_hashes=keys
    )
    assert [r.id for r, _ in again] == [r.id for r, _ in first]
    assert [created for _, created in again] == [False] * 5
    assert len(store.pending_jobs()) == 5


def test_placement_options_and_gpu_memory_read_back_equal(store: Store) -> None:
    job = NewJob(
        name="shared",
        tenant="nlp",
        user="grace",
        queue="batch",
        tasks=(Resources(500, 1000, 2048, 8192),) * 2,
        launch=Launch(("true",), None, {}),
        flavors=("T4", "A10"),
        flavor_order=False,
        speeds=(("A10", 2.5), ("T4", 1.0)),
        colocate="rack",
        colocate_required=True,
    )
    record, _ = store.submit(job, at=1.0, actor="grace")
    assert store.get_job(record.id).job == job
    spec = store.get_job(record.id).spec()
    assert (spec.flavor_order, spec.colocate, spec.colocate_required) == (False, "rack", True)
    assert spec.speed_on("A10") == 2.5
    assert spec.tasks[0].gpu_memory_mib == 8192
