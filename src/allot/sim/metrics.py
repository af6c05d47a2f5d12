"""The figures that judge one simulation run: completion times, waits, slowdown, use and fairness.

``compute_metrics`` turns a ``SimResult`` into a frozen ``Metrics``; ``Metrics.to_dict`` gives a
JSON-ready form with the headline figures first. Every figure that has nothing to measure (no
completed jobs, an empty timeline, one tenant's worth of nothing) is ``None``, never NaN.

Definitions (times in seconds of virtual time; a job is *started* when ``start`` is set and
*completed* when ``finish`` is set):

- ``jobs``: job records in the run; ``completed``: records with a finish, including the jobs
  ended by their time limit; ``timed_out``: those of them ended by their time limit (Slurm's
  ``TIMEOUT``: the run stopped at ``start + time_limit`` with work left, and the job was not
  requeued); ``unfinished``: ``jobs - completed`` (never started, still running or requeued
  when the run ended, or left pending by a run that ended because they could never start);
  ``never_fit``: jobs set aside because even the empty cluster could not place them (they are
  not job records).
- ``preemptions``: the sum over records of the times the scheduler stopped a job to make room
  and requeued it; ``failure_restarts``: the sum of the times a node failure stopped a job and
  requeued it (not preemptions); ``lost_gpu_hours``: the sum of ``lost_gpu_seconds`` over
  records, divided by 3600: work thrown away by both kinds of stop (a failed run, and a
  preempted run of a job that cannot checkpoint).
- JCT (job completion time) = ``finish - submit`` over completed jobs; a timed-out job counts
  with the time it finished at its limit.
- Queueing delay = ``start - submit`` over started jobs (``start`` is the first start, so time
  spent requeued after a preemption counts toward JCT, not toward the queueing delay).
- Bounded slowdown = ``max(1, JCT / max(runtime, tau))`` with ``tau = 10 s``, over completed jobs;
  the bound keeps jobs of a few seconds from dominating the mean (Feitelson et al., "Theory and
  Practice in Parallel Job Scheduling", JSSPP 1997, LNCS 1291; tau = 10 s as in Feitelson,
  "Metrics for Parallel Job Scheduling and their Convergence", JSSPP 2001).
- Each distribution gives its mean, median, 95th and 99th percentile; percentiles interpolate
  linearly between order statistics (numpy's default, Hyndman and Fan's definition 7).
- Makespan = max ``finish`` - min ``submit`` over completed jobs.
- The timeline is a step function: each sample holds until the next one and the last sample
  holds until ``result.end_time``. Time-weighted means are taken over
  ``[times[0], end_time]``; they are ``None`` when that span has no length. Allocated GPUs are
  ``allocated_gpu_milli / 1000``; the allocation fraction divides the mean by
  ``result.cluster_gpus``. Peaks are the largest samples.
- Jain's fairness index across tenants, ``J = (sum x)^2 / (n * sum x^2)`` (Jain, Chiu, Hawe, "A
  Quantitative Measure of Fairness and Discrimination for Resource Allocation in Shared Computer
  Systems", DEC-TR-301, 1984), with ``x_t`` the mean of ``1 / bounded slowdown`` over tenant
  ``t``'s completed jobs: the share of its time in the system a tenant's job spends running.
  A tenant with job records but no completed job was starved for the whole run and counts with
  ``x_t = 0``; tenants that appear only among the never-fit jobs are not counted. ``J`` is 1
  when every tenant is served alike and ``1/n`` when one tenant gets everything; it is None
  when no job completed.
- Prediction (``--estimates predicted``): over completed jobs that had a prediction, the median
  of ``|predicted - actual| / actual`` and the share predicted within a factor of two of the
  trace's run time (``allot.sim.predict``); None without predictions.
- Per tenant: job records, completed jobs, mean JCT, mean bounded slowdown, and GPU-hours of
  completed work (GPUs asked for times the recorded run time, over completed jobs; a timed-out
  job counts its recorded run time too, though it ran only up to its limit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from allot.sim.predict import PredictionError
from allot.sim.result import SimResult

BOUNDED_SLOWDOWN_TAU_S = 10.0
"""Run times below this count as this long when computing bounded slowdown (seconds)."""

# Decimal places kept by ``to_dict``: milliseconds for times, and enough for ratios to tell
# policies apart without the last-bit noise that would make golden files flaky.
_SECONDS_DIGITS = 3
_RATIO_DIGITS = 4
_AMOUNT_DIGITS = 3

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Distribution:
    """Mean, median and tail percentiles of one figure over a set of jobs; None when empty."""

    mean: float | None = None
    median: float | None = None
    p95: float | None = None
    p99: float | None = None

    @classmethod
    def of(cls, values: FloatArray) -> Distribution:
        """Summarize ``values``; an empty array gives a Distribution of Nones."""
        if values.size == 0:
            return cls()
        p50, p95, p99 = np.percentile(values, [50.0, 95.0, 99.0])
        return cls(float(values.mean()), float(p50), float(p95), float(p99))

    def to_dict(self, digits: int) -> dict[str, float | None]:
        """The four figures rounded to ``digits`` decimal places."""
        return {
            "mean": _rounded(self.mean, digits),
            "median": _rounded(self.median, digits),
            "p95": _rounded(self.p95, digits),
            "p99": _rounded(self.p99, digits),
        }


@dataclass(frozen=True, slots=True)
class TenantMetrics:
    """How one tenant fared in a run."""

    jobs: int
    completed: int
    mean_jct_s: float | None
    mean_bounded_slowdown: float | None
    gpu_hours: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures, rounded."""
        return {
            "jobs": self.jobs,
            "completed": self.completed,
            "mean_jct_s": _rounded(self.mean_jct_s, _SECONDS_DIGITS),
            "mean_bounded_slowdown": _rounded(self.mean_bounded_slowdown, _RATIO_DIGITS),
            "gpu_hours": _rounded(self.gpu_hours, _AMOUNT_DIGITS),
        }


