"""The live scheduling loop: the same ``schedule()`` the simulator drives, on real state.

One thread runs cycles. A cycle: (1) reconcile what the executor reports with the store;
(2) build a snapshot from the store (nodes, running jobs with their placements, quotas,
decayed usage, attained service) and call the core; (3) apply the Plan. Cycles run when
something changed (``wake``: a submission, a cancel, a release) and at least every
``interval`` seconds (completions are noticed by polling the executor), but never closer
together than ``min_gap`` so a burst of submissions is handled in few cycles.

Dependencies (``allot.control.dependencies``) are settled before the core is called: the core
sees only pending jobs whose dependencies are all met. One read per cycle gets the progress of
every job and array the pending jobs wait for; a job whose dependency can never be met is
cancelled with the reason (all such jobs in one transaction), and a cycle that cancelled any
runs again soon, so a chain of dependents ends within a few cycles.

Everything that changes a run goes through ``_lock``: cycles, and stops asked for by the API.
The latest Plan's explanations, and what each waiting job waits for, are kept for
``allot explain``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from allot.control.apply import Applied, apply_plan
from allot.control.dependencies import DependencyWait, judge_job
from allot.control.ports import Clock, Executor, Store
from allot.control.reconcile import ACTOR, reconcile, stop
from allot.control.records import JobRecord, RunPhase, RunRecord
from allot.core.cycle import schedule
from allot.core.explain import Explanation
from allot.core.model import Cluster, RunningJob
from allot.core.plan import Plan
from allot.core.policy import Policy
from allot.core.quota.fair_share import UsageHistory
from allot.core.snapshot import OverAllocationError, Snapshot

log = logging.getLogger("allot.control")


@dataclass(frozen=True, slots=True)
class CycleReport:
    """What one cycle did and how long it took (seconds of wall time)."""

    plan: Plan
    applied: Applied
    pending: int
    running: int
    seconds: float
    waiting: int = 0  # pending jobs whose dependencies are not all met yet
    unsatisfiable: tuple[int, ...] = ()  # jobs cancelled: a dependency can never be met


class SchedulingLoop:
    """Runs scheduling cycles in a background thread; implements the ``Scheduler`` port."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        clock: Clock,
        policy: Policy,
        *,
        interval: float = 1.0,
        min_gap: float = 0.02,
        grace_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.executor = executor
        self.clock = clock
        self.policy = policy
        self.interval = interval
        self.min_gap = min_gap
        self.grace = grace_seconds
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._explanations: dict[int, Explanation] = {}
        self._waits: dict[int, DependencyWait] = {}
        self._nominated: set[int] = set()
        quotas = store.quotas()
        self._half_life = quotas.usage_half_life
        self._history = UsageHistory(clock.now())
        self.last: CycleReport | None = None
        self.cycles = 0

    # ------------------------------------------------------------------ the Scheduler port

    def wake(self) -> None:
        """Run a cycle soon."""
        self._wake.set()

    def stop_run(self, run: RunRecord, *, reason: str, actor: str) -> None:
        """SIGTERM the run now; the loop SIGKILLs it when the grace period is over."""
        with self._lock:
            stop(
                self.store,
                self.executor,
                run,
                reason=reason,
                at=self.clock.now(),
                grace=self.grace,
                actor=actor,
            )
        self.wake()

    def explanation(self, job_id: int) -> Explanation | None:
        """Why the job did not start in the latest cycle."""
        return self._explanations.get(job_id)

    def dependency_wait(self, job_id: int) -> DependencyWait | None:
        """What the job waited for in the latest cycle, if its dependencies were not met."""
        return self._waits.get(job_id)

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Recover from whatever the last process left (reconcile), then run in the background."""
        self.run_once()
        self._thread = threading.Thread(target=self._run, name="allot-scheduler", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the background thread (running jobs keep running)."""
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._closing.is_set():
            self._wake.wait(self.interval)
            if self._closing.is_set():
                return
            self._wake.clear()
            try:
                self.run_once()
            except Exception:  # a bad cycle must not end scheduling; the next one retries
                log.exception("scheduling cycle failed")
            self._closing.wait(self.min_gap)

    # ------------------------------------------------------------------ one cycle

    def run_once(self) -> CycleReport:
        """Reconcile, decide and apply once (synchronously; tests call this directly)."""
        with self._lock:
            started = self.clock.now()
            reconcile(self.store, self.executor, self.clock, self.grace)
            active = self.store.active_jobs()
            pending = self.store.pending_jobs(include_held=False)
            now = self.clock.now()
            pending, waits, ended = self._settle_dependencies(pending, now)
            self._advance_history(now, active)
            plan = self._decide(active, pending, now)
            jobs = {r.id: r for r in (*active, *pending)}
            applied = apply_plan(
                plan,
                jobs=jobs,
                store=self.store,
                executor=self.executor,
                clock=self.clock,
                nominated=self._nominated,
            )
            self._explanations = dict(plan.pending)
            self._waits = waits
            self.cycles += 1
            self.last = CycleReport(
                plan,
                applied,
                len(pending),
                len(active),
                self.clock.now() - started,
                len(waits),
                tuple(ended),
            )
            if ended:
                self.wake()  # their own dependents can now be settled too
            return self.last

    def _settle_dependencies(
        self, pending: list[JobRecord], now: float
    ) -> tuple[list[JobRecord], dict[int, DependencyWait], list[int]]:
        """The pending jobs whose dependencies are all met, what the others wait for, and the
        jobs cancelled because a dependency can never be met."""
        targets = {d.job_id for r in pending for d in r.job.after}
        if not targets:
            return pending, {}, []
        progress = self.store.dependency_progress(targets)
        eligible: list[JobRecord] = []
        waits: dict[int, DependencyWait] = {}
        never: dict[int, str] = {}
        for record in pending:
            if not record.job.after:
                eligible.append(record)
                continue
            verdict = judge_job(record.job.after, progress)
            if verdict.eligible:
                eligible.append(record)
            elif verdict.never is not None:
                never[record.id] = verdict.never
            elif verdict.wait is not None:
                waits[record.id] = verdict.wait
        ended = self.store.cancel_pending_many(never, at=now, actor=ACTOR) if never else []
        return eligible, waits, ended

    def _decide(self, active: list[JobRecord], pending: list[JobRecord], now: float) -> Plan:
        running = [
            RunningJob(
                r.spec(),
                r.run.started_at,
                r.run.placement,
                r.run.flavor,
                r.attained_service,
                r.run.stop_by if r.run.phase is RunPhase.STOPPING else None,
            )
            for r in active
            if r.run is not None
        ]
        attained = {r.id: r.attained_service for r in pending if r.attained_service > 0}
        try:
            snap = Snapshot(
                Cluster(tuple(self.store.nodes())),
                running,
                quotas=self.store.quotas(),
                history=self._history,
                attained=attained,
            )
        except OverAllocationError:
            log.exception("the stored runs do not fit the stored nodes; not scheduling")
            return Plan()
        ids = {r.id for r in pending}
        self._nominated &= ids | {r.id for r in active}
        snap.nominated = self._nominated & ids
        return schedule(snap, [r.spec() for r in pending], self.policy, now)

    def _advance_history(self, now: float, active: list[JobRecord]) -> None:
        tenants: dict[str, float] = {}
        users: dict[tuple[str, str], float] = {}
        for r in active:
            gpus = sum(t.gpu_milli for t in r.job.tasks) / 1000
            tenants[r.job.tenant] = tenants.get(r.job.tenant, 0.0) + gpus
            key = (r.job.tenant, r.job.user)
            users[key] = users.get(key, 0.0) + gpus
        self._history = self._history.advanced(now, tenants, users, self._half_life)
