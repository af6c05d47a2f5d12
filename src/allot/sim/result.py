"""What one simulation run produced: a record per job, the jobs that never fit, and a timeline.

The engine fills a ``SimResult``; ``metrics`` turns it into figures and ``report`` into tables,
JSON and plots. Times are seconds of virtual time from the start of the trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from allot.metering.ledger import Interval


@dataclass(slots=True)
class JobRecord:
    """The life of one job in a run. ``start`` is the first start; ``finish`` is None when the
    run ended (``--limit``, the end of the trace, or a job that can never start) before the job
    completed. A job ended by its time limit has a ``finish`` and ``timed_out`` set."""

    job_id: int
    tenant: str
    queue: str
    submit: float
    runtime: float  # the run time the trace recorded
    gpu_milli: int  # across all tasks
    num_tasks: int
    start: float | None = None
    finish: float | None = None
    preemptions: int = 0  # times the scheduler preempted the job and requeued it
    failure_restarts: int = 0  # times a node failure stopped the job and requeued it
    lost_gpu_seconds: float = 0.0  # GPU-seconds thrown away by both kinds of stop
    timed_out: bool = False  # the last run ended at the time limit, not with the work done
    predicted: float | None = None  # the runtime predicted when it arrived (--estimates predicted)


TenantSeries = list[tuple[float, int]]


@dataclass(slots=True)
class Timeline:
    """Step functions sampled at every event time: GPUs allocated and jobs waiting; and, per
    tenant, samples taken only when the value changes: milli-GPUs held and milli-GPUs asked for
    (held plus waiting)."""

    times: list[float] = field(default_factory=list)
    allocated_gpu_milli: list[int] = field(default_factory=list)
    queue_length: list[int] = field(default_factory=list)
    tenant_allocated: dict[str, TenantSeries] = field(default_factory=dict)
    tenant_demand: dict[str, TenantSeries] = field(default_factory=dict)

    def record_tenant(
        self, series: dict[str, TenantSeries], tenant: str, time: float, value: int
    ) -> None:
        """Append a per-tenant sample when ``value`` differs from the tenant's last one."""
        samples = series.setdefault(tenant, [])
        if samples and samples[-1][1] == value:
            return
        if samples and samples[-1][0] == time:
            samples[-1] = (time, value)
            return
        samples.append((time, value))

    def record(self, time: float, allocated_gpu_milli: int, queue_length: int) -> None:
        """Append a sample, replacing the last one when it has the same time."""
        if self.times and self.times[-1] == time:
            self.allocated_gpu_milli[-1] = allocated_gpu_milli
            self.queue_length[-1] = queue_length
            return
        self.times.append(time)
        self.allocated_gpu_milli.append(allocated_gpu_milli)
        self.queue_length.append(queue_length)


@dataclass(slots=True)
class NeverFit:
    """A job set aside because even the empty cluster could not place it."""

    job_id: int
    tenant: str
    reason: str


@dataclass(slots=True)
class SimResult:
    """Everything one run of one policy produced."""

    policy: str
    cluster_gpus: int
    jobs: list[JobRecord] = field(default_factory=list)
    never_fit: list[NeverFit] = field(default_factory=list)
    timeline: Timeline = field(default_factory=Timeline)
    events: int = 0  # events processed (arrivals, completions, failures, repairs)
    cycles: int = 0  # calls to schedule()
    end_time: float = 0.0
    # What every run held, in the order runs ended (the usage ledger; ``allot.sim.cost``).
    usage: list[Interval] = field(default_factory=list)
