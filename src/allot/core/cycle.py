"""The scheduling cycle: ``schedule(snapshot, pending, policy, now) -> Plan``.

Phases, in order:
1. Order: sort the pending jobs by the policy's criteria. With the DRS criterion, queues are
   merged by the dominant resource share each would have after admitting its next job, which
   is recomputed whenever that queue admits (``allot.core.order``).
2. Screen: a job no capacity could ever hold (no accepted flavor, never fits, only drained or
   down nodes would do, or an unknown queue) is explained and skipped; it blocks no one.
3. Admit: quota, then placement, flavor by flavor (``allot.core.admission``). A start is
   applied to the snapshot at once, so later jobs see it.
4. Preempt: with a preempting policy, a job that does not fit looks for victims its queue's
   rules allow (one preemptor per queue per cycle). Victims are marked stopping; the job
   starts in a later cycle, once they have stopped. Nothing is preempted for a job that will
   fit once the jobs already stopping are gone. A preemptor waiting for its victims holds its
   quota request and its placement hold for the rest of the cycle, nothing more
   (``allot.core.preemption.holds``): a later job that fits both now and once the victims have
   stopped and the preemptor has started still starts; one that only the hold keeps out waits
   behind the preemptor. A job whose quota the allowed victims would free, but for which no
   victim set makes a placement, is explained by placement (no node could be freed), not by
   quota.
5. Block: a job stopped by its queue's quota blocks at most its own queue (STRICT). A job
   stopped by capacity triggers the policy's blocking rule: STRICT explains everything behind
   it as blocked (per queue under DRS order); BEST_EFFORT moves on; BACKFILL reserves.
6. Reserve (EASY backfill): find the head's shadow time and the capacity to hold for it; a
   later job expected to end by then may use anything free, a longer one only what the hold
   leaves (``allot.core.policy.backfill``).
7. Restore: undo every edit, so the snapshot is exactly as it came in, explain every job left
   pending against what is free after this cycle's starts, and return the Plan.

Cost: a (tasks, flavor) pair that found no room in this cycle is not tried again, since free
capacity only shrinks within a cycle; so a cycle is linear in the pending jobs plus the
placements and victim searches it makes.
"""

from __future__ import annotations

from collections.abc import Sequence

from allot.core.admission import (
    Attempt,
    Backlog,
    PlacementKey,
    backlog_of,
    find_preemptions,
    fits_once_stopped,
    quota_explanation,
    try_admit,
    waiting_explanation,
)
from allot.core.explain import Explanation, Reason
from allot.core.model import JobId, JobSpec
from allot.core.order import job_stream
from allot.core.placement.diagnose import accepted_flavors, explain_no_fit, needs_fields, screen
from allot.core.placement.select import choose_placement
from allot.core.plan import Plan, Reservation, Start
from allot.core.policy import Blocking, Policy
from allot.core.policy.backfill import Hold, Shadow, find_shadow
from allot.core.policy.ordering import las_level
from allot.core.preemption import Preemption, Strategy
from allot.core.preemption.candidates import CandidatePool
from allot.core.preemption.holds import PreemptorHolds
from allot.core.snapshot import Snapshot, Undo

_UNPLACED = Explanation(Reason.NO_CAPACITY)  # placeholder until the end-of-cycle diagnosis
_UNSCREENED = object()


def _behind(preemptor: JobId) -> Explanation:
    return Explanation(Reason.BEHIND_PREEMPTOR, {"preemptor": preemptor})


