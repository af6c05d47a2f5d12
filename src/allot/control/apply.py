"""Apply: carry a Plan out through the store and the executor, crash-safely.

The only place where decisions become actions. Order matters:
1. Preemptions: record the stop (with the victim's grace deadline) before signalling.
2. Starts: record the intent (``Store.begin_run``: run id, placement and the pool whose executor
   runs it, job moved to running) before ``Executor.launch``; only then mark the run running.
   The cycle's intents are recorded first, then its runs launched, then marked running, so
   the runs of one cycle start close together. If the server dies in between, reconcile finds
   the run ``starting`` and launches it again, which the executor turns into a no-op when it
   already started. If the job changed meanwhile (cancelled, held), ``begin_run`` refuses and
   nothing is launched.
A launch that fails outright ends the run as failed with the error in words.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from allot.control.observers import Applied
from allot.control.ports import Clock, Store
from allot.control.reconcile import ACTOR, task_launches
from allot.control.records import JobRecord, RunPhase, RunRecord, StopCause
from allot.control.registry import ExecutorRegistry
from allot.core.model import JobState, Node
from allot.core.plan import Plan

log = logging.getLogger("allot.control")


def apply_plan(
    plan: Plan,
    *,
    jobs: dict[int, JobRecord],
    nodes: Mapping[str, Node],
    store: Store,
    executors: ExecutorRegistry,
    clock: Clock,
    nominated: set[int],
) -> Applied:
    """Carry out ``plan``. ``jobs`` holds every job the plan may name (pending and active),
    ``nodes`` every node it may place on (by name; a run goes to the executor of their pool);
    ``nominated`` is updated: preemptors join it, started jobs leave it."""
    done = Applied([], [], [], [])
    for preemption in plan.preemptions:
        victim = jobs.get(preemption.victim)
        if victim is None or victim.run is None or victim.run.phase is RunPhase.ENDED:
            continue
        if preemption.preemptor is None:  # a stop of its own: a budget's
            why = preemption.why
            reason = f"preempted: {why.message() if why else preemption.strategy}"
        else:
            reason = f"preempted for job {preemption.preemptor} ({preemption.strategy})"
        store.request_stop(
            victim.run.run_id,
            stop_by=preemption.stop_by,
            cause=StopCause.PREEMPTED,
            reason=reason,
            at=clock.now(),
            actor=ACTOR,
        )
        executors.signal(victim.run, kill=False)
        if preemption.why is not None:
            store.record_event(
                victim.id,
                str(preemption.why.reason),
                reason,
                at=clock.now(),
                actor=ACTOR,
                data=dict(preemption.why.fields),
            )
        if preemption.preemptor is not None:
            nominated.add(preemption.preemptor)
        done.preempted.append(preemption.victim)
    begun: list[tuple[JobRecord, RunRecord]] = []
    for start in plan.starts:
        record = jobs[start.job_id]
        try:
            pool = executors.pool_of(start.placement, nodes)
        except (LookupError, ValueError) as err:
            log.warning("job %d: not started: %s", record.id, err)
            done.refused.append(record.id)
            continue
        run = RunRecord(
            uuid.uuid4().hex,
            record.id,
            RunPhase.STARTING,
            start.flavor,
            start.placement,
            clock.now(),
            executor=pool,
        )
        if not store.begin_run(run, actor=ACTOR):
            done.refused.append(record.id)
            continue
        nominated.discard(record.id)
        begun.append((record, run))
    launched: list[tuple[JobRecord, RunRecord]] = []
    for record, run in begun:  # every intent first, so the cycle's runs start close together
        try:
            executors.launch(run, task_launches(record, run))
        except OSError as err:
            log.warning("job %d: launch failed: %s", record.id, err)
            store.end_run(
                run.run_id,
                outcome=JobState.FAILED,
                exit_code=None,
                reason=f"launch failed: {err}",
                at=clock.now(),
                actor="executor",
            )
            done.failed.append(record.id)
            continue
        launched.append((record, run))
    for record, run in launched:
        store.mark_running(run.run_id, at=clock.now())
        done.started.append(record.id)
    return done