@dataclass(frozen=True, slots=True)
class Metrics:
    """The figures of one run; see the module docstring for each definition."""

    jobs: int = 0
    completed: int = 0
    timed_out: int = 0
    unfinished: int = 0
    never_fit: int = 0
    preemptions: int = 0
    failure_restarts: int = 0
    lost_gpu_hours: float = 0.0
    jct_s: Distribution = field(default_factory=Distribution)
    queueing_delay_s: Distribution = field(default_factory=Distribution)
    bounded_slowdown: Distribution = field(default_factory=Distribution)
    makespan_s: float | None = None
    mean_allocated_gpus: float | None = None
    gpu_allocation_fraction: float | None = None
    peak_allocated_gpus: float | None = None
    mean_queue_length: float | None = None
    peak_queue_length: int | None = None
    jain_index: float | None = None
    per_tenant: Mapping[str, TenantMetrics] = field(default_factory=dict)
    prediction: PredictionError = field(default_factory=lambda: PredictionError(0, None, None))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures, headline first: outcome counts, JCT, slowdown, use, fairness.

        Times are seconds, rounded to milliseconds; ratios keep four decimals; tenants are
        sorted by name so the output diffs well between runs.
        """
        return {
            "jobs": self.jobs,
            "completed": self.completed,
            "timed_out": self.timed_out,
            "unfinished": self.unfinished,
            "never_fit": self.never_fit,
            "jct_s": self.jct_s.to_dict(_SECONDS_DIGITS),
            "bounded_slowdown": self.bounded_slowdown.to_dict(_RATIO_DIGITS),
            "gpu_allocation_fraction": _rounded(self.gpu_allocation_fraction, _RATIO_DIGITS),
            "jain_index": _rounded(self.jain_index, _RATIO_DIGITS),
            "makespan_s": _rounded(self.makespan_s, _SECONDS_DIGITS),
            "queueing_delay_s": self.queueing_delay_s.to_dict(_SECONDS_DIGITS),
            "mean_allocated_gpus": _rounded(self.mean_allocated_gpus, _AMOUNT_DIGITS),
            "peak_allocated_gpus": _rounded(self.peak_allocated_gpus, _AMOUNT_DIGITS),
            "mean_queue_length": _rounded(self.mean_queue_length, _AMOUNT_DIGITS),
            "peak_queue_length": self.peak_queue_length,
            "preemptions": self.preemptions,
            "failure_restarts": self.failure_restarts,
            "lost_gpu_hours": _rounded(self.lost_gpu_hours, _AMOUNT_DIGITS),
            "predicted_jobs": self.prediction.jobs,
            "prediction_median_relative_error": _rounded(
                self.prediction.median_relative_error, _RATIO_DIGITS
            ),
            "prediction_within_2x": _rounded(self.prediction.within_2x, _RATIO_DIGITS),
            "per_tenant": {
                name: self.per_tenant[name].to_dict() for name in sorted(self.per_tenant)
            },
        }


def compute_metrics(result: SimResult) -> Metrics:
    """Measure one run. Never raises on empty input: figures with nothing to measure are None."""
    records = result.jobs
    count = len(records)
    submit = np.array([r.submit for r in records], dtype=np.float64)
    runtime = np.array([r.runtime for r in records], dtype=np.float64)
    # None becomes NaN, which marks "not started" / "not finished" in the arrays below.
    start = np.array([r.start for r in records], dtype=np.float64)
    finish = np.array([r.finish for r in records], dtype=np.float64)
    gpus = np.array([r.gpu_milli for r in records], dtype=np.float64) / 1000.0
    preemptions = sum(r.preemptions for r in records)
    failure_restarts = sum(r.failure_restarts for r in records)
    timed_out = sum(1 for r in records if r.timed_out and r.finish is not None)
    lost_gpu_seconds = sum(r.lost_gpu_seconds for r in records)

    started = ~np.isnan(start)
    completed = ~np.isnan(finish)
    jct = finish[completed] - submit[completed]
    slowdown = np.maximum(1.0, jct / np.maximum(runtime[completed], BOUNDED_SLOWDOWN_TAU_S))
    makespan = float(finish[completed].max() - submit[completed].min()) if jct.size else None

    tenant_names, tenant_of_job = np.unique(
        np.array([r.tenant for r in records], dtype=np.str_), return_inverse=True
    )
    per_tenant, jain = _tenant_figures(
        [str(name) for name in tenant_names],
        tenant_of_job.reshape(-1),
        completed,
        jct,
        slowdown,
        gpus[completed] * runtime[completed],
    )
    completed_count = int(completed.sum())
    timeline = _timeline_figures(result)
    mean_allocated = timeline.mean_allocated_gpus
    return Metrics(
        jobs=count,
        completed=completed_count,
        timed_out=timed_out,
        unfinished=count - completed_count,
        never_fit=len(result.never_fit),
        preemptions=preemptions,
        failure_restarts=failure_restarts,
        lost_gpu_hours=lost_gpu_seconds / 3600.0,
        jct_s=Distribution.of(jct),
        queueing_delay_s=Distribution.of(start[started] - submit[started]),
        bounded_slowdown=Distribution.of(slowdown),
        makespan_s=makespan,
        mean_allocated_gpus=mean_allocated,
        gpu_allocation_fraction=(
            mean_allocated / result.cluster_gpus
            if mean_allocated is not None and result.cluster_gpus > 0
            else None
        ),
        peak_allocated_gpus=timeline.peak_allocated_gpus,
        mean_queue_length=timeline.mean_queue_length,
        peak_queue_length=timeline.peak_queue_length,
        jain_index=jain,
        per_tenant=per_tenant,
        prediction=PredictionError.of(
            [(r.predicted, r.runtime) for r in records if r.predicted is not None and r.finish]
        ),
    )


def jain_index(values: FloatArray) -> float | None:
    """Jain's fairness index of non-negative ``values``; None when empty or all zero."""
    if values.size == 0:
        return None
    square_sum = float(np.square(values).sum())
    if square_sum == 0.0:
        return None
    return float(values.sum()) ** 2 / (values.size * square_sum)


