"""The usage ledger and stop causes: every ended run appends one usage record in the
transaction that ends it, in write order, whatever the outcome; a stop's cause is stored and
read back."""

from __future__ import annotations

from allot.control.ports import Store
from allot.control.records import RunPhase, StopCause
from allot.core.model import JobState
from store_builders import new_job, run_for


def _ended(store: Store, run_id: str, outcome: JobState, at: float) -> None:
    store.end_run(run_id, outcome=outcome, exit_code=0, reason="", at=at, actor="executor")


def test_each_ended_run_appends_one_record_in_write_order(store: Store) -> None:
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


def test_a_preempted_run_is_recorded_and_its_next_run_too(store: Store) -> None:
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


def test_restating_a_stop_changes_its_cause(store: Store) -> None:
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
    assert (run.phase, run.stop_by) == (RunPhase.STOPPING, 40.0)  # the deadline stays
    assert run.executor == "local"
    restated = store.events(job_id)[-1]
    assert (restated.kind, restated.actor, restated.reason) == ("stopping", "ada", run.stop_reason)
    assert (restated.data["replaces"], restated.data["stop_by"]) == ("preempted", 40.0)
    # The same cause again, or a run that is not stopping: nothing changes.
    store.restate_stop("r1", cause=StopCause.CANCELLED, reason="again", at=32.0, actor="ada")
    _ended(store, "r1", JobState.CANCELLED, 35.0)
    store.restate_stop("r1", cause=StopCause.PREEMPTED, reason="late", at=36.0, actor="s")
    assert [e.kind for e in store.events(job_id)][-3:] == ["stopping", "stopping", "cancelled"]
    assert store.runs_of(job_id)[0].stop_cause is StopCause.CANCELLED
