"""The scheduling cycle: ``schedule(snapshot, pending, policy, now) -> Plan``.

Phases, in order (after the budgets with ``on_exhausted: preempt`` have marked the jobs they
stop, ``allot.core.budget.budget_stops``; those stops lead the Plan's preemptions):
1. Order: sort the pending jobs by the policy's criteria. With the DRS criterion, queues are
   merged by the dominant resource share each would have after admitting its next job, which
   is recomputed whenever that queue admits (``allot.core.order``).
2. Screen: a job no capacity could ever hold (no accepted flavor, never fits, only drained or
   down nodes would do, or an unknown queue) is explained and skipped; it blocks no one.
3. Admit: the admission checks (quota, then any configured beside it: ``allot.core.checks``),
   then placement, flavor by flavor (``allot.core.admission``). A start is applied to the
   snapshot at once, so later jobs see it.
4. Preempt (``allot.core.preemption.phase``): with a preempting policy, a job that does not fit
   looks for victims its queue's rules allow (one preemptor per queue per cycle). Victims are
   marked stopping; the job starts in a later cycle, once they have stopped. Nothing is
   preempted for a job that will fit once the jobs already stopping are gone. A preemptor
   waiting for its victims holds its quota request and its placement hold for the rest of the
   cycle, nothing more (``allot.core.preemption.holds``): a later job that fits both now and
   once the victims have stopped and the preemptor has started still starts; one that only the
   hold keeps out waits behind the preemptor. A job whose quota the allowed victims would free,
   but for which no victim set makes a placement, is explained by placement (no node could be
   freed), not by quota.
5. Block: a job stopped by an admission check (its queue's quota, say) blocks at most its own
   queue (STRICT). A job stopped by capacity triggers the policy's blocking rule: STRICT
   explains everything behind it as blocked (per queue under DRS order); BEST_EFFORT moves on;
   BACKFILL reserves.
6. Reserve (EASY backfill): find the head's shadow time and the capacity to hold for it; a
   later job expected to end by then may use anything free, a longer one only what the hold
   leaves (``allot.core.policy.backfill``).
7. Restore: undo every edit, so the snapshot is exactly as it came in, explain every job left
   pending against what is free after this cycle's starts (the settled tail on demand, with
   its representative's explanation), and return the Plan.

State: each phase keeps its own (``PreemptionPhase``, ``_Backfill``, ``_Blocking``); what
they build is the ``CycleResult``, and what they may reuse is the ``CycleCache``
(``allot.core.cycle_cache``).

Cost: a (tasks, flavor) pair that found no room in this cycle is not tried again, since free
capacity only shrinks within a cycle, and a failed attempt is reused for the next job with the
same admission key. The order is kept on the snapshot from one cycle to the next
(``allot.core.pending_index``) and the walk stops once every job still to come is settled: it
would get a verdict already reached in the same state (``allot.core.tail``); those jobs are
explained when someone asks (``Plan.pending``). A job that could not start keeps its verdict
through later starts (all but one behind a reservation's hold), so a start unsettles only the
keys that may still start; and under best-effort order without groups or a reservation the
walk merges each key's own jobs and leaves a settled key out, so a rare key deep in the queue
costs no walk to reach it. So a cycle costs the jobs that changed since the last one, plus
about one job per key and per start, plus its placements and victim searches, not the queue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from allot.core.admission import Attempt, try_admit
from allot.core.budget import budget_stops
from allot.core.checks import widest_scope
from allot.core.cycle_cache import CycleCache, CycleResult
from allot.core.explain import Explanation, Reason
from allot.core.model import JobSpec
from allot.core.order import job_stream
from allot.core.pending_index import backlog, pending_index
from allot.core.placement.diagnose import explain_no_fit, needs_fields, screen
from allot.core.placement.select import choose_placement
from allot.core.plan import Plan, Reservation
from allot.core.policy import Blocking, Policy
from allot.core.policy.backfill import Hold, Shadow, find_shadow
from allot.core.preemption.phase import PreemptionPhase
from allot.core.snapshot import Snapshot
from allot.core.tail import PendingReasons, Tail

# Stop walking once the tail is settled (``allot.core.tail``); off, every job is taken one by
# one, which tests use to check that both give the same Plan.
SETTLE_TAIL = True
_UNPLACED = Explanation(Reason.NO_CAPACITY)  # placeholder until the end-of-cycle diagnosis
_UNSCREENED = object()


def _behind(preemptor: int) -> Explanation:
    return Explanation(Reason.BEHIND_PREEMPTOR, {"preemptor": preemptor})


class _Blocking:
    """Phase 5's state: the reason every later job shares, if any, and per queue."""

    def __init__(self) -> None:
        self.everyone: Explanation | None = None
        self.queues: dict[str, Explanation] = {}

    def reason(self, spec: JobSpec) -> Explanation | None:
        """Why ``spec`` waits behind a blocked head, if it does."""
        return self.everyone if self.everyone is not None else self.queues.get(spec.queue)

    def block_queue(self, spec: JobSpec) -> None:
        self.queues[spec.queue] = Explanation(
            Reason.BLOCKED_IN_QUEUE, {"queue": spec.queue, "head": spec.id}
        )


