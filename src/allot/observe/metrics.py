"""Prometheus metrics of the control plane, in one registry per server (never the global
one, so two servers in one process, as in the tests, never share counts).

What is counted where:
- each scheduling cycle (a cycle observer, ``cycle_done``): its duration, the jobs it placed
  (per flavor), the runs it preempted (per strategy), launches refused or failed, how long
  each job started for the first time waited (per queue), submission to launch of the jobs
  that found room at once (the start-latency SLO's measure), and the pending jobs per reason;
- each API request (``observe_request``, called by the API's middleware): count per method,
  handler (the route's name: ``get_job``) and status code, and latency per method and handler;
- each executor launch (``TimedExecutors``): its duration;
- at scrape time (``StateCollector``, read from the store at most every ``cache_seconds``):
  jobs by state, queue and tenant, each queue's nominal quota, use and borrowing per flavor,
  and GPUs per node and flavor, allocated and free.

Labels are bounded: queues, tenants, flavors and nodes are what an admin configured or an
executor reported, reasons and strategies are the core's fixed codes, handlers are the API's
operation names (never a path with an id in it), and status codes are HTTP's. No label holds a job
id, a user name or anything a caller typed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from allot.control.clock import SystemClock
from allot.control.observers import CycleReport
from allot.control.ports import Clock, Store, TaskLaunch
from allot.control.records import RunPhase, RunRecord
from allot.control.registry import ExecutorRegistry
from allot.core.model import MILLI_PER_GPU, NodeState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CYCLE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WAIT_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
START_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LAUNCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
UNROUTED = "unrouted"  # answered before routing (401, 429) or matching no route


class ControlMetrics:
    """The server's metrics; subscribe it to the loop (it is a cycle observer)."""

    def __init__(
        self, store: Store, clock: Clock | None = None, *, cache_seconds: float = 5.0
    ) -> None:
        self.clock = clock or SystemClock()
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.cycle_seconds = Histogram(
            "allot_scheduling_cycle_duration_seconds",
            "Wall time of one scheduling cycle (reconcile, decide, apply).",
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        self.placements = Counter(
            "allot_placements", "Jobs started by the scheduler.", ["flavor"], registry=r
        )
        self.preemptions = Counter(
            "allot_preemptions", "Runs the scheduler asked to stop.", ["strategy"], registry=r
        )
        self.launch_problems = Counter(
            "allot_launch_problems",
            "Starts that did not happen: refused (the job changed) or failed (the executor).",
            ["outcome"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "allot_job_queue_wait_seconds",
            "Submission to the decision that first started the job.",
            ["queue"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.start_latency = Histogram(
            "allot_job_start_latency_seconds",
            "Submission to launched, for jobs without dependencies that the first cycle to"
            " consider them started (the cluster had room).",
            buckets=START_BUCKETS,
            registry=r,
        )
        self._left_pending: frozenset[int] = frozenset()  # by the latest cycle
        self.requests = Counter(
            "allot_http_requests", "API requests answered.", ["method", "handler", "code"],
            registry=r,
        )  # fmt: skip
        self.request_seconds = Histogram(
            "allot_http_request_duration_seconds",
            "API request latency, to the end of the response.",
            ["method", "handler"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.launch_seconds = Histogram(
            "allot_executor_launch_duration_seconds",
            "Time an executor took to launch one run's tasks.",
            ["pool"],
            buckets=LAUNCH_BUCKETS,
            registry=r,
        )
        self.state = StateCollector(store, cache_seconds)
        r.register(self.state)

    def add(self, collector: Collector) -> None:
        """Export another collector's metrics (GPU telemetry, start-time estimates)."""
        self.registry.register(collector)

    def cycle_done(self, report: CycleReport) -> None:
        self.cycle_seconds.observe(report.seconds)
        started = set(report.applied.started)
        for start in report.plan.starts:
            if start.job_id in started:
                self.placements.labels(start.flavor).inc()
        preempted = set(report.applied.preempted)
        for preemption in report.plan.preemptions:
            if preemption.victim in preempted:
                self.preemptions.labels(str(preemption.strategy)).inc()
        if report.applied.refused:
            self.launch_problems.labels("refused").inc(len(report.applied.refused))
        if report.applied.failed:
            self.launch_problems.labels("failed").inc(len(report.applied.failed))
        done = self.clock.now()  # observers run right after the cycle's launches
        for record in report.started_jobs:
            if record.run_count == 0:  # a requeued job's wait would count its earlier runs
                wait = max(0.0, report.at - record.submit_time)
                self.queue_wait.labels(record.job.queue).observe(wait)
                # A job left pending by a cycle before waited for room: not a free start.
                if record.id not in self._left_pending and not record.job.after:
                    self.start_latency.observe(max(0.0, done - record.submit_time))
        self._left_pending = frozenset(report.plan.pending)
        self.state.cycle(report)

    def observe_request(self, method: str, handler: str, code: int, seconds: float) -> None:
        """Count one answered API request (``handler``: the matched route's name)."""
        method = method if method in METHODS else "other"
        self.requests.labels(method, handler, str(code)).inc()
        self.request_seconds.labels(method, handler).observe(seconds)

    def launch_seconds_of(self, pool: str, seconds: float) -> None:
        """Record one launch's duration (``TimedExecutors``'s callback)."""
        self.launch_seconds.labels(pool).observe(seconds)

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)


@dataclass(slots=True)
class _Latest:
    at: float = 0.0
    families: list[GaugeMetricFamily] = field(default_factory=list)


class StateCollector(Collector):
    """What the store holds now, as gauges: read at scrape time, at most every
    ``cache_seconds`` (several scrapers, or a fast one, then share one read)."""

    def __init__(self, store: Store, cache_seconds: float) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._latest = _Latest(at=-float("inf"))
        self._reasons: dict[str, int] = {}
        self._cycle: tuple[int, int, int] = (0, 0, 0)  # pending, waiting, running

    def cycle(self, report: CycleReport) -> None:
        self._reasons = dict(report.pending_by_reason)
        self._cycle = (report.pending, report.waiting, report.running)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        with self._lock:
            now = time.monotonic()
            if now - self._latest.at >= self.cache_seconds:
                self._latest = _Latest(now, list(self._read()))
            families = list(self._latest.families)
        reasons = GaugeMetricFamily(
            "allot_pending_jobs_by_reason",
            "Pending jobs the latest cycle left waiting, per reason code.",
            labels=["reason"],
        )
        for reason, count in sorted(self._reasons.items()):
            reasons.add_metric([reason], count)
        families.append(reasons)
        pending, waiting, running = self._cycle
        seen = GaugeMetricFamily(
            "allot_scheduling_cycle_jobs",
            "Jobs the latest cycle saw: pending (schedulable), waiting (on dependencies), active.",
            labels=["kind"],
        )
        for kind, count in (("pending", pending), ("waiting", waiting), ("active", running)):
            seen.add_metric([kind], count)
        families.append(seen)
        return families

    def _read(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily(
            "allot_jobs", "Jobs by state, queue and tenant.", labels=["state", "queue", "tenant"]
        )
        counts: Tally[tuple[str, str, str]] = Tally()
        used: dict[tuple[str, str], int] = {}
        allocated: dict[str, int] = {}
        for (queue, tenant, held), count in self.store.pending_counts().items():
            counts[("held" if held else "pending", queue, tenant)] += count
        for record in self.store.active_jobs():
            run = record.run
            stopping = run is not None and run.phase is RunPhase.STOPPING
            counts[
                ("stopping" if stopping else "running", record.job.queue, record.job.tenant)
            ] += 1
            if run is None:
                continue
            gpu = sum(t.gpu_milli for t in record.job.tasks)
            key = (record.job.queue, run.flavor)
            used[key] = used.get(key, 0) + gpu
            for placement, task in zip(run.placement, record.job.tasks, strict=False):
                allocated[placement.node] = allocated.get(placement.node, 0) + task.gpu_milli
        for (state, queue, tenant), count in sorted(counts.items()):
            jobs.add_metric([state, queue, tenant], count)
        yield jobs
        yield from self._queues(used)
        yield from self._nodes(allocated)

    def _queues(self, used: dict[tuple[str, str], int]) -> Iterator[GaugeMetricFamily]:
        labels = ["queue", "tenant", "flavor"]
        nominal = GaugeMetricFamily(
            "allot_queue_nominal_gpus", "A queue's nominal GPU quota.", labels=labels
        )
        held = GaugeMetricFamily(
            "allot_queue_used_gpus", "GPUs a queue's running jobs hold.", labels=labels
        )
        borrowed = GaugeMetricFamily(
            "allot_queue_borrowed_gpus",
            "GPUs a queue holds above its nominal quota (borrowed from its cohort).",
            labels=labels,
        )
        for queue in self.store.quotas().queues:
            quota = {f: q.nominal for (f, res), q in (queue.quotas or {}).items() if res == "gpu"}
            flavors = sorted(set(quota) | {f for (q, f) in used if q == queue.name})
            for flavor in flavors:
                key = [queue.name, queue.tenant, flavor]
                use = used.get((queue.name, flavor), 0)
                if flavor in quota:
                    nominal.add_metric(key, quota[flavor] / MILLI_PER_GPU)
                    borrowed.add_metric(key, max(0, use - quota[flavor]) / MILLI_PER_GPU)
                held.add_metric(key, use / MILLI_PER_GPU)
        yield from (nominal, held, borrowed)

    def _nodes(self, allocated: dict[str, int]) -> Iterator[GaugeMetricFamily]:
        labels = ["node", "flavor"]
        total = GaugeMetricFamily("allot_node_gpus", "GPUs a node has.", labels=labels)
        taken = GaugeMetricFamily(
            "allot_node_gpus_allocated", "GPUs of a node allocated to runs.", labels=labels
        )
        up = GaugeMetricFamily("allot_node_up", "1 when a node takes new work.", labels=labels)
        free: dict[str, float] = {}
        alloc: dict[str, float] = {}
        for node in self.store.nodes():
            gpus = allocated.get(node.name, 0) / MILLI_PER_GPU
            total.add_metric([node.name, node.flavor], node.gpus)
            taken.add_metric([node.name, node.flavor], gpus)
            is_up = node.state is NodeState.UP
            up.add_metric([node.name, node.flavor], 1 if is_up else 0)
            alloc[node.flavor] = alloc.get(node.flavor, 0.0) + gpus
            idle = max(0.0, node.gpus - gpus) if is_up else 0.0
            free[node.flavor] = free.get(node.flavor, 0.0) + idle
        yield from (total, taken, up)
        by_flavor = GaugeMetricFamily(
            "allot_gpus",
            "GPUs per flavor: allocated to runs, or free (unallocated on nodes that are up).",
            labels=["flavor", "status"],
        )
        for flavor in sorted(alloc):
            by_flavor.add_metric([flavor, "allocated"], alloc[flavor])
            by_flavor.add_metric([flavor, "free"], free[flavor])
        yield by_flavor


class TimedExecutors(ExecutorRegistry):
    """An executor registry that reports how long each launch took (``on_launch(pool,
    seconds)``); everything else is the registry's."""

    def __init__(self, registry: ExecutorRegistry, on_launch: Callable[[str, float], None]) -> None:
        super().__init__({pool: registry.executor(pool) for pool in registry.pools})
        self._on_launch = on_launch

    def launch(self, run: RunRecord, tasks: Sequence[TaskLaunch]) -> None:
        started = time.perf_counter()
        try:
            super().launch(run, tasks)
        finally:
            self._on_launch(run.executor, time.perf_counter() - started)


def samples(text: str) -> dict[str, list[Sample]]:
    """Parse an exposition (tests, benchmarks): samples by metric family name."""
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}
