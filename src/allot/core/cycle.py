"""The scheduling cycle: ``schedule(snapshot, pending, policy, now) -> Plan``.

Phases, in order:
1. Order: sort the pending jobs by the policy's ordering.
2. Screen: a job no capacity could ever hold (no accepted flavor, never fits, only drained or
   down nodes would do) is explained and skipped; it never blocks anyone.
3. Place: walk the jobs in order; place each on its first accepted flavor with room. A start is
   applied to the snapshot at once, so later jobs see it.
4. Block: on the first job that does not fit, the policy's blocking rule decides. STRICT
   explains everything behind it as blocked; BEST_EFFORT moves on; BACKFILL goes to 5.
5. Reserve (EASY backfill): find the head's shadow time and the capacity to hold for it; a
   later job expected to end by then may use anything free, a longer one only what the hold
   leaves (see ``allot.core.policy.backfill``).
6. Restore: undo every edit, so the snapshot is exactly as it came in, and return the Plan.

Cost: a job whose shape (tasks and accepted flavors) already failed in this cycle fails again
without a placement attempt, since free capacity only shrinks within a cycle; so a cycle is
linear in the pending jobs plus the placements it makes.
"""

from __future__ import annotations

from collections.abc import Sequence

from allot.core.explain import Explanation, Reason
from allot.core.model import MILLI_PER_GPU, JobId, JobSpec, RunningJob
from allot.core.placement.diagnose import accepted_flavors, explain_no_fit, needs_fields, screen
from allot.core.placement.select import choose_placement
from allot.core.plan import Plan, Reservation, Start
from allot.core.policy import Blocking, Policy, ordered
from allot.core.policy.backfill import Hold, Shadow, find_shadow
from allot.core.snapshot import Snapshot, Undo

ShapeKey = tuple[tuple[tuple[int, int, int], ...], tuple[str, ...]]
_UNPLACED = Explanation(Reason.NO_CAPACITY)  # placeholder until the end-of-cycle diagnosis
_UNSCREENED = object()


def _gang_count_ok(snap: Snapshot, spec: JobSpec, flavor: str) -> bool:
    """A cheap necessary condition: enough free GPUs of ``flavor`` in total and, for a gang
    of one whole-GPU shape, enough nodes with room for its tasks."""
    total = spec.total.gpu_milli
    if snap.free_gpu_milli[flavor] < total:
        return False
    first = spec.tasks[0]
    if first.gpu_milli >= MILLI_PER_GPU:
        g = first.gpu_milli // MILLI_PER_GPU
        if len(spec.tasks) == 1:
            return snap.largest_free_block(flavor) >= g
        if all(t == first for t in spec.tasks):
            return snap.tasks_that_fit(flavor, g) >= len(spec.tasks)
    return True


