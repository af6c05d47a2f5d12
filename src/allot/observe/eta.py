"""Start-time estimates for the live queue: every ``interval`` seconds (checked after each
scheduling cycle, and within a second when a cycle leaves a job pending that has none yet), a
background thread reads the store, runs the queue forward through the
scheduling core (``allot.observe.forecast``: the loop's own policy, quotas, fair-share history
and attained service) and keeps each pending job's estimated start, how it was derived and
when. The use cases read them through the ``StartEstimates`` port (``estimate(job_id)``).

Which jobs: pending, not held, with their dependencies met (the jobs the loop schedules). A
held job, or one waiting for a dependency, has no estimate. Estimates are as old as the
latest refresh; the API says when that was. A refresh that fails is logged and the previous
estimates are kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from allot.control.estimates import StartEstimate
from allot.control.loop import SchedulingLoop
from allot.control.observers import CycleReport
from allot.control.reasons import wall_time
from allot.control.records import RunPhase
from allot.control.usage_history import LedgerHistory
from allot.core.model import Cluster, RunningJob
from allot.observe.forecast import DEFAULT_HORIZON, DEFAULT_MAX_CYCLES, Outlook, forecast

log = logging.getLogger("allot.observe")
DEFAULT_INTERVAL = 15.0
DEFAULT_BUDGET = 2.0  # wall seconds one refresh may run forward (it shares the GIL with the API)
NEW_JOB_GAP = 1.0  # a job without an estimate yet gets one this soon after a cycle sees it


class StartTimeEstimator(Collector):
    """Keeps estimates for the loop's queue (a cycle observer and a metrics collector)."""

    def __init__(
        self,
        loop: SchedulingLoop,
        *,
        interval: float = DEFAULT_INTERVAL,
        horizon: float = DEFAULT_HORIZON,
        max_cycles: int = DEFAULT_MAX_CYCLES,
        budget_seconds: float = DEFAULT_BUDGET,
    ) -> None:
        self.loop = loop
        self.budget_seconds = budget_seconds
        self.store = loop.store
        self.clock = loop.clock
        self.interval = interval
        self.horizon = horizon
        self.max_cycles = max_cycles
        self._estimates: dict[int, StartEstimate] = {}
        self._history: LedgerHistory | None = None
        self._refreshed_at: float | None = None  # clock time of the latest refresh
        self._seconds = 0.0  # wall time the latest refresh took
        self._due = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ the StartEstimates port

    def estimate(self, job_id: int) -> StartEstimate | None:
        return self._estimates.get(job_id)

    # ------------------------------------------------------------------ refreshing

    def cycle_done(self, report: CycleReport) -> None:
        last = self._refreshed_at
        since = float("inf") if last is None else report.at - last
        unestimated = any(job_id not in self._estimates for job_id in report.plan.pending)
        if since >= self.interval or (since >= NEW_JOB_GAP and unestimated):
            self._due.set()

    def start(self) -> None:
        """Refresh in a background thread whenever a cycle finds the estimates due."""
        self._thread = threading.Thread(target=self._run, name="allot-eta", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        self._closing.set()
        self._due.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._closing.is_set():
            self._due.wait()
            if self._closing.is_set():
                return
            try:
                self.refresh()
            except Exception:  # the next refresh retries; the old estimates stay meanwhile
                log.exception("start-time estimates: refresh failed")

    def refresh(self) -> Outlook:
        """Run the queue forward now and keep the estimates (synchronous; tests call it)."""
        self._due.clear()  # a cycle that asks again while this runs gets another refresh
        started = time.perf_counter()
        now = self.clock.now()
        quotas = self.store.quotas()
        if self._history is None:
            self._history = self.loop.ledger_history(now)
        active = self.store.active_jobs()
        pending = [
            r
            for r in self.store.pending_jobs(include_held=False)
            if self.loop.dependency_wait(r.id) is None
        ]
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
        outlook = forecast(
            Cluster(tuple(self.store.nodes())),
            running,
            [r.spec() for r in pending],
            self.loop.policy,
            now,
            quotas=quotas,
            history=self._history.at(now, active),
            attained={r.id: r.attained_service for r in pending if r.attained_service > 0},
            horizon=self.horizon,
            max_cycles=self.max_cycles,
            budget=lambda: time.perf_counter() - started > self.budget_seconds,
        )
        self._estimates = {
            job_id: StartEstimate(start, now, self._basis(outlook, start))
            for job_id, start in outlook.starts.items()
        }
        self._refreshed_at = now
        self._seconds = time.perf_counter() - started
        return outlook

    def _basis(self, outlook: Outlook, start: float | None) -> str:
        policy = self.loop.policy.name
        if start is not None:
            return (
                f"the queue run forward through the scheduler (policy {policy}): running jobs"
                " end at their runtime estimate, else their time limit; jobs submitted later"
                " are not counted"
            )
        if outlook.truncated:
            reached = wall_time(outlook.until)
            return (
                f"no start found up to {reached}, as far as the queue was run forward (at most"
                f" {self.horizon / 86400:g} days, {self.max_cycles} cycles or"
                f" {self.budget_seconds:g} s of work)"
            )
        if outlook.open_ended:
            return (
                f"no estimate: {outlook.open_ended} running job(s) have neither a runtime"
                " estimate nor a time limit, so when their GPUs free up is unknown"
            )
        return "no estimate: the queue run forward never starts it"

    # ------------------------------------------------------------------ metrics

    def collect(self) -> Iterable[GaugeMetricFamily]:
        estimates = list(self._estimates.values())
        known = sum(1 for e in estimates if e.start is not None)
        jobs = GaugeMetricFamily(
            "allot_eta_pending_jobs",
            "Pending jobs at the latest estimate refresh, with and without an estimate.",
            labels=["estimate"],
        )
        jobs.add_metric(["known"], known)
        jobs.add_metric(["unknown"], len(estimates) - known)
        seconds = GaugeMetricFamily(
            "allot_eta_refresh_duration_seconds",
            "Wall time of the latest refresh of start-time estimates.",
        )
        seconds.add_metric([], self._seconds)
        return [jobs, seconds]
