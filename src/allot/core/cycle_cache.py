"""What one scheduling cycle builds and remembers: the Plan under construction
(``CycleResult``) and the verdicts it may reuse (``CycleCache``).

Why reuse is safe: within a cycle, free capacity and quota only shrink (every start takes,
nothing is given back until the next cycle), so a job that found no room, or that a check
refused, is refused the same way for every later job with the same key. Keys:
- admission verdicts (an attempt, a preemption search, a backfill verdict) by the *admission
  key*, made of what the admission checks declare their verdicts depend on
  (``allot.core.checks``), so no verdict is lent to a job it was not computed for;
- placement verdicts (no room for these tasks on this flavor) by the request shape alone.
Each view of the snapshot (free capacity as it is, or with the backfill hold engaged) has its
own verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from allot.core.admission import Attempt, PlacementKey
from allot.core.checks import AdmissionKey, CacheScope, admission_key
from allot.core.explain import Explanation
from allot.core.model import JobId, JobSpec
from allot.core.plan import Reservation, Start
from allot.core.preemption import Preemption
from allot.core.snapshot import Undo


@dataclass(slots=True)
class CycleResult:
    """The Plan being built, and the edits to undo when the cycle restores the snapshot."""

    starts: list[Start] = field(default_factory=list)
    reservations: list[Reservation] = field(default_factory=list)
    preemptions: list[Preemption] = field(default_factory=list)
    pending: dict[JobId, Explanation] = field(default_factory=dict)
    unplaced: list[JobSpec] = field(default_factory=list)  # explained once the cycle is done
    started_ids: set[JobId] = field(default_factory=set)
    started_queues: set[str] = field(default_factory=set)
    undos: list[Undo] = field(default_factory=list)


class CycleCache:
    """Verdicts one cycle may reuse (see the module docstring)."""

    def __init__(self, scope: CacheScope) -> None:
        self.scope = scope
        # Per view (False: free capacity as it is; True: with the backfill hold engaged).
        self.no_room: dict[bool, set[PlacementKey]] = {False: set(), True: set()}
        self.attempts: dict[bool, dict[AdmissionKey, Attempt]] = {False: {}, True: {}}
        # (admission key, queue, priority, LAS level) -> the waiting explanation, or None
        self.preemption: dict[object, Explanation | None] = {}
        # ... -> strategies whose victims would free the quota but no node, when that was so
        self.no_node: dict[object, str] = {}
        # (held, admission key) -> (starts made when decided, the verdict)
        self.backfill: dict[object, tuple[int, Explanation]] = {}
        # (tasks, flavors) -> (starts made when checked, fits if the hold were not there)
        self.fits_unheld: dict[object, tuple[int, bool]] = {}

    def key(self, spec: JobSpec) -> AdmissionKey:
        """The admission key of ``spec``."""
        return admission_key(self.scope, spec)
