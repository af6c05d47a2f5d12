"""Orderings: the sequence in which a cycle considers pending jobs.

Every ordering ends its key with the submit time and the job id, so ties break the same way
every time and the order is total.
- FIFO: submit time (Slurm's and Kueue's StrictFIFO default).
- PRIORITY: higher priority first, then FIFO (Slurm's priority/basic, Kueue's priority ordering).
- SJF: shortest expected runtime first (the estimate, else the time limit; jobs with neither
  last), then FIFO — shortest-job-first on user estimates (Feitelson & Rudolph; SJF is optimal
  for mean completion time when estimates are exact).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum

from allot.core.model import JobSpec

INF = float("inf")


class Order(StrEnum):
    """How pending jobs are ordered."""

    FIFO = "fifo"
    PRIORITY = "priority"
    SJF = "sjf"


def _fifo(job: JobSpec) -> tuple[float, int]:
    return (job.submit_time, job.id)


def _priority(job: JobSpec) -> tuple[int, float, int]:
    return (-job.priority, job.submit_time, job.id)


def _sjf(job: JobSpec) -> tuple[float, float, int]:
    runtime = job.expected_runtime
    return (INF if runtime is None else runtime, job.submit_time, job.id)


SORT_KEYS: dict[Order, Callable[[JobSpec], tuple[float | int, ...]]] = {
    Order.FIFO: _fifo,
    Order.PRIORITY: _priority,
    Order.SJF: _sjf,
}


def ordered(pending: Sequence[JobSpec], order: Order) -> list[JobSpec]:
    """``pending`` sorted by ``order`` (stable; input already in order costs linear time)."""
    return sorted(pending, key=SORT_KEYS[order])
