"""The Plan: what one scheduling cycle decided, as data.

A Plan never acts. The simulator applies it to its virtual cluster; the live control plane
applies it through an executor and records every transition. Starts are listed in the order the
cycle made them; every job that was pending and is not started has exactly one explanation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from allot.core.explain import Explanation
from allot.core.model import JobId, TaskPlacement
from allot.core.preemption import Preemption


@dataclass(frozen=True, slots=True)
class Start:
    """Start ``job_id`` now on ``flavor`` with one placement per task (in task order)."""

    job_id: JobId
    flavor: str
    placement: tuple[TaskPlacement, ...]

    @property
    def nodes(self) -> tuple[str, ...]:
        """The distinct nodes the job lands on, in first-use order."""
        return tuple(dict.fromkeys(p.node for p in self.placement))


@dataclass(frozen=True, slots=True)
class Reservation:
    """Capacity held for ``job_id`` from ``start_time`` on (EASY backfill's shadow time)."""

    job_id: JobId
    start_time: float
    flavor: str
    placement: tuple[TaskPlacement, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """The outcome of ``schedule()``: starts, reservations, preemptions, and why every other
    job waits."""

    starts: tuple[Start, ...] = ()
    reservations: tuple[Reservation, ...] = ()
    # Read-only; the jobs a cycle did not take one by one are explained when first asked.
    pending: Mapping[JobId, Explanation] = field(default_factory=dict)
    preemptions: tuple[Preemption, ...] = ()

    def started_ids(self) -> frozenset[JobId]:
        """The ids of every job this plan starts."""
        return frozenset(s.job_id for s in self.starts)
