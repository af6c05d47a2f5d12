"""The discrete-event simulator: replays a workload on a cluster with a virtual clock.

Events are job arrivals (from the trace), job completions (start + remaining work, or start +
time limit when that comes first), preempted jobs stopping (at the end of their grace period),
and, when a failure model is given, node failures and repairs. All events at one instant are
applied, then the same ``schedule()`` the live control plane uses is called once, and its Plan
is applied to the simulator's snapshot.

Work model: a job needs ``duration`` seconds of running. A preempted job keeps running through
its grace period; a checkpointable one then resumes later from its last checkpoint
(``Checkpointing``: one every ``period`` seconds of a run, 0 for one at the stop itself) and
pays ``restart_overhead`` seconds to reload it; any other job restarts from scratch. Lost
GPU-seconds count the work since the last checkpoint plus the reload (checkpointable) or the
whole run (not). A job on a failed node stops at once
and restarts from where its run began (a failure restart, counted apart from preemptions). A
job with a ``time_limit`` shorter than the work it has left is ended at ``start + time_limit``
and not requeued, as Slurm does (``TIMEOUT``); its record is marked ``timed_out``. Attained
service (GPU-seconds over all runs) and the tenants' decayed usage are kept up to date for the
policies that order by them; decayed usage counts GPU-seconds, or with the quota file's
``fair_share_usage: billed`` the money billed under ``billing`` (``allot.metering.billing``),
advanced piecewise between price changes so it equals what the live loop derives from its
ledger.

End: the run stops when every arrival is in and nothing is pending or running; or, with jobs
still pending, once every arrival is in, nothing runs, no node is down, and the cycle at that
instant started nothing. From then on nothing can change what the scheduler sees except the
clock and further failures, so the jobs left pending can never start; they stay unfinished
(``finish`` is None). Without this rule a failure model would keep the run going for ever.
Likewise once every arrival is in and ``MAX_IDLE_WAKES`` cycles asked for by ``on_plan`` (a
budget renewing, or running out) passed with no job completing: a job no budget period can
pay for would otherwise wait, or be started and preempted, period after period for ever.

Speed: a job's ``duration`` is its run time at speed 1.0; on a flavor where it runs at speed
``s`` (``JobSpec.speeds``) it needs ``duration / s`` seconds, and a checkpointed job keeps
``ran * s`` of its work. With ``throughput`` the snapshot ranks flavors by each job's
comparative advantage against the workload's mean speeds (``allot.core.placement.throughput``);
``packing`` places single-task jobs with that packer (``allot.core.placement.packing``; None:
the bucket walk). By default, as in the live loop, allot's packer places them once a job
asking for a share of a GPU has arrived, reading the workload from the jobs arrived so far.
Estimates: with a ``RuntimePredictor`` (``--estimates predicted``), every job gets the estimate
predicted when it arrives, learned from the jobs completed before (``allot.sim.predict``); a
job the predictor knew nothing of then is predicted again at each completion while it waits.

Deterministic: the same workload, cluster, quotas, policy and seed give the same result. The
engine does no I/O and reads no clock; a progress callback lets a caller draw a bar.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Literal

from allot.core.checks import AdmissionCheck
from allot.core.cycle import schedule
from allot.core.explain import Reason
from allot.core.model import Cluster, JobId, JobSpec, NodeState, RunningJob
from allot.core.pending_jobs import PendingJobs
from allot.core.placement.diagnose import screen
from allot.core.placement.packing import AllotPacker, Packer, default_packer, uses_packer
from allot.core.placement.throughput import reserve_by_flavor, speed_norms
from allot.core.plan import Plan
from allot.core.policy import Criterion, Policy
from allot.core.quota.config import QuotaConfig
from allot.core.quota.fair_share import FairShareUsage, UserKey
from allot.core.snapshot import Snapshot
from allot.metering.billing import billed_rate
from allot.metering.ledger import Interval
from allot.metering.prices import PriceCatalog
from allot.sim.cluster import FailureModel
from allot.sim.predict import RuntimePredictor
from allot.sim.result import JobRecord, NeverFit, SimResult
from allot.sim.workload import TraceJob

Progress = Callable[[int, int], None]
AdmissionSource = Callable[[float, Snapshot], Sequence[AdmissionCheck]]


class SimulationError(ValueError):
    """The simulation cannot run as asked (e.g. no job of the trace fits the cluster)."""


class _Kind(IntEnum):
    # Completions sort before stops and failures at the same instant: a job that ends exactly
    # when it would be stopped has finished.
    COMPLETE = 0
    STOP = 1
    FAIL = 2
    REPAIR = 3
    WAKE = 4  # a cycle asked for by ``on_plan`` (a budget renews then)


ESTIMATES = ("none", "predicted", "exact", "keep")
MAX_IDLE_WAKES = 64


def with_estimates(workload: Sequence[TraceJob], mode: str) -> list[TraceJob]:
    """Give every job the runtime estimate the scheduler sees: ``none`` (what a live system
    has: no estimate, only the time limits the trace carries), ``predicted`` (none here; the
    simulation predicts each job when it arrives, see ``Simulation(predict=...)``), ``exact``
    (the trace's duration: an upper bound no real scheduler has), or ``keep`` (whatever the
    trace carried)."""
    if mode == "keep":
        return list(workload)
    if mode == "exact":
        return [replace(j, spec=replace(j.spec, runtime_estimate=j.duration)) for j in workload]
    if mode in ("none", "predicted"):
        return [replace(j, spec=replace(j.spec, runtime_estimate=None)) for j in workload]
    raise SimulationError(f"estimates: unknown mode {mode!r}; known: {', '.join(ESTIMATES)}")


@dataclass(frozen=True, slots=True)
class Checkpointing:
    """How a checkpointable job resumes after a preemption: from its last checkpoint, taken
    every ``period`` seconds of a run (0: at the stop itself, in its grace period), after
    ``restart_overhead`` seconds of reloading."""

    period: float = 1_800.0
    restart_overhead: float = 60.0

    def __post_init__(self) -> None:
        for name in ("period", "restart_overhead"):
            if not getattr(self, name) >= 0:
                raise SimulationError(f"{name}: must be >= 0 seconds, got {getattr(self, name)}")

    def kept(self, ran: float) -> float:
        """The work of a run of ``ran`` seconds that its last checkpoint keeps."""
        if self.period <= 0:
            return ran
        return (ran // self.period) * self.period


def check_some_job_fits(
    cluster: Cluster,
    workload: Sequence[TraceJob],
    *,
    cluster_file: str | None = None,
    trace_file: str | None = None,
) -> None:
    """Raise ``SimulationError`` when not a single job of ``workload`` could ever run on
    ``cluster`` (almost always the wrong cluster file for the trace). The message names the
    files when given (``cluster_file``, ``trace_file``) and the cluster file's field that stops
    the first job: ``node_groups[*].flavor``, ``.gpus``, ``.cpu``, ``.memory_gib`` or
    ``.count``."""
    snap = Snapshot(cluster)
    if not workload or any(screen(snap, j.spec) is None for j in workload):
        return
    first = workload[0].spec
    reason = screen(snap, first)
    detail = reason.message() if reason else ""
    where = f"{cluster_file}: cluster" if cluster_file else "cluster"
    trace = f"the trace {trace_file}" if trace_file else "the trace"
    field, rule = _blocking_field(cluster, first)
    raise SimulationError(
        f"{where} {cluster.name!r} cannot fit any job of {trace}: field {field!r}: {rule} "
        f"(e.g. job {first.id}: {detail})"
    )


def _blocking_field(cluster: Cluster, spec: JobSpec) -> tuple[str, str]:
    """The cluster file's field that keeps ``spec`` off every node, and why."""
    have = sorted({n.flavor for n in cluster.nodes})
    flavors = [f for f in spec.flavors if f in have] if spec.flavors else have
    if not flavors:
        return (
            "node_groups[*].flavor",
            f"the jobs ask for flavor {' or '.join(spec.flavors)}, which no node group has "
            f"(flavors: {', '.join(have) or 'none'})",
        )
    nodes = [n for n in cluster.nodes if n.flavor in flavors]
    task = max(spec.tasks, key=lambda t: (t.gpu_milli, t.cpu_milli, t.memory_mib))
    largest = (
        ("gpus", task.gpu_milli / 1000, max(n.gpus for n in nodes), "GPUs"),
        ("cpu", task.cpu_milli / 1000, max(n.cpu_milli for n in nodes) / 1000, "CPUs"),
        ("memory_gib", task.memory_mib / 1024, max(n.memory_mib for n in nodes) / 1024, "GiB"),
    )
    for name, asked, most, unit in largest:
        if asked > most:
            return (
                f"node_groups[*].{name}",
                f"a task asks for {asked:g} {unit} and the largest "
                f"{' or '.join(flavors)} node has {most:g}",
            )
    return (
        "node_groups[*].count",
        f"the {' or '.join(flavors)} nodes together cannot hold all {len(spec.tasks)} tasks",
    )


