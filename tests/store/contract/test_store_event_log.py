"""The event log over whole lives of jobs: every event has a time, an actor and a reason in
words; ``from_state``/``to_state`` are always job states (or None), with the run's phase in
``data``; events about no job carry no job state."""

from __future__ import annotations

from allot.control.ports import Store
from allot.control.records import EventRecord, RunPhase, StopCause
from allot.core.model import JobState, NodeState
from allot.core.quota.config import QueueSpec, QuotaConfig, TenantSpec
from store_builders import new_job, node, run_for

JOB_STATES = {state.value for state in JobState}
PHASES = {phase.value for phase in RunPhase}


def _check(event: EventRecord) -> None:
    """The rules every event keeps."""
    assert isinstance(event.time, float), event
    assert event.actor, event
    assert event.reason, event
    assert event.from_state is None or event.from_state in JOB_STATES, event
    assert event.to_state is None or event.to_state in JOB_STATES, event
    if "run_id" in event.data:
        assert event.data["phase"] in PHASES, event
        assert event.kind == "starting" or event.data["from_phase"] in PHASES, event


def _log(store: Store, job_id: int) -> list[tuple[str, str | None, str | None, object]]:
    found = store.events(job_id)
    for event in found:
        _check(event)
    return [(e.kind, e.from_state, e.to_state, e.data.get("phase")) for e in found]


def test_a_job_held_released_preempted_requeued_and_succeeding(store: Store) -> None:
    job_id = store.submit(new_job(held=True), at=1.0, actor="ada")[0].id
    store.set_held(job_id, False, at=2.0, actor="ada")
    store.set_held(job_id, True, at=3.0, actor="bob")
    store.set_held(job_id, False, at=4.0, actor="bob")
    store.begin_run(run_for(job_id, "r1", at=10.0), actor="scheduler")
    store.mark_running("r1", at=11.0)
    store.request_stop(
        "r1",
        stop_by=60.0,
        cause=StopCause.PREEMPTED,
        reason="preempted for job 9 (priority)",
        at=30.0,
        actor="scheduler",
    )
    store.end_run(
        "r1",
        outcome=JobState.PENDING,
        exit_code=-15,
        reason="preempted for job 9 (priority)",
        at=40.0,
        actor="executor",
        exit_codes=(-15,),
    )
    store.begin_run(run_for(job_id, "r2", at=50.0), actor="scheduler")
    store.mark_running("r2", at=51.0)
    store.end_run(
        "r2",
        outcome=JobState.SUCCEEDED,
        exit_code=0,
        reason="all tasks exited with code 0",
        at=90.0,
        actor="executor",
        exit_codes=(0,),
    )
    assert _log(store, job_id) == [
        ("submitted", None, "pending", None),
        ("released", "pending", "pending", None),
        ("held", "pending", "pending", None),
        ("released", "pending", "pending", None),
        ("starting", "pending", "running", "starting"),
        ("running", "running", "running", "running"),
        ("stopping", "running", "running", "stopping"),
        ("preempted", "running", "preempted", "ended"),
        ("requeued", "preempted", "pending", "ended"),
        ("starting", "pending", "running", "starting"),
        ("running", "running", "running", "running"),
        ("succeeded", "running", "succeeded", "ended"),
    ]
    found = store.events(job_id)
    times = [1.0, 2.0, 3.0, 4.0, 10.0, 11.0, 30.0, 40.0, 40.0, 50.0, 51.0, 90.0]
    assert [e.time for e in found] == times
    assert found[0].reason == "submitted by ada to queue research, held"
    assert [e.reason for e in found[1:4]] == ["released by ada", "held by bob", "released by bob"]
    assert [e.actor for e in found[4:8]] == ["scheduler", "executor", "scheduler", "executor"]
    assert found[4].reason.startswith("placed on node-1")
    stopping = found[6]
    assert (stopping.data["from_phase"], stopping.data["stop_by"]) == ("running", 60.0)
    assert found[7].data["from_phase"] == "stopping"
    # The transitions of the job are exactly its events that change the job state.
    moves = [(e.from_state, e.to_state) for e in found if e.from_state != e.to_state]
    assert moves == [
        (None, "pending"),
        ("pending", "running"),
        ("running", "preempted"),
        ("preempted", "pending"),
        ("pending", "running"),
        ("running", "succeeded"),
    ]


def test_a_plain_submission_names_its_actor_and_queue(store: Store) -> None:
    job_id = store.submit(new_job(queue="batch"), at=1.0, actor="ci-bot")[0].id
    (submitted,) = store.events(job_id)
    assert (submitted.reason, submitted.data) == (
        "submitted by ci-bot to queue batch",
        {"queue": "batch"},
    )
    many = store.submit_many(
        [new_job(held=True)], at=2.0, actor="ada", idempotency_keys=[None], request_hashes=[None]
    )
    (batch_submitted,) = store.events(many[0][0].id)
    assert batch_submitted.reason == "submitted by ada to queue research, held"


def test_cancelling_stopping_and_failing_keep_the_rules(store: Store) -> None:
    pending = store.submit(new_job("p"), at=1.0, actor="ada")[0].id
    store.cancel_pending(pending, at=2.0, actor="ada", reason="")
    assert _log(store, pending)[-1] == ("cancelled", "pending", "cancelled", None)
    assert store.events(pending)[-1].reason == "cancelled by ada"

    stopped = store.submit(new_job("s"), at=1.0, actor="ada")[0].id
    store.begin_run(run_for(stopped, "s1", at=10.0), actor="scheduler")
    store.request_stop(
        "s1", stop_by=40.0, cause=StopCause.CANCELLED, reason="", at=12.0, actor="ada"
    )
    store.end_run(
        "s1",
        outcome=JobState.CANCELLED,
        exit_code=-15,
        reason="cancelled by ada",
        at=20.0,
        actor="executor",
    )
    assert _log(store, stopped)[-2:] == [
        ("stopping", "running", "running", "stopping"),
        ("cancelled", "running", "cancelled", "ended"),
    ]
    stop = store.events(stopped)[-2]
    assert (stop.reason, stop.data["from_phase"]) == ("stop requested by ada", "starting")

    failed = store.submit(new_job("f"), at=1.0, actor="ada")[0].id
    store.begin_run(run_for(failed, "f1", at=10.0), actor="scheduler")
    store.end_run("f1", outcome=JobState.FAILED, exit_code=None, reason="", at=11.0, actor="x")
    assert _log(store, failed)[-1] == ("failed", "running", "failed", "ended")
    assert store.events(failed)[-1].reason == "run ended: failed"


def test_events_about_no_job_carry_reasons_and_no_job_state(store: Store) -> None:
    store.sync_nodes([node("a")], at=1.0)
    store.set_node_state("a", NodeState.DRAINING, at=2.0, actor="admin")
    config = QuotaConfig((TenantSpec("vision"),), (QueueSpec("research", "vision"),))
    store.save_quotas(config, at=3.0)
    store.add_user("ci", cluster_admin=False, at=4.0)
    store.add_token("ci", "deploy", "0" * 64, at=4.0)
    found = store.events()
    for event in found:
        _check(event)
    assert [(e.kind, e.job_id, e.from_state, e.to_state) for e in found] == [
        ("node_state", None, None, None),
        ("node_state", None, None, None),
        ("quotas_saved", None, None, None),
        ("token_added", None, None, None),
    ]
    assert [e.reason for e in found[2:]] == [
        "quotas saved (tenants: 1, cohorts: 0, queues: 1)",
        "token 'deploy' of user 'ci' added",
    ]