class _Backfill:
    """Phase 6's state: the head's reservation (shadow) and the capacity held for it."""

    def __init__(self, shadow: Shadow, hold: Hold) -> None:
        self.shadow = shadow
        self.hold = hold


class _Cycle:
    """One cycle: the phases, over their own state; ``schedule`` is its only user."""

    def __init__(self, snap: Snapshot, policy: Policy, now: float, jobs: Sequence[JobSpec]):
        self.snap = snap
        self.policy = policy
        self.now = now
        self.jobs = jobs
        self.result = CycleResult()
        self.cache = CycleCache(widest_scope(snap.checks))
        self.index = index = pending_index(snap, policy, jobs)
        self.preemption = PreemptionPhase(
            snap, policy, now, self.cache, self.result, jobs, lambda: backlog(snap, index)
        )
        self.blocking = _Blocking()
        self.backfill: _Backfill | None = None
        self.tail = Tail({}, {})
        self.everyone_blocked = False  # the walk stopped behind a head that blocks everyone
        self.known_queues = (
            ", ".join(q.name for q in snap.quota.config.queues) if snap.quota else ""
        )

    # ---------------------------------------------------------------- phases 2-5

    def run(self) -> None:
        snap, pending, screened = self.snap, self.result.pending, self.snap.screened
        index = self.index
        decision, nominated = index.decision, snap.nominated
        tail = Tail(index.counts, index.runtimes)
        self.tail = tail
        before = self._state()
        memo, unplaced, freed = tail.memo, self.result.unplaced, self.preemption.no_node_freed
        # A job that could not start gets the same verdict after any later change but one:
        # behind a reservation's hold (``allot.core.tail``). Where no reservation can come,
        # the walk leaves out the later jobs of a key so settled.
        policy = self.policy
        if (
            SETTLE_TAIL
            and policy.blocking is Blocking.BEST_EFFORT
            and (not policy.queue_fair or snap.quota is None)
            and index.skips()
        ):
            tail.dropped = set()
        for spec in job_stream(snap, index, policy, tail.dropped):
            key = decision[spec.id]
            if memo and spec.id not in nominated:
                # A key already decided in this state: the same verdict, nothing to try.
                variant = self._variant(spec)
                representative = memo.get((key, variant))
                if representative is not None:
                    verdict = pending[representative]
                    pending[spec.id] = verdict
                    if verdict is _UNPLACED:
                        unplaced.append(spec)
                        if representative in freed:
                            freed[spec.id] = freed[representative]
                    if tail.took(key, variant, spec.id) and SETTLE_TAIL:
                        return
                    continue
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
            elif (blocked := self.blocking.reason(spec)) is not None:
                pending[spec.id] = blocked
            elif self.backfill is not None:
                self._backfill(spec, self.backfill)
            else:
                self._admit(spec)
            after = self._state()
            if after != before:
                before = after
                if self.blocking.everyone is not None and SETTLE_TAIL:
                    # Everyone behind waits for the head: nothing later can start.
                    self.everyone_blocked = True
                    return
                backfill = self.backfill
                tail.changed(
                    None if backfill is None else (self.now, backfill.shadow.reservation.start_time)
                )
                tail.took(key, None, None)
            elif (
                tail.took(
                    key,
                    self._variant(spec),
                    None if spec.id in nominated else spec.id,
                    pending[spec.id].reason is not Reason.BEHIND_RESERVATION,
                )
                and SETTLE_TAIL
            ):
                # Every job still to come is settled: explained on demand (``PendingReasons``).
                return

    def _state(self) -> tuple[int, ...]:
        """What the verdicts of later jobs depend on, as far as it changes within a cycle."""
        result, blocking = self.result, self.blocking
        return (
            len(result.starts),
            len(result.preemptions),
            len(result.reservations),
            len(self.preemption.holds.holders),
            len(blocking.queues),
            blocking.everyone is not None,
            self.backfill is not None,
        )

    def _variant(self, spec: JobSpec) -> bool | None:
        """Whether ``spec`` would outlast the reservation (None without one)."""
        if self.backfill is None:
            return None
        runtime = spec.expected_runtime
        return runtime is None or self.now + runtime > self.backfill.shadow.reservation.start_time

    def reasons(self) -> PendingReasons:
        """The Plan's explanations: the jobs taken, and the settled tail on demand."""
        explained = self.result.pending
        if self.everyone_blocked:
            return PendingReasons(
                explained, self.jobs, self.result.started_ids, self._blocked_reason()
            )
        memo, index = dict(self.tail.memo), self.index
        attained = dict(self.snap.attained)
        variant = self._variant

        def resolve(spec: JobSpec) -> Explanation:
            key = index.key_of(spec, attained.get(spec.id, 0.0))
            return explained[memo[(key, variant(spec))]]

        return PendingReasons(explained, self.jobs, self.result.started_ids, resolve)

    def _blocked_reason(self) -> Callable[[JobSpec], Explanation]:
        """Why a job behind a head that blocks everyone waits: screened out (per shape, as of
        this cycle), an unknown queue, or the head."""
        everyone = self.blocking.everyone
        assert everyone is not None
        snap, quota, known = self.snap, self.snap.quota, self.known_queues
        screened = {spec.shape: screen(snap, spec) for spec in self.index.shapes()}

        def resolve(spec: JobSpec) -> Explanation:
            reason = screened[spec.shape]
            if reason is None and quota is not None and not quota.knows(spec.queue):
                reason = Explanation(Reason.UNKNOWN_QUEUE, {"queue": spec.queue, "known": known})
            return everyone if reason is None else reason

        return resolve

    def _release_hold(self) -> None:
        if self.backfill is not None:
            self.backfill.hold.disengage()

    def _attempt(self, spec: JobSpec, *, held: bool) -> Attempt:
        """Phase 3: try to admit ``spec``; a job with the admission key of one that already
        failed in this view fails the same way without another try."""
        attempts = self.cache.attempts[held]
        key = self.cache.key(spec)
        known = attempts.get(key)
        if known is not None:
            return known
        result = self.result
        no_room, holds = self.cache.no_room[held], self.preemption.holds
        attempt = try_admit(self.snap, spec, self.now, no_room, result.undos, holds)
        if attempt.start is not None:
            result.starts.append(attempt.start)
            result.started_ids.add(spec.id)
            result.started_queues.add(spec.queue)
            self.preemption.started(spec, attempt.start.flavor)
        else:
            attempts[key] = attempt
        return attempt

    def _admit(self, spec: JobSpec) -> None:
        """Phase 3, and what follows when the job does not fit."""
        attempt = self._attempt(spec, held=False)
        if attempt.start is not None:
            return
        if self._waits(spec, attempt):
            return
        if attempt.blocked is not None:
            if self.preemption.no_node(spec):
                self._unplaced(spec)
            else:
                self.result.pending[spec.id] = attempt.blocked.explanation
            if self.policy.blocking is Blocking.STRICT:
                self.blocking.block_queue(spec)
            return
        self._block(spec, attempt)

    def _waits(self, spec: JobSpec, attempt: Attempt) -> bool:
        """After a failed attempt: True when ``spec`` waits behind a preemptor's held room or
        for preempted jobs (phase 4), with its explanation set. A nominated job behind another
        preemptor still keeps its own room if it can."""
        pending = self.result.pending
        if attempt.behind is not None and spec.id not in self.snap.nominated:
            pending[spec.id] = _behind(attempt.behind)
            return True
        if self.policy.preemption and self.preemption.preempt(spec, attempt, self._release_hold):
            return True
        if attempt.behind is not None:
            pending[spec.id] = _behind(attempt.behind)
            return True
        return False

    def _block(self, spec: JobSpec, attempt: Attempt) -> None:
        """Phase 5: ``spec`` found no room; the policy's blocking rule says what follows."""
        blocking = self.policy.blocking
        if blocking is Blocking.BACKFILL:
            # Phase 6: reserve.
            shadow = find_shadow(self.snap, spec, attempt.capacity_flavors, self.now)
            if shadow is not None:
                self.backfill = _Backfill(shadow, Hold(self.snap, shadow.holds))
                self.result.reservations.append(shadow.reservation)
                self.result.pending[spec.id] = self._reserved(spec, shadow.reservation)
                return
            self.blocking.everyone = Explanation(Reason.NO_RESERVATION, {"head": spec.id})
        elif blocking is Blocking.STRICT:
            if self.policy.queue_fair:
                self.blocking.block_queue(spec)
            else:
                self.blocking.everyone = Explanation(Reason.BLOCKED_BY_HEAD, {"head": spec.id})
        self._unplaced(spec)

    def _backfill(self, spec: JobSpec, backfill: _Backfill) -> None:
        """Start ``spec`` only where it cannot delay the reservation; explain it otherwise."""
        shadow, hold, cache, result = backfill.shadow, backfill.hold, self.cache, self.result
        runtime = spec.runtime_estimate if spec.runtime_estimate is not None else spec.time_limit
        # A job that ends before the head starts may use anything free; a longer one only what
        # the hold leaves.
        held = runtime is None or self.now + runtime > shadow.reservation.start_time
        key = (held, cache.key(spec))
        known = cache.backfill.get(key)
        if known is not None and known[0] == len(result.starts):
            result.pending[spec.id] = known[1]
            if known[1] is _UNPLACED:
                result.unplaced.append(spec)
            return
        if cache.key(spec) not in cache.attempts[held]:
            if held:
                hold.engage()
            else:
                hold.disengage()
        attempt = self._attempt(spec, held=held)
        if attempt.start is not None:
            return
        if self._waits(spec, attempt):
            return
        if attempt.blocked is not None and self.preemption.no_node(spec):
            reason = _UNPLACED
            result.unplaced.append(spec)
        elif attempt.blocked is not None:
            reason = attempt.blocked.explanation
        elif held and self._fits_without_hold(spec, attempt.capacity_flavors, hold):
            reason = Explanation(
                Reason.BEHIND_RESERVATION,
                {"head": shadow.reservation.job_id, "until": shadow.reservation.start_time},
            )
        else:
            reason = _UNPLACED
            result.unplaced.append(spec)
        result.pending[spec.id] = reason
        if not self.policy.preemption:
            # Same view and admission key: the same verdict until something new starts.
            cache.backfill[key] = (len(result.starts), reason)

    def _fits_without_hold(self, spec: JobSpec, flavors: list[str], hold: Hold) -> bool:
        """Would ``spec`` fit if nothing were held for the reservation? Cached per shape
        until the next start."""
        key = (spec.shape[0], tuple(flavors))
        starts = len(self.result.starts)
        cached = self.cache.fits_unheld.get(key)
        if cached is None or cached[0] != starts:
            hold.disengage()
            no_room = self.cache.no_room[False]
            fits = any(
                (spec.shape[0], f) not in no_room
                and choose_placement(self.snap, spec, f) is not None
                for f in flavors
            )
            cached = self.cache.fits_unheld[key] = (starts, fits)
        return cached[1]

    # ---------------------------------------------------------------- phase 7

    def _unplaced(self, spec: JobSpec) -> None:
        """Note a job that did not fit; ``explain_unplaced`` says why once the cycle is done."""
        self.result.unplaced.append(spec)
        self.result.pending[spec.id] = _UNPLACED

    def explain_unplaced(self) -> None:
        """Describe each job that did not fit against what is free after this cycle's starts,
        once per job shape."""
        self._release_hold()
        by_shape: dict[object, Explanation] = {}
        freed = self.preemption.no_node_freed
        for spec in self.result.unplaced:
            reason = by_shape.get(spec.shape)
            if reason is None:
                reason = by_shape[spec.shape] = explain_no_fit(self.snap, spec)
            freed_by = freed.get(spec.id)
            if freed_by is not None:
                # Its quota would be freed by preemption; no victim set frees a placement.
                reason = Explanation(reason.reason, {**reason.fields, "no_node_freed_by": freed_by})
            self.result.pending[spec.id] = reason

    def _reserved(self, spec: JobSpec, reservation: Reservation) -> Explanation:
        fields = needs_fields(spec, (reservation.flavor,))
        fields["at"] = reservation.start_time
        fields["nodes"] = ", ".join(dict.fromkeys(p.node for p in reservation.placement))
        return Explanation(Reason.RESERVED, fields)

    def restore(self) -> None:
        self._release_hold()
        undos = self.result.undos
        for undo in reversed(undos):
            undo()
        undos.clear()


def schedule(snapshot: Snapshot, pending: Sequence[JobSpec], policy: Policy, now: float) -> Plan:
    """Decide which pending jobs start now, where, which running jobs to preempt, and why the
    others wait.

    Pure: ``snapshot`` is edited during the cycle and restored before returning; the same
    snapshot, jobs, policy and time always give the same Plan.
    """
    # Budgets that preempt stop their jobs first; the cycle sees those jobs stopping.
    stops, unstop = budget_stops(snapshot, now)
    try:
        cycle = _Cycle(snapshot, policy, now, pending)
        try:
            # Phases 1-6.
            cycle.run()
            cycle.explain_unplaced()
        finally:
            # Phase 7.
            cycle.restore()
    finally:
        unstop()
    result = cycle.result
    starts, reservations = tuple(result.starts), tuple(result.reservations)
    return Plan(starts, reservations, cycle.reasons(), (*stops, *result.preemptions))
