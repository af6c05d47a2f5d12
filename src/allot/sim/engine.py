"""The discrete-event simulator: replays a workload on a cluster with a virtual clock.

Events are job arrivals (from the trace), job completions (start + the trace's duration), and,
when a failure model is given, node failures and repairs. All events at one instant are
applied, then the same ``schedule()`` the live control plane uses is called once, and its
Plan is applied to the simulator's snapshot. A job stopped by a node failure loses the work
since its start and is requeued with its original submit time.

Deterministic: the same workload, cluster, policy and seed give the same result. The engine
does no I/O and reads no clock; a progress callback lets a caller draw a bar.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from enum import IntEnum

from allot.core.cycle import schedule
from allot.core.explain import Reason
from allot.core.model import Cluster, JobId, JobSpec, NodeState, RunningJob
from allot.core.placement.diagnose import screen
from allot.core.policy import Policy
from allot.core.snapshot import Snapshot
from allot.sim.cluster import FailureModel
from allot.sim.result import JobRecord, NeverFit, SimResult
from allot.sim.workload import TraceJob

Progress = Callable[[int, int], None]


class SimulationError(ValueError):
    """The simulation cannot run as asked (e.g. no job of the trace fits the cluster)."""


class _Kind(IntEnum):
    # Completions sort before failures at the same instant: a job that ends exactly when its
    # node fails has finished.
    COMPLETE = 0
    FAIL = 1
    REPAIR = 2


def with_estimates(workload: Sequence[TraceJob], mode: str) -> list[TraceJob]:
    """Give every job a runtime estimate: ``exact`` (the trace's duration, the usual
    assumption when a trace has no user estimates), ``none`` (no estimate; backfill then has
    nothing to plan with), or ``keep`` (whatever the trace carried)."""
    if mode == "keep":
        return list(workload)
    if mode == "exact":
        return [replace(j, spec=replace(j.spec, runtime_estimate=j.duration)) for j in workload]
    if mode == "none":
        return [replace(j, spec=replace(j.spec, runtime_estimate=None)) for j in workload]
    raise SimulationError(f"estimates: unknown mode {mode!r}; known: exact, none, keep")


def check_some_job_fits(cluster: Cluster, workload: Sequence[TraceJob]) -> None:
    """Raise ``SimulationError`` when not a single job of ``workload`` could ever run on
    ``cluster`` (almost always the wrong cluster file for the trace)."""
    snap = Snapshot(cluster)
    if not workload or any(screen(snap, j.spec) is None for j in workload):
        return
    first = workload[0].spec
    reason = screen(snap, first)
    detail = reason.message() if reason else ""
    raise SimulationError(
        f"cluster {cluster.name!r} cannot fit any job of the trace (e.g. job {first.id}: {detail})"
    )


class Simulation:
    """One replay of ``workload`` on ``cluster`` under ``policy``."""

    def __init__(
        self,
        cluster: Cluster,
        workload: Sequence[TraceJob],
        policy: Policy,
        *,
        failures: FailureModel | None = None,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> None:
        self.cluster = cluster
        self.policy = policy
        self.failures = failures
        self.rng = random.Random(seed)
        self.progress = progress
        self.arrivals = sorted(workload, key=lambda j: (j.spec.submit_time, j.spec.id))
        self.duration: dict[JobId, float] = {j.spec.id: j.duration for j in self.arrivals}
        if len(self.duration) != len(self.arrivals):
            raise SimulationError("workload: job ids must be unique")
        self.snapshot = Snapshot(cluster)
        self.pending: dict[JobId, JobSpec] = {}
        self.records: dict[JobId, JobRecord] = {}
        self.events: list[tuple[float, int, int, int, int]] = []  # time, kind, seq, id, token
        self.seq = 0
        self.token: dict[JobId, int] = {}  # bumps when a run is cut short; stale completions skip
        self.result = SimResult(policy.name, cluster.total_gpus)

    def _push(self, time: float, kind: _Kind, subject: int, token: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.events, (time, kind, self.seq, subject, token))

    def run(self) -> SimResult:
        """Replay the whole workload and return what happened."""
        check_some_job_fits(self.cluster, self.arrivals)
        if self.failures is not None:
            for i in range(len(self.cluster.nodes)):
                self._push(self.rng.expovariate(1 / self.failures.mtbf_seconds), _Kind.FAIL, i)
        total, done, a = len(self.arrivals), 0, 0
        arrivals, events = self.arrivals, self.events
        while a < total or events:
            now = min(
                arrivals[a].spec.submit_time if a < total else float("inf"),
                events[0][0] if events else float("inf"),
            )
            if a >= total and not self.pending and not self.snapshot.running:
                break  # only failure/repair events remain
            while a < total and arrivals[a].spec.submit_time == now:
                self._arrive(arrivals[a].spec)
                a += 1
            while events and events[0][0] == now:
                _, kind, _, subject, token = heapq.heappop(events)
                done += self._handle(_Kind(kind), subject, token, now)
            if self.pending:
                self._cycle(now)
            self.result.timeline.record(now, self.snapshot.allocated_gpu_milli, len(self.pending))
            self.result.end_time = now
            if self.progress is not None and self.result.events % 2048 == 0:
                self.progress(done + len(self.result.never_fit), total)
        if self.progress is not None:
            self.progress(total, total)
        self.result.jobs = list(self.records.values())
        return self.result

    def _arrive(self, spec: JobSpec) -> None:
        self.result.events += 1
        reason = screen(self.snapshot, spec)
        if reason is not None and reason.reason is not Reason.NODES_UNAVAILABLE:
            self.result.never_fit.append(NeverFit(spec.id, spec.tenant, reason.message()))
            return
        self.records[spec.id] = JobRecord(
            spec.id,
            spec.tenant,
            spec.queue,
            spec.submit_time,
            self.duration[spec.id],
            spec.total.gpu_milli,
            len(spec.tasks),
        )
        self.pending[spec.id] = spec

    def _handle(self, kind: _Kind, subject: int, token: int, now: float) -> int:
        """Apply one event; returns 1 when a job completed."""
        self.result.events += 1
        if kind is _Kind.COMPLETE:
            if self.token.get(subject) != token:
                return 0  # the run this completion belonged to was cut short
            self.snapshot.finish(subject)
            self.records[subject].finish = now
            return 1
        assert self.failures is not None
        name = self.cluster.nodes[subject].name
        if kind is _Kind.FAIL:
            self._fail_node(name, now)
            self._push(
                now + self.rng.expovariate(1 / self.failures.mttr_seconds), _Kind.REPAIR, subject
            )
        else:
            self.snapshot.set_node_state(name, NodeState.UP)
            self._push(
                now + self.rng.expovariate(1 / self.failures.mtbf_seconds), _Kind.FAIL, subject
            )
        return 0

    def _fail_node(self, name: str, now: float) -> None:
        self.snapshot.set_node_state(name, NodeState.DOWN)
        hit = [
            job
            for job in self.snapshot.running.values()
            if any(p.node == name for p in job.placement)
        ]
        for job in hit:
            self._stop(job, now)

    def _stop(self, job: RunningJob, now: float) -> None:
        """Stop a running job, count the lost work and requeue it."""
        job_id = job.spec.id
        self.snapshot.finish(job_id)
        self.token[job_id] = self.token.get(job_id, 0) + 1
        record = self.records[job_id]
        record.preemptions += 1
        record.lost_gpu_seconds += (now - job.start_time) * job.spec.total.gpu_milli / 1000
        self.pending[job_id] = job.spec

    def _cycle(self, now: float) -> None:
        self.result.cycles += 1
        plan = schedule(self.snapshot, list(self.pending.values()), self.policy, now)
        for start in plan.starts:
            spec = self.pending.pop(start.job_id)
            self.snapshot.start(RunningJob(spec, now, start.placement, start.flavor))
            record = self.records[start.job_id]
            if record.start is None:
                record.start = now
            token = self.token.setdefault(start.job_id, 0)
            self._push(now + self.duration[start.job_id], _Kind.COMPLETE, start.job_id, token)