class _Cycle:
    """The mutable state of one cycle; ``schedule`` is its only user."""

    def __init__(self, snap: Snapshot, policy: Policy, now: float) -> None:
        self.snap = snap
        self.policy = policy
        self.now = now
        self.undos: list[Undo] = []
        self.starts: list[Start] = []
        self.reservations: list[Reservation] = []
        self.preemptions: list[Preemption] = []
        self.pending: dict[JobId, Explanation] = {}
        self.failed: set[PlacementKey] = set()  # (tasks, flavor) without room now
        self.failed_held: set[PlacementKey] = set()  # ... with the backfill hold engaged
        # tasks shape -> (starts made when checked, fits if the hold were not there)
        self.behind: dict[object, tuple[int, bool]] = {}
        self.hold: Hold | None = None
        self.shadow: Shadow | None = None
        self.blocked: Explanation | None = None  # the reason every later job shares, if any
        self.blocked_queues: dict[str, Explanation] = {}
        self.preempted_for: set[str] = set()  # queues that already preempt this cycle
        self.holds = PreemptorHolds(snap)  # room kept for preemptors waiting for victims
        # (queue, shape, priority, level) -> the waiting explanation, or None: no victims
        self.preempt_verdicts: dict[object, Explanation | None] = {}
        # ... -> strategies whose victims would free the quota but no node, when that was so
        self.no_node_verdicts: dict[object, str] = {}
        self.no_node_freed: dict[JobId, str] = {}  # job -> those strategies, for its reason
        # (queue, shape) -> outcome, per view: quota and free capacity only shrink in a cycle
        self.outcomes: dict[object, Attempt] = {}
        self.outcomes_held: dict[object, Attempt] = {}
        self.backfill_verdicts: dict[object, tuple[int, Explanation]] = {}
        self.started_ids: set[JobId] = set()
        self.started_queues: set[str] = set()
        self.pool = CandidatePool(
            snap,
            now,
            policy.las_thresholds,
            self.started_ids,
            self.started_queues,
            Strategy.LAS in policy.preemption,
        )
        self.unplaced: list[JobSpec] = []
        self.jobs: Sequence[JobSpec] = ()
        self._backlog: Backlog | None = None  # what the pending jobs ask for; on first use
        self.known_queues = (
            ", ".join(q.name for q in snap.quota.config.queues) if snap.quota else ""
        )

    # ---------------------------------------------------------------- phases 2-5

    def run(self, jobs: Sequence[JobSpec]) -> None:
        self.jobs = jobs
        snap, pending, screened = self.snap, self.pending, self.snap.screened
        for spec in job_stream(snap, jobs, self.policy):
            # Phase 2: screen (memoised per job shape on the snapshot).
            reason = screened.get(spec.shape, _UNSCREENED)
            if reason is _UNSCREENED:
                reason = screen(snap, spec)
            if reason is None and snap.quota is not None and not snap.quota.knows(spec.queue):
                reason = Explanation(
                    Reason.UNKNOWN_QUEUE, {"queue": spec.queue, "known": self.known_queues}
                )
            if reason is not None:
                pending[spec.id] = reason  # type: ignore[assignment]
            elif self.blocked is not None:
                pending[spec.id] = self.blocked
            elif spec.queue in self.blocked_queues:
                pending[spec.id] = self.blocked_queues[spec.queue]
            elif self.shadow is not None:
                self._backfill(spec, self.shadow)
            else:
                self._admit(spec)

    def _attempt(self, spec: JobSpec, *, held: bool) -> Attempt:
        """Phase 3: try to admit ``spec``; a job whose twin (same queue and shape) already
        failed in this view fails the same way without another try."""
        outcomes = self.outcomes_held if held else self.outcomes
        key = (spec.queue, spec.shape)
        known = outcomes.get(key)
        if known is not None:
            return known
        failed = self.failed_held if held else self.failed
        attempt = try_admit(self.snap, spec, self.now, failed, self.undos, self.holds)
        if attempt.start is not None:
            self.holds.started(spec, attempt.start.flavor)
            self.starts.append(attempt.start)
            self.started_ids.add(spec.id)
            self.started_queues.add(spec.queue)
            self.pool.invalidate()
        else:
            outcomes[key] = attempt
        return attempt

    def _admit(self, spec: JobSpec) -> None:
        """Phase 3, and what follows when the job does not fit."""
        attempt = self._attempt(spec, held=False)
        if attempt.start is not None:
            return
        if self._waits(spec, attempt):
            return
        if attempt.quota_block is not None:
            if self._no_node_freed(spec):
                self._unplaced(spec)
            else:
                self.pending[spec.id] = quota_explanation(spec, attempt.quota_block)
            if self.policy.blocking is Blocking.STRICT:
                self._block_queue(spec)
            return
        self._block(spec, attempt)

    def _waits(self, spec: JobSpec, attempt: Attempt) -> bool:
        """After a failed attempt: True when ``spec`` waits behind a preemptor's held room or
        for preempted jobs (phase 4), with its explanation set. A nominated job behind another
        preemptor still keeps its own room if it can."""
        if attempt.behind is not None and spec.id not in self.snap.nominated:
            self.pending[spec.id] = _behind(attempt.behind)
            return True
        if self.policy.preemption and self._preempt(spec, attempt):
            return True
        if attempt.behind is not None:
            self.pending[spec.id] = _behind(attempt.behind)
            return True
        return False

    def _preempt_key(self, spec: JobSpec) -> object:
        level = None
        if Strategy.LAS in self.policy.preemption:
            level = las_level(self.snap.attained.get(spec.id, 0.0), self.policy.las_thresholds)
        return (spec.queue, spec.shape, spec.priority, level)

    def _preempt(self, spec: JobSpec, attempt: Attempt) -> bool:
        """Phase 4: True when ``spec`` waits for preempted jobs (new or already stopping)."""
        snap = self.snap
        key = self._preempt_key(spec)
        if key in self.preempt_verdicts:
            verdict = self.preempt_verdicts[key]
            if verdict is not None:
                self.pending[spec.id] = verdict
            return verdict is not None
        waiting_on = next(
            (
                f
                for f in accepted_flavors(snap, spec)
                if fits_once_stopped(snap, spec, f, self.holds)
            ),
            None,
        )
        if waiting_on is not None:
            if spec.id in snap.nominated:
                # Its victims are stopping: keep the room it counts on for it.
                self._reserve(spec, waiting_on)
            waiting = waiting_explanation(snap, waiting_on, self.now)
            self.preempt_verdicts[key] = waiting
            self.pending[spec.id] = waiting
            return True
        if spec.queue in self.preempted_for:
            return False
        if self.hold is not None:
            self.hold.disengage()
        chosen = find_preemptions(
            snap,
            spec,
            self.policy,
            self.now,
            self.pool,
            self.holds,
            backlog=self._pending_backlog(),
            quota_check=attempt.quota_block is not None,
        )
        if chosen.flavor is None:
            self.preempt_verdicts[key] = None
            if chosen.frees_quota is not None:
                self.no_node_verdicts[key] = ", ".join(str(s) for s in chosen.frees_quota)
            return False
        flavor, found = chosen.flavor, chosen.preemptions
        for preemption in found:
            self.undos.append(snap.mark_stopping(preemption.victim, preemption.stop_by))
            self.holds.stopping(preemption.victim)
        self._reserve(spec, flavor)
        self.pool.invalidate()
        self.preemptions.extend(found)
        self.preempted_for.add(spec.queue)
        self.pending[spec.id] = Explanation(
            Reason.PREEMPTING,
            {
                "victims": ", ".join(str(p.victim) for p in found),
                "strategy": ", ".join(sorted({str(p.strategy) for p in found})),
                "until": max(p.stop_by for p in found),
            },
        )
        return True

    def _pending_backlog(self) -> Backlog:
        if self._backlog is None:
            self._backlog = backlog_of(self.snap, self.jobs)
        return self._backlog

    def _no_node_freed(self, spec: JobSpec) -> bool:
        """True when ``spec``'s search found no victims although the victims it may take
        would free its quota: no set of them makes a placement. Remembers the strategies for
        its explanation."""
        verdict = self.no_node_verdicts.get(self._preempt_key(spec))
        if verdict is not None:
            self.no_node_freed[spec.id] = verdict
        return verdict is not None

    def _reserve(self, spec: JobSpec, flavor: str) -> None:
        """Keep what ``spec`` needs once its victims are gone: its quota request and its
        placement hold (``PreemptorHolds.hold``), so no later job takes that room and the
        preemptor need not preempt again."""
        undo = self.holds.hold(spec, flavor)
        if undo is not None:
            self.undos.append(undo)

    def _block_queue(self, spec: JobSpec) -> None:
        self.blocked_queues[spec.queue] = Explanation(
            Reason.BLOCKED_IN_QUEUE, {"queue": spec.queue, "head": spec.id}
        )

    def _block(self, spec: JobSpec, attempt: Attempt) -> None:
        """Phase 5: ``spec`` found no room; the policy's blocking rule says what follows."""
        blocking = self.policy.blocking
        if blocking is Blocking.BACKFILL:
            # Phase 6: reserve.
            shadow = find_shadow(self.snap, spec, attempt.capacity_flavors, self.now)
            if shadow is not None:
                self.shadow = shadow
                self.hold = Hold(self.snap, shadow.holds)
                self.reservations.append(shadow.reservation)
                self.pending[spec.id] = self._reserved(spec, shadow.reservation)
                return
            self.blocked = Explanation(Reason.NO_RESERVATION, {"head": spec.id})
        elif blocking is Blocking.STRICT:
            if self.policy.queue_fair:
                self._block_queue(spec)
            else:
                self.blocked = Explanation(Reason.BLOCKED_BY_HEAD, {"head": spec.id})
        self._unplaced(spec)

    def _backfill(self, spec: JobSpec, shadow: Shadow) -> None:
        """Start ``spec`` only where it cannot delay the reservation; explain it otherwise."""
        runtime = spec.runtime_estimate if spec.runtime_estimate is not None else spec.time_limit
        # A job that ends before the head starts may use anything free; a longer one only what
        # the hold leaves.
        held = runtime is None or self.now + runtime > shadow.reservation.start_time
        key = (held, spec.queue, spec.shape)
        known = self.backfill_verdicts.get(key)
        if known is not None and known[0] == len(self.starts):
            self.pending[spec.id] = known[1]
            if known[1] is _UNPLACED:
                self.unplaced.append(spec)
            return
        hold = self.hold
        assert hold is not None
        if (spec.queue, spec.shape) not in (self.outcomes_held if held else self.outcomes):
            if held:
                hold.engage()
            else:
                hold.disengage()
        attempt = self._attempt(spec, held=held)
        if attempt.start is not None:
            return
        if self._waits(spec, attempt):
            return
        if attempt.quota_block is not None and self._no_node_freed(spec):
            reason = _UNPLACED
            self.unplaced.append(spec)
        elif attempt.quota_block is not None:
            reason = quota_explanation(spec, attempt.quota_block)
        elif held and self._fits_without_hold(spec, attempt.capacity_flavors):
            reason = Explanation(
                Reason.BEHIND_RESERVATION,
                {"head": shadow.reservation.job_id, "until": shadow.reservation.start_time},
            )
        else:
            reason = _UNPLACED
            self.unplaced.append(spec)
        self.pending[spec.id] = reason
        if not self.policy.preemption:
            # Same view, queue and shape: the same verdict until something new starts.
            self.backfill_verdicts[key] = (len(self.starts), reason)

    def _fits_without_hold(self, spec: JobSpec, flavors: list[str]) -> bool:
        """Would ``spec`` fit if nothing were held for the reservation? Cached per shape
        until the next start."""
        key = (spec.shape[0], tuple(flavors))
        cached = self.behind.get(key)
        if cached is None or cached[0] != len(self.starts):
            assert self.hold is not None
            self.hold.disengage()
            fits = any(
                (spec.shape[0], f) not in self.failed
                and choose_placement(self.snap, spec, f) is not None
                for f in flavors
            )
            cached = self.behind[key] = (len(self.starts), fits)
        return cached[1]

    # ---------------------------------------------------------------- phase 7

    def _unplaced(self, spec: JobSpec) -> None:
        """Note a job that did not fit; ``explain_unplaced`` says why once the cycle is done."""
        self.unplaced.append(spec)
        self.pending[spec.id] = _UNPLACED

    def explain_unplaced(self) -> None:
        """Describe each job that did not fit against what is free after this cycle's starts,
        once per job shape."""
        if self.hold is not None:
            self.hold.disengage()
        by_shape: dict[object, Explanation] = {}
        for spec in self.unplaced:
            reason = by_shape.get(spec.shape)
            if reason is None:
                reason = by_shape[spec.shape] = explain_no_fit(self.snap, spec)
            freed_by = self.no_node_freed.get(spec.id)
            if freed_by is not None:
                # Its quota would be freed by preemption; no victim set frees a placement.
                reason = Explanation(reason.reason, {**reason.fields, "no_node_freed_by": freed_by})
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
    """Decide which pending jobs start now, where, which running jobs to preempt, and why the
    others wait.

    Pure: ``snapshot`` is edited during the cycle and restored before returning; the same
    snapshot, jobs, policy and time always give the same Plan.
    """
    cycle = _Cycle(snapshot, policy, now)
    try:
        # Phases 1-6.
        cycle.run(pending)
        cycle.explain_unplaced()
    finally:
        # Phase 7.
        cycle.restore()
    return Plan(
        tuple(cycle.starts), tuple(cycle.reservations), cycle.pending, tuple(cycle.preemptions)
    )
