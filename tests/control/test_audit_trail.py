"""The audit trail: the scheduler's decisions from a cycle's report (starts, preemptions,
refused and failed starts, jobs whose dependencies can never be met) become audit entries
with their job's tenant, written in order off the loop's thread; a store that fails a write
loses that batch, counted, and never stops the trail."""

from __future__ import annotations

from allot.control.audit import AuditTrail, SchedulingAudit
from allot.control.observers import Applied, CycleReport
from allot.control.records import AuditEntry, AuditFilter, Launch, NewJob
from allot.core.model import Resources, TaskPlacement
from allot.core.plan import Plan, Start
from allot.core.preemption import Preemption, Strategy
from harness import make_harness


def _job(harness: object, name: str) -> int:
    new = NewJob(name, "default", "ada", "default", (Resources.of(cpus=1, memory_mib=64),),
                 Launch(("true",)))  # fmt: skip
    return harness.store.submit(new, at=0.0, actor="ada")[0].id  # type: ignore[attr-defined]


def test_each_decision_is_one_entry_with_its_tenant() -> None:
    harness = make_harness()
    started, victim, refused, failed, orphan = (_job(harness, n) for n in "svrfo")
    plan = Plan(
        starts=(Start(started, "H100-80G", (TaskPlacement("gpu-1", (0,), 1000),)),),
        preemptions=(Preemption(victim, started, next(iter(Strategy)), 5.0),),
    )
    report = CycleReport(
        at=10.0,
        plan=plan,
        applied=Applied([started], [victim], [refused], [failed]),
        pending=3,
        running=1,
        seconds=0.01,
        unsatisfiable=(orphan,),
    )
    trail = AuditTrail(harness.store, harness.clock)
    SchedulingAudit(trail).cycle_done(report)
    assert trail.flush()
    entries = list(reversed(harness.store.audit(AuditFilter())))
    assert [(e.action, e.job_id, e.outcome) for e in entries] == [
        ("start", started, "ok"),
        ("preempt", victim, "ok"),
        ("start", refused, "refused"),
        ("start", failed, "failed"),
        ("reject", orphan, "cancelled"),
    ]
    assert {(e.actor, e.tenant, e.time) for e in entries} == {("scheduler", "default", 10.0)}
    assert entries[0].reason == "started on H100-80G"
    assert entries[1].reason.startswith(f"preempted for job {started} (")
    trail.close()


def test_a_failed_write_is_counted_and_the_trail_goes_on() -> None:
    harness = make_harness()
    trail = AuditTrail(harness.store, harness.clock)
    calls = []

    def failing(entries: object) -> None:
        calls.append(entries)
        raise OSError("disk full")

    original = harness.store.append_audit
    harness.store.append_audit = failing  # type: ignore[method-assign]
    trail.record(AuditEntry(1.0, "ada", "cancel_job", "job 1", "ok", "cancelled"))
    assert trail.flush()
    assert trail.lost == 1
    harness.store.append_audit = original  # type: ignore[method-assign]
    trail.record(AuditEntry(2.0, "ada", "cancel_job", "job 2", "ok", "cancelled"))
    trail.close()
    assert [e.target for e in harness.store.audit(AuditFilter())] == ["job 2"]
