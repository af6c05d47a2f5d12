"""The live scheduling loop: the same ``schedule()`` the simulator drives, on real state.

One thread runs cycles. A cycle: (1) reconcile what the executor reports with the store;
(2) build a snapshot from the store (nodes, running jobs with their placements, quotas,
decayed usage derived from the usage ledger and the active runs (``usage_history``), attained
service) and call the core; (3) apply the Plan. Cycles run when
something changed (``wake``: a submission, a cancel, a release) and at least every
``interval`` seconds (completions are noticed by polling the executor), but never closer
together than ``min_gap`` so a burst of submissions is handled in few cycles.

Everything that changes a run goes through ``_lock``: cycles, and stops asked for by the API.
The latest Plan's explanations are kept for ``allot explain``.
"""

from __future__ import annotations

import logging
import threading

from allot.control.apply import apply_plan
from allot.control.observers import CycleObserver, CycleReport, Observers
from allot.control.ports import Clock, Executor, Store
from allot.control.reconcile import reconcile, stop
from allot.control.records import JobRecord, RunPhase, RunRecord, StopCause
from allot.control.usage_history import LedgerHistory
from allot.core.cycle import schedule
from allot.core.explain import Explanation
from allot.core.model import Cluster, RunningJob
from allot.core.plan import Plan
from allot.core.policy import Policy
from allot.core.snapshot import OverAllocationError, Snapshot

log = logging.getLogger("allot.control")


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
        self._nominated: set[int] = set()
        self._usage = LedgerHistory(store, store.quotas().usage_half_life, clock.now())
        self.last: CycleReport | None = None
        self.cycles = 0
        self.observers = Observers()

    # ------------------------------------------------------------------ the Scheduler port

    def wake(self) -> None:
        """Run a cycle soon."""
        self._wake.set()

    def stop_run(self, run: RunRecord, *, cause: StopCause, reason: str, actor: str) -> None:
        """SIGTERM the run now; the loop SIGKILLs it when the grace period is over."""
        with self._lock:
            stop(
                self.store,
                self.executor,
                run,
                cause=cause,
                reason=reason,
                at=self.clock.now(),
                grace=self.grace,
                actor=actor,
            )
        self.wake()

    def explanation(self, job_id: int) -> Explanation | None:
        """Why the job did not start in the latest cycle."""
        return self._explanations.get(job_id)

    def subscribe(self, observer: CycleObserver) -> None:
        """Send every cycle's report to ``observer`` (see ``allot.control.observers``)."""
        self.observers.subscribe(observer)

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
            self.cycles += 1
            self.last = CycleReport(
                now, plan, applied, len(pending), len(active), self.clock.now() - started
            )
        self.observers.publish(self.last)
        return self.last

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
                history=self._usage.at(now, active),
                attained=attained,
            )
        except OverAllocationError:
            log.exception("the stored runs do not fit the stored nodes; not scheduling")
            return Plan()
        ids = {r.id for r in pending}
        self._nominated &= ids | {r.id for r in active}
        snap.nominated = self._nominated & ids
        return schedule(snap, [r.spec() for r in pending], self.policy, now)