class Simulation:
    """One replay of ``workload`` on ``cluster`` under ``policy``."""

    def __init__(
        self,
        cluster: Cluster,
        workload: Sequence[TraceJob],
        policy: Policy,
        *,
        quotas: QuotaConfig | None = None,
        failures: FailureModel | None = None,
        seed: int = 0,
        progress: Progress | None = None,
        packing: Packer | Literal["default"] | None = "default",
        throughput: bool = False,
        checkpointing: Checkpointing | None = None,
        predictor: RuntimePredictor | None = None,
        admission: AdmissionSource | None = None,
        on_plan: Callable[[float, Plan], float | None] | None = None,
        billing: PriceCatalog | None = None,
    ) -> None:
        self.cluster = cluster
        self.checkpointing = checkpointing or Checkpointing()
        self.predictor = predictor
        self.unpredicted: set[JobId] = set()  # pending jobs the predictor knew nothing of
        self.policy = policy
        self.failures = failures
        self.rng = random.Random(seed)
        self.progress = progress
        self.arrivals = sorted(workload, key=lambda j: (j.spec.submit_time, j.spec.id))
        self.remaining: dict[JobId, float] = {j.spec.id: j.duration for j in self.arrivals}
        if len(self.remaining) != len(self.arrivals):
            raise SimulationError("workload: job ids must be unique")
        norms = (
            speed_norms((j.spec for j in self.arrivals), cluster.flavors) if throughput else None
        )
        # The default packer turns on at the first share of a GPU (``_arrive``).
        self.packer = default_packer() if isinstance(packing, str) else packing
        self.observer = self.packer if isinstance(self.packer, AllotPacker) else None
        self.snapshot = Snapshot(cluster, quotas=quotas, packing=self.packer, speed_norms=norms)
        if isinstance(packing, str):
            self.snapshot.packing = None
        self.half_life = quotas.usage_half_life if quotas else 7 * 24 * 3600.0
        self.track_usage = Criterion.USAGE in policy.order
        # The prices billed usage counts by; None counts GPU-seconds.
        self.billing: PriceCatalog | None = None
        if quotas is not None and quotas.fair_share_usage is FairShareUsage.BILLED:
            if billing is None:
                raise SimulationError("fair_share_usage: billed needs prices (billing=...)")
            self.billing = billing
        # Kept between cycles with a journal of what changed: a cycle's bookkeeping follows
        # what changed, not the length of the queue (``allot.core.pending_jobs``).
        self.pending = PendingJobs()
        self.pending_gpu: dict[str, int] = {}  # milli-GPU waiting, per tenant
        self.records: dict[JobId, JobRecord] = {}
        self.events: list[tuple[float, int, int, int, int]] = []  # time, kind, seq, id, token
        self.seq = 0
        self.token: dict[JobId, int] = {}  # bumps when a run ends early; stale events skip
        self.limited: set[JobId] = set()  # running jobs whose run ends at their time limit
        self.down: set[str] = set()  # nodes failed and not yet repaired
        self.result = SimResult(policy.name, cluster.total_gpus)
        # Checks beside quota per cycle (budgets, ``allot.sim.cost``), and who sees each plan.
        self.admission = admission
        self.on_plan = on_plan
        self.base_checks = self.snapshot.checks
        self.wake_at: float | None = None  # the cycle ``on_plan`` asked for
        self.idle_wakes = 0  # such cycles since a job last completed or arrived

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
        arrivals, events, snap = self.arrivals, self.events, self.snapshot
        while a < total or events:
            now = min(
                arrivals[a].spec.submit_time if a < total else float("inf"),
                events[0][0] if events else float("inf"),
            )
            if a >= total and not self.pending and not snap.running:
                break  # only failure/repair events remain
            if self.track_usage:
                self._advance_usage(now)
            while a < total and arrivals[a].spec.submit_time == now:
                self._arrive(arrivals[a].spec)
                a += 1
                self.idle_wakes = 0
            woke = False  # a cycle was asked for: it runs even with nothing pending
            while events and events[0][0] == now:
                _, kind, _, subject, token = heapq.heappop(events)
                woke = woke or kind == _Kind.WAKE
                completed = self._handle(_Kind(kind), subject, token, now)
                done += completed
                if completed:
                    self.idle_wakes = 0
                elif kind == _Kind.WAKE:
                    self.idle_wakes += 1
            if a >= total and self.idle_wakes > MAX_IDLE_WAKES:
                break  # only budget periods pass, and nothing completes any more
            if self.pending or woke:
                self._cycle(now)
            self._sample(now)
            if self.progress is not None and self.result.events % 2048 == 0:
                self.progress(done + len(self.result.never_fit), total)
            if a >= total and not snap.running and not self.down and self.wake_at is None:
                # Nothing runs (so this instant's cycle started nothing), every node is up and
                # no job is still to come: what is pending now can never start.
                break
        if self.progress is not None:
            self.progress(total, total)
        for job in snap.running.values():  # still running when the replay stopped
            self._meter(job, max(self.result.end_time, job.start_time))
        self.result.jobs = list(self.records.values())
        return self.result

    def _sample(self, now: float) -> None:
        snap, timeline = self.snapshot, self.result.timeline
        timeline.record(now, snap.allocated_gpu_milli, len(self.pending))
        for tenant in set(snap.tenant_gpu_milli) | set(self.pending_gpu):
            held = snap.tenant_gpu_milli.get(tenant, 0)
            timeline.record_tenant(timeline.tenant_allocated, tenant, now, held)
            asked = held + self.pending_gpu.get(tenant, 0)
            timeline.record_tenant(timeline.tenant_demand, tenant, now, asked)
        self.result.end_time = now

    def _advance_usage(self, now: float) -> None:
        snap = self.snapshot
        if self.billing is not None:
            # Rates change where a price does: advance one stretch of constant prices at a time.
            for a, b in self.billing.segments(snap.history.as_of, now):
                rates, user_rates = self._billed_rates(self.billing, a)
                snap.history = snap.history.advanced(b, rates, user_rates, self.half_life)
            return
        tenants = {t: m / 1000 for t, m in snap.tenant_gpu_milli.items() if m}
        users = {u: m / 1000 for u, m in snap.user_gpu_milli.items() if m}
        snap.history = snap.history.advanced(now, tenants, users, self.half_life)

    def _billed_rates(
        self, prices: PriceCatalog, at: float
    ) -> tuple[dict[str, float], dict[UserKey, float]]:
        """Money per second each tenant and user is billed at ``at`` for what runs now."""
        tenants: dict[str, float] = {}
        users: dict[UserKey, float] = {}
        for job in self.snapshot.running.values():
            spec, total = job.spec, job.spec.total
            rate = billed_rate(
                prices, job.flavor, total.gpu_milli, total.cpu_milli, total.memory_mib, at
            )
            if rate > 0.0:
                tenants[spec.tenant] = tenants.get(spec.tenant, 0.0) + rate
                key = (spec.tenant, spec.user)
                users[key] = users.get(key, 0.0) + rate
        return tenants, users

    def _enqueue(self, spec: JobSpec) -> None:
        self.pending.put(spec)
        self.pending_gpu[spec.tenant] = self.pending_gpu.get(spec.tenant, 0) + spec.total.gpu_milli

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
            self.remaining[spec.id],
            spec.total.gpu_milli,
            len(spec.tasks),
        )
        if self.observer is not None:
            self.observer.observe((spec,))
            if self.snapshot.packing is None and uses_packer((spec,)):
                self.snapshot.packing = self.observer
        if self.predictor is not None:
            spec = self._predicted(spec)
        self._enqueue(spec)

    def _predicted(self, spec: JobSpec) -> JobSpec:
        """``spec`` with the runtime predicted now, if there is one; a job left without one
        is predicted again whenever a job completes, until it has one or starts."""
        assert self.predictor is not None
        predicted = self.predictor.predict(spec)
        if predicted is None:
            self.unpredicted.add(spec.id)
            return spec
        self.unpredicted.discard(spec.id)
        self.records[spec.id].predicted = predicted
        return replace(spec, runtime_estimate=predicted)

    def _handle(self, kind: _Kind, subject: int, token: int, now: float) -> int:
        """Apply one event; returns 1 when a job completed."""
        self.result.events += 1
        if kind is _Kind.WAKE:
            if self.wake_at == now:
                self.wake_at = None
            return 0
        if kind is _Kind.COMPLETE or kind is _Kind.STOP:
            if self.token.get(subject) != token or subject not in self.snapshot.running:
                return 0  # the run this event belonged to already ended
            if kind is _Kind.STOP:
                self._stop(self.snapshot.running[subject], now, failed=False)
                return 0
            job = self.snapshot.running[subject]
            self._meter(job, now)
            self.snapshot.finish(subject)
            record = self.records[subject]
            record.finish = now
            if subject in self.limited:
                self.limited.discard(subject)
                record.timed_out = True
            if self.predictor is not None:
                worked = record.runtime if not record.timed_out else job.spec.time_limit
                self.predictor.learn(job.spec, worked or record.runtime)
                for job_id in sorted(self.unpredicted):
                    waiting = self.pending.get(job_id)
                    if waiting is None:
                        self.unpredicted.discard(job_id)
                    else:
                        self.pending.put(self._predicted(waiting))
            return 1
        assert self.failures is not None
        name = self.cluster.nodes[subject].name
        if kind is _Kind.FAIL:
            self.down.add(name)
            self._fail_node(name, now)
            repair = now + self.rng.expovariate(1 / self.failures.mttr_seconds)
            self._push(repair, _Kind.REPAIR, subject)
        else:
            self.down.discard(name)
            self.snapshot.set_node_state(name, NodeState.UP)
            failure = now + self.rng.expovariate(1 / self.failures.mtbf_seconds)
            self._push(failure, _Kind.FAIL, subject)
        return 0

    def _fail_node(self, name: str, now: float) -> None:
        self.snapshot.set_node_state(name, NodeState.DOWN)
        hit = [
            job
            for job in self.snapshot.running.values()
            if any(p.node == name for p in job.placement)
        ]
        for job in sorted(hit, key=lambda j: j.spec.id):
            self._stop(job, now, failed=True)

    def _stop(self, job: RunningJob, now: float, *, failed: bool) -> None:
        """Stop a running job and requeue it: a preemption at the end of its grace period, or
        a node failure (``failed``). After a preemption a checkpointable job keeps the work it
        did; otherwise the run is lost."""
        spec, job_id = job.spec, job.spec.id
        self._meter(job, now)
        self.snapshot.finish(job_id)
        self.token[job_id] = self.token.get(job_id, 0) + 1
        self.limited.discard(job_id)
        ran = now - job.start_time
        gpus = spec.total.gpu_milli / 1000
        self.snapshot.attained[job_id] = job.attained_service + gpus * ran
        record = self.records[job_id]
        if failed:
            record.failure_restarts += 1
        else:
            record.preemptions += 1
        if not failed and spec.checkpointable:
            # Work is in seconds at speed 1.0; the checkpoint keeps what ran until it was taken.
            kept = self.checkpointing.kept(ran)
            overhead = self.checkpointing.restart_overhead
            done = kept * spec.speed_on(job.flavor)
            self.remaining[job_id] = max(0.0, self.remaining[job_id] - done) + overhead
            record.lost_gpu_seconds += (ran - kept + overhead) * gpus
        else:
            record.lost_gpu_seconds += ran * gpus
        self._enqueue(spec)

    def _meter(self, job: RunningJob, now: float) -> None:
        """Append the run that ends now to the usage ledger."""
        spec, total = job.spec, job.spec.total
        self.result.usage.append(
            Interval(
                spec.id,
                spec.tenant,
                spec.user,
                spec.queue,
                job.flavor,
                job.start_time,
                now,
                total.gpu_milli,
                total.cpu_milli,
                total.memory_mib,
            )
        )

    def _cycle(self, now: float) -> None:
        self.result.cycles += 1
        snap = self.snapshot
        if snap.speed_norms is not None:
            snap.speed_reserve = reserve_by_flavor(self.pending, snap.flavors, snap.speed_norms)
        if self.admission is not None:
            snap.checks = (*self.base_checks, *self.admission(now, snap))
        plan = schedule(snap, self.pending, self.policy, now)
        if self.on_plan is not None:
            # ``on_plan`` sees the plan applied, so it reads the explanations as they stand now,
            # before the starts below change the pending jobs the plan was made from.
            plan = replace(plan, pending=dict(plan.pending))
        for preemption in plan.preemptions:
            if preemption.preemptor is not None:
                snap.nominated.add(preemption.preemptor)
            snap.mark_stopping(preemption.victim, preemption.stop_by)
            self._push(
                preemption.stop_by, _Kind.STOP, preemption.victim, self.token[preemption.victim]
            )
        for start in plan.starts:
            spec = self.pending.pop(start.job_id)
            snap.nominated.discard(start.job_id)
            self.pending_gpu[spec.tenant] -= spec.total.gpu_milli
            attained = snap.attained.pop(start.job_id, 0.0)
            snap.start(RunningJob(spec, now, start.placement, start.flavor, attained))
            record = self.records[start.job_id]
            if record.start is None:
                record.start = now
            token = self.token.setdefault(start.job_id, 0)
            run_for = self.remaining[start.job_id] / spec.speed_on(start.flavor)
            if spec.time_limit is not None and spec.time_limit < run_for:
                run_for = spec.time_limit  # Slurm ends the job at its limit: TIMEOUT
                self.limited.add(start.job_id)
            self._push(now + run_for, _Kind.COMPLETE, start.job_id, token)
        if self.on_plan is not None:  # it sees the plan applied: what runs now, at what rate
            wake = self.on_plan(now, plan)
            if wake is not None and wake > now and (self.wake_at is None or wake < self.wake_at):
                self.wake_at = wake
                self._push(wake, _Kind.WAKE, 0)