def _tenant_figures(
    names: list[str],
    tenant_of_job: npt.NDArray[np.intp],
    completed: npt.NDArray[np.bool_],
    jct: FloatArray,
    slowdown: FloatArray,
    gpu_seconds: FloatArray,
) -> tuple[dict[str, TenantMetrics], float | None]:
    """Per-tenant figures and Jain's index over tenants, grouped with bincount (no Python loop
    over jobs). ``jct``, ``slowdown`` and ``gpu_seconds`` are over completed jobs only."""
    size = len(names)
    jobs = np.bincount(tenant_of_job, minlength=size)
    owner = tenant_of_job[completed]
    done = np.bincount(owner, minlength=size)
    jct_sum = np.bincount(owner, weights=jct, minlength=size)
    slowdown_sum = np.bincount(owner, weights=slowdown, minlength=size)
    run_share_sum = np.bincount(owner, weights=1.0 / slowdown, minlength=size)
    gpu_seconds_sum = np.bincount(owner, weights=gpu_seconds, minlength=size)
    per_tenant = {
        name: TenantMetrics(
            jobs=int(jobs[i]),
            completed=int(done[i]),
            mean_jct_s=float(jct_sum[i] / done[i]) if done[i] else None,
            mean_bounded_slowdown=float(slowdown_sum[i] / done[i]) if done[i] else None,
            gpu_hours=float(gpu_seconds_sum[i]) / 3600.0,
        )
        for i, name in enumerate(names)
    }
    run_share = np.divide(run_share_sum, done, out=np.zeros(size), where=done > 0)
    return per_tenant, jain_index(run_share)


@dataclass(frozen=True, slots=True)
class _TimelineFigures:
    mean_allocated_gpus: float | None = None
    peak_allocated_gpus: float | None = None
    mean_queue_length: float | None = None
    peak_queue_length: int | None = None


def _timeline_figures(result: SimResult) -> _TimelineFigures:
    """Time-weighted means and peaks of the step-function timeline."""
    timeline = result.timeline
    if not timeline.times:
        return _TimelineFigures()
    times = np.asarray(timeline.times, dtype=np.float64)
    allocated = np.asarray(timeline.allocated_gpu_milli, dtype=np.float64) / 1000.0
    queue = np.asarray(timeline.queue_length, dtype=np.float64)
    horizon = max(result.end_time, float(times[-1]))
    # A sample recorded after end_time (or out of order) must not count negative time.
    held = np.clip(np.diff(times, append=horizon), 0.0, None)
    span = float(held.sum())
    return _TimelineFigures(
        mean_allocated_gpus=float(allocated @ held) / span if span > 0 else None,
        peak_allocated_gpus=float(allocated.max()),
        mean_queue_length=float(queue @ held) / span if span > 0 else None,
        peak_queue_length=int(queue.max()),
    )


def _rounded(value: float | None, digits: int) -> float | None:
    """``value`` rounded for JSON; None stays None and -0.0 becomes 0.0."""
    if value is None:
        return None
    return round(float(value), digits) + 0.0
