"""The live scheduling loop: the same ``schedule()`` the simulator drives, on real state.

One thread runs cycles. A cycle: (0) every ``inventory_interval``, store what each pool's
executor reports (``sync_inventory``); (1) reconcile what the executors report with the store:
the runs whose exits they pushed (``exited``), and every active run at start-up and every
``interval`` as the safety net;
(2) build a snapshot from the store (nodes, running jobs with their placements, quotas,
decayed usage derived from the usage ledger and the active runs (``usage_history``), attained
service) and call the core; (3) apply the Plan, each start through the executor of its
pool; (4) publish the cycle's report to the observers. Cycles run when something changed
(``wake``: a submission, a cancel, a release, an exit pushed by an executor) and at least
every ``interval`` seconds, but never closer together than ``min_gap`` so a burst of
submissions is handled in few cycles; an exit pushed by an executor cuts that gap short,
since the room it freed stands idle until a cycle hands it on.

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
import time
from collections.abc import Callable, Sequence

from allot.control.apply import apply_plan
from allot.control.dependencies import DependencyWait, judge_job
from allot.control.observers import CycleObserver, CycleReport, Observers
from allot.control.ports import Clock, Executor, Store
from allot.control.reconcile import ACTOR, reconcile, stop
from allot.control.records import JobRecord, RunPhase, RunRecord, StopCause
from allot.control.registry import ExecutorRegistry
from allot.control.usage_history import LedgerHistory, Prices
from allot.core.checks import AdmissionCheck, default_checks
from allot.core.cycle import schedule
from allot.core.explain import Explanation
from allot.core.model import Cluster, Node, RunningJob
from allot.core.placement.packing import default_packer, uses_packer
from allot.core.placement.throughput import reserve_by_flavor, workload_norms
from allot.core.plan import Plan
from allot.core.policy import Policy
from allot.core.quota.fair_share import FairShareUsage
from allot.core.snapshot import OverAllocationError, Snapshot

log = logging.getLogger("allot.control")
AdmissionSource = Callable[[float, Sequence[JobRecord]], tuple[AdmissionCheck, ...]]


class SchedulingLoop:
    """Runs scheduling cycles in a background thread; implements the ``Scheduler`` port."""

    def __init__(
        self,
        store: Store,
        executors: ExecutorRegistry | Executor,
        clock: Clock,
        policy: Policy,
        *,
        interval: float = 1.0,
        min_gap: float = 0.02,
        grace_seconds: float = 30.0,
        inventory_interval: float = 30.0,
    ) -> None:
        self.store = store
        self.executors = ExecutorRegistry.of(executors)
        self.clock = clock
        self.policy = policy
        self.interval = interval
        self.min_gap = min_gap
        self.grace = grace_seconds
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._hurry = threading.Event()  # an exit was pushed: no gap before the next cycle
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._explanations: dict[int, Explanation] = {}
        self._waits: dict[int, DependencyWait] = {}
        self._nominated: set[int] = set()
        self._usage: LedgerHistory | None = None  # built at the first cycle
        self.inventory_interval = inventory_interval
        self._inventory_at: float | None = None  # when the inventory was last synced
        self._polled_at: float | None = None  # when every active run was last asked about
        self._exited: set[str] = set()  # runs whose exits the executors pushed since
        self._exited_lock = threading.Lock()
        self.executors.notify_on_exit(self.exited)
        self.last: CycleReport | None = None
        self.cycles = 0
        self.observers = Observers()
        self._nodes: dict[str, Node] = {}
        # Checks beside quota for each cycle (budgets: ``allot.control.metering``).
        self.admission: AdmissionSource | None = None
        # The prices in force, for ``fair_share_usage: billed`` (``allot.control.metering``).
        self.prices: Prices | None = None
        # allot's packer places single-task jobs once the workload has shares of a GPU; it
        # reads the workload from the jobs pending at each cycle.
        self._packer = default_packer()

    # ------------------------------------------------------------------ the Scheduler port

    def wake(self) -> None:
        """Run a cycle soon."""
        self._wake.set()

    def exited(self, run_id: str) -> None:
        """An executor's push: a task of ``run_id`` ended; reconcile it in a cycle now."""
        with self._exited_lock:
            self._exited.add(run_id)
        self._wake.set()
        self._hurry.set()

    def stop_run(self, run: RunRecord, *, cause: StopCause, reason: str, actor: str) -> None:
        """SIGTERM the run now; the loop SIGKILLs it when the grace period is over."""
        with self._lock:
            stop(
                self.store,
                self.executors,
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

    def dependency_wait(self, job_id: int) -> DependencyWait | None:
        """What the job waited for in the latest cycle, if its dependencies were not met."""
        return self._waits.get(job_id)

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
        self._hurry.set()
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
            self._hurry.wait(self.min_gap)

    # ------------------------------------------------------------------ one cycle

    def ledger_history(self, now: float) -> LedgerHistory:
        """A fair-share history built from the ledger now, with the stored quota settings
        (half-life, what usage counts); each thread that schedules keeps its own."""
        quotas = self.store.quotas()
        billed = quotas.fair_share_usage is FairShareUsage.BILLED and self.prices is not None
        return LedgerHistory(
            self.store,
            quotas.usage_half_life,
            now,
            usage=FairShareUsage.BILLED if billed else FairShareUsage.GPU_SECONDS,
            prices=self.prices,
        )

    def usage_history(self, now: float) -> LedgerHistory:
        """The loop's fair-share history (built at the first cycle)."""
        if self._usage is None:
            self._usage = self.ledger_history(now)
        return self._usage

    def sync_inventory(self) -> None:
        """Store what each pool's executor reports now (a pool whose executor fails keeps its
        last known nodes, and the failure is logged)."""
        now = self.clock.now()
        for pool in self.executors.pools:
            try:
                nodes = self.executors.inventory(pool)
            except (OSError, ValueError, LookupError) as err:
                log.warning("pool %s: inventory failed: %s", pool, err)
                continue
            self.store.sync_nodes(nodes, at=now, pool=pool)
        self._inventory_at = now

    def _due(self, last: float | None, every: float, now: float) -> bool:
        return last is None or now - last >= every

    def run_once(self) -> CycleReport:
        """Reconcile, decide and apply once (synchronously; tests call this directly)."""
        with self._lock:
            started = time.perf_counter()
            now = self.clock.now()
            if self._due(self._inventory_at, self.inventory_interval, now):
                self.sync_inventory()
            with self._exited_lock:
                pushed, self._exited = self._exited, set()
                self._hurry.clear()
            # Every run is asked about at start-up and every ``interval`` (the safety net for
            # a lost push); otherwise only the runs whose exits were pushed.
            if self._due(self._polled_at, self.interval, now):
                self._polled_at = now
                seen = reconcile(self.store, self.executors, self.clock, self.grace)
            else:
                seen = reconcile(self.store, self.executors, self.clock, self.grace, only=pushed)
            active = self.store.active_jobs() if seen.active is None else seen.active
            pending = self.store.pending_jobs(include_held=False)
            now = self.clock.now()
            pending, waits, ended = self._settle_dependencies(pending, now)
            plan = self._decide(active, pending, now)
            jobs = {r.id: r for r in (*active, *pending)}
            applied = apply_plan(
                plan,
                jobs=jobs,
                nodes=self._nodes,
                store=self.store,
                executors=self.executors,
                clock=self.clock,
                nominated=self._nominated,
            )
            self._explanations = dict(plan.pending)
            self._waits = waits
            self.cycles += 1
            self.last = CycleReport(
                now,
                plan,
                applied,
                len(pending),
                len(active),
                time.perf_counter() - started,
                len(waits),
                tuple(ended),
                tuple(jobs[i] for i in applied.started),
            )
            if ended:
                self.wake()  # their own dependents can now be settled too
        self.observers.publish(self.last)
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
        nodes = self.store.nodes()
        self._nodes = {n.name: n for n in nodes}
        specs = [r.spec() for r in pending]
        workload = specs + [j.spec for j in running]
        cluster = Cluster(tuple(nodes))
        norms = workload_norms(workload, cluster.flavors)
        extra = () if self.admission is None else self.admission(now, active)
        self._packer.observe(specs)
        try:
            snap = Snapshot(
                cluster,
                running,
                quotas=self.store.quotas(),
                history=self.usage_history(now).at(now, active),
                attained=attained,
                packing=self._packer if uses_packer(workload) else None,
                speed_norms=norms,
                checks=(*default_checks(True), *extra) if extra else None,
            )
        except OverAllocationError:
            log.exception("the stored runs do not fit the stored nodes; not scheduling")
            return Plan()
        ids = {r.id for r in pending}
        self._nominated &= ids | {r.id for r in active}
        snap.nominated = self._nominated & ids
        if norms is not None:
            snap.speed_reserve = reserve_by_flavor(specs, cluster.flavors, norms)
        return schedule(snap, specs, self.policy, now)
