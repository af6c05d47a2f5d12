"""Orderings: the sequence in which a cycle considers pending jobs.

A policy's order is a tuple of criteria applied left to right; submit time and job id always
break the remaining ties, so the order is total and the same every time.

- PRIORITY: higher priority first (Slurm priority, Kueue WorkloadPriorityClass).
- SJF: shortest expected runtime first (estimate, else time limit; jobs with neither last) —
  optimal for mean completion time when estimates are exact.
- WORK: least expected GPU-time first: GPUs x expected runtime (estimate, else time limit);
  a job with neither counts ``UNKNOWN_RUNTIME`` per GPU, so without any runtimes this is
  fewest GPUs first, the size a scheduler always knows.
- LAS: least attained service first, discretised into levels (Tiresias 2D-LAS, Gu et al., NSDI
  2019): a job's attained service is GPUs x seconds it has run, over all its runs; level ``k``
  holds jobs with ``thresholds[k-1] <= attained < thresholds[k]``; FIFO within a level.
- USAGE: higher decayed-usage fair-share factor first, tenant then user (Slurm multifactor
  classic fair share; see ``allot.core.quota.fair_share``).
- DRS: lower dominant resource share of the job's queue after admitting it first (Kueue
  KEP-1714 fair sharing). It changes as jobs are admitted, so the cycle merges per-queue lists
  by it (see ``allot.core.cycle``); here it only marks the policy as queue-fair.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from enum import StrEnum

from allot.core.model import JobSpec
from allot.core.quota.fair_share import FairShareFactors

INF = float("inf")
UNKNOWN_RUNTIME = 3_600.0  # seconds per GPU assumed by WORK for a job without a runtime


def expected_work(spec: JobSpec) -> float:
    """GPU-seconds ``spec`` is expected to take (the WORK criterion)."""
    runtime = spec.expected_runtime
    gpus = spec.total.gpu_milli / 1000
    return gpus * (UNKNOWN_RUNTIME if runtime is None else runtime)


SortKey = tuple[float, ...]


class Criterion(StrEnum):
    """One ordering criterion."""

    PRIORITY = "priority"
    SJF = "sjf"
    WORK = "work"
    LAS = "las"
    USAGE = "usage"
    DRS = "drs"


def las_level(attained: float, thresholds: Sequence[float]) -> int:
    """The 2D-LAS level of a job with ``attained`` GPU-seconds (0 = least served)."""
    return bisect_right(thresholds, attained)


def sort_key(
    criteria: Sequence[Criterion],
    *,
    attained: dict[int, float],
    thresholds: Sequence[float],
    factors: FairShareFactors | None,
) -> Callable[[JobSpec], SortKey]:
    """The static sort key for ``criteria`` (DRS excluded), ending in submit time and id."""
    parts: list[Callable[[JobSpec], float]] = []
    for criterion in criteria:
        if criterion is Criterion.PRIORITY:
            parts.append(lambda j: -j.priority)
        elif criterion is Criterion.SJF:
            parts.append(lambda j: INF if j.expected_runtime is None else j.expected_runtime)
        elif criterion is Criterion.WORK:
            parts.append(expected_work)
        elif criterion is Criterion.LAS:
            parts.append(lambda j: las_level(attained.get(j.id, 0.0), thresholds))
        elif criterion is Criterion.USAGE and factors is not None:
            parts.append(lambda j: -factors.tenant(j.tenant))
            parts.append(lambda j: -factors.user(j.tenant, j.user))
    # Unrolled for the common lengths: the key runs once per pending job per cycle.
    if not parts:
        return lambda j: (j.submit_time, j.id)
    if len(parts) == 1:
        (a,) = parts
        return lambda j: (a(j), j.submit_time, j.id)
    if len(parts) == 2:
        a, b = parts
        return lambda j: (a(j), b(j), j.submit_time, j.id)
    if len(parts) == 3:
        a, b, c = parts
        return lambda j: (a(j), b(j), c(j), j.submit_time, j.id)
    return lambda j: (*(part(j) for part in parts), j.submit_time, j.id)
