"""Cycle observers: each scheduling cycle's report goes to whoever subscribed (metrics, the
audit log, start-time estimates, tests recording plans), as Nomad's scheduler Harness records
every plan it submits.

An observer is called on the loop's thread right after the cycle, so it must be quick; a
failing observer is logged and never stops scheduling or the other observers.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from allot.control.records import JobRecord
from allot.core.plan import Plan

log = logging.getLogger("allot.control")


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one plan did."""

    started: list[int]
    preempted: list[int]
    refused: list[int]  # jobs begin_run refused (changed since the snapshot)
    failed: list[int]  # launches that failed outright


@dataclass(frozen=True, slots=True)
class CycleReport:
    """What one cycle decided and did: at ``at`` (clock time), taking ``seconds`` of wall
    time, over ``pending`` pending (not held) and ``running`` active jobs."""

    at: float
    plan: Plan
    applied: Applied
    pending: int
    running: int
    seconds: float
    waiting: int = 0  # pending jobs whose dependencies are not all met yet
    unsatisfiable: tuple[int, ...] = ()  # jobs cancelled: a dependency can never be met
    # The records of the jobs it started, as they were when it decided (submit time, queue,
    # runs before this one), for observers that measure waits and trace each start.
    started_jobs: tuple[JobRecord, ...] = ()

    @property
    def pending_by_reason(self) -> Mapping[str, int]:
        """How many jobs the plan left pending, per reason code."""
        return Counter(str(e.reason) for e in self.plan.pending.values())


class CycleObserver(Protocol):
    """Receives each cycle's report."""

    def cycle_done(self, report: CycleReport) -> None: ...


class Observers:
    """The subscribed observers, told in the order they subscribed."""

    def __init__(self) -> None:
        self._observers: list[CycleObserver] = []

    def subscribe(self, observer: CycleObserver) -> None:
        """Tell ``observer`` of every cycle from now on."""
        self._observers.append(observer)

    def publish(self, report: CycleReport) -> None:
        """Tell every observer; one that fails is logged and skipped."""
        for observer in self._observers:
            try:
                observer.cycle_done(report)
            except Exception:
                log.exception("cycle observer %r failed", observer)