class _Cycle:
    """The mutable state of one cycle; ``schedule`` is its only user."""

    def __init__(self, snap: Snapshot, policy: Policy, now: float) -> None:
        self.snap = snap
        self.policy = policy
        self.now = now
        self.undos: list[Undo] = []
        self.starts: list[Start] = []
        self.reservations: list[Reservation] = []
        self.pending: dict[JobId, Explanation] = {}
        self.failed: dict[ShapeKey, bool] = {}  # shapes that did not fit in the current view
        self.failed_held: dict[ShapeKey, bool] = {}
        # shape -> (starts made when checked, fits if the hold were not there)
        self.behind: dict[ShapeKey, tuple[int, bool]] = {}
        self.hold: Hold | None = None
        self.shadow: Shadow | None = None
        self.blocked: Explanation | None = None  # the reason every later job shares, if any
        self.unplaced: list[JobSpec] = []

    # Phase 3: place one job, or report that it does not fit.
    def try_start(self, spec: JobSpec, failed: dict[ShapeKey, bool]) -> bool:
        snap = self.snap
        for flavor in accepted_flavors(snap, spec):
            if not _gang_count_ok(snap, spec, flavor):
                continue
            placement = choose_placement(snap, spec, flavor)
            if placement is not None:
                self.undos.append(snap.start(RunningJob(spec, self.now, placement, flavor)))
                self.starts.append(Start(spec.id, flavor, placement))
                return True
        failed[spec.shape] = True
        return False

    def run(self, jobs: Sequence[JobSpec]) -> None:
        snap, pending, screened = self.snap, self.pending, self.snap.screened
        for spec in jobs:
            # Phase 2: screen (memoised per job shape on the snapshot).
            reason = screened.get(spec.shape, _UNSCREENED)
            if reason is _UNSCREENED:
                reason = screen(snap, spec)
            if reason is not None:
                pending[spec.id] = reason  # type: ignore[assignment]
            elif self.blocked is not None:  # STRICT, or BACKFILL without a reservation
                pending[spec.id] = self.blocked
            elif self.shadow is not None:
                self._backfill(spec, self.shadow)
            elif spec.shape in self.failed or not self.try_start(spec, self.failed):
                self._block(spec)

    def _block(self, spec: JobSpec) -> None:
        """Phase 4: ``spec`` does not fit; the policy's blocking rule says what follows."""
        blocking = self.policy.blocking
        if blocking is Blocking.BACKFILL:
            # Phase 5: reserve.
            shadow = find_shadow(self.snap, spec, accepted_flavors(self.snap, spec), self.now)
            if shadow is not None:
                self.shadow = shadow
                self.hold = Hold(self.snap, shadow.holds)
                self.reservations.append(shadow.reservation)
                self.pending[spec.id] = self._reserved(spec, shadow.reservation)
                return
            self.blocked = Explanation(Reason.NO_RESERVATION, {"head": spec.id})
        elif blocking is Blocking.STRICT:
            self.blocked = Explanation(Reason.BLOCKED_BY_HEAD, {"head": spec.id})
        self._unplaced(spec)

    def _backfill(self, spec: JobSpec, shadow: Shadow) -> None:
        """Start ``spec`` only where it cannot delay the reservation; explain it otherwise."""
        hold = self.hold
        assert hold is not None
        key = spec.shape
        runtime = spec.runtime_estimate if spec.runtime_estimate is not None else spec.time_limit
        if runtime is not None and self.now + runtime <= shadow.reservation.start_time:
            # It ends before the head starts: anything free will do.
            if key not in self.failed:
                hold.disengage()
                if self.try_start(spec, self.failed):
                    return
            self._unplaced(spec)
            return
        if key not in self.failed_held:
            hold.engage()
            if self.try_start(spec, self.failed_held):
                return
        cached = self.behind.get(key)
        if cached is None or cached[0] != len(self.starts):
            fits_without_hold = False
            if key not in self.failed:
                hold.disengage()
                fits_without_hold = any(
                    _gang_count_ok(self.snap, spec, f)
                    and choose_placement(self.snap, spec, f) is not None
                    for f in accepted_flavors(self.snap, spec)
                )
            cached = self.behind[key] = (len(self.starts), fits_without_hold)
        if cached[1]:
            self.pending[spec.id] = Explanation(
                Reason.BEHIND_RESERVATION,
                {"head": shadow.reservation.job_id, "until": shadow.reservation.start_time},
            )
        else:
            self._unplaced(spec)

    def _unplaced(self, spec: JobSpec) -> None:
        """Note a job that did not fit; ``explain_unplaced`` says why once the cycle is done."""
        self.unplaced.append(spec)
        self.pending[spec.id] = _UNPLACED

    def explain_unplaced(self) -> None:
        """Describe each job that did not fit against what is free after this cycle's starts,
        once per job shape."""
        if self.hold is not None:
            self.hold.disengage()
        by_shape: dict[ShapeKey, Explanation] = {}
        for spec in self.unplaced:
            reason = by_shape.get(spec.shape)
            if reason is None:
                reason = by_shape[spec.shape] = explain_no_fit(self.snap, spec)
            self.pending[spec.id] = reason

    def _reserved(self, spec: JobSpec, reservation: Reservation) -> Explanation:
        fields = needs_fields(spec, (reservation.flavor,))
        fields["at"] = reservation.start_time
        fields["nodes"] = ", ".join(dict.fromkeys(p.node for p in reservation.placement))
        return Explanation(Reason.RESERVED, fields)

    def restore(self) -> None:
        if self.hold is not None:
            self.hold.disengage()
        for undo in reversed(self.undos):
            undo()
        self.undos.clear()


def schedule(snapshot: Snapshot, pending: Sequence[JobSpec], policy: Policy, now: float) -> Plan:
    """Decide which pending jobs start now, where, and why the others wait.

    Pure: ``snapshot`` is edited during the cycle and restored before returning; the same
    snapshot, jobs, policy and time always give the same Plan.
    """
    cycle = _Cycle(snapshot, policy, now)
    try:
        # Phase 1: order.
        cycle.run(ordered(pending, policy.order))
        cycle.explain_unplaced()
    finally:
        # Phase 6: restore.
        cycle.restore()
    return Plan(tuple(cycle.starts), tuple(cycle.reservations), cycle.pending)
