"""Phase 4 of the cycle: a pending job that does not fit looks for victims its queue's rules
and the policy allow (``finder``), and keeps the room it will get (``holds``).

State of the phase within one cycle: the preemptors' holds, the candidate pool, the queues
that already preempt (one preemptor per queue per cycle), and for each job whose allowed
victims would free its quota but no node, the strategies that would have (its explanation
says so). Verdicts are reused through the cycle's cache, keyed by the admission key plus the
queue, the priority and the LAS level, everything a search depends on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from allot.core.admission import Attempt
from allot.core.cycle_cache import CycleCache, CycleResult
from allot.core.explain import Explanation, Reason
from allot.core.model import JobId, JobSpec
from allot.core.placement.diagnose import accepted_flavors
from allot.core.policy import Policy
from allot.core.policy.ordering import las_level
from allot.core.preemption import Strategy
from allot.core.preemption.candidates import CandidatePool
from allot.core.preemption.finder import (
    Backlog,
    backlog_of,
    find_preemptions,
    fits_once_stopped,
    waiting_explanation,
)
from allot.core.preemption.holds import PreemptorHolds
from allot.core.preemption.las import LasRule
from allot.core.snapshot import Snapshot


class PreemptionPhase:
    """Phase 4 for one cycle (see the module docstring)."""

    def __init__(
        self,
        snap: Snapshot,
        policy: Policy,
        now: float,
        cache: CycleCache,
        result: CycleResult,
        jobs: Sequence[JobSpec],
        backlog: Callable[[], Backlog] | None = None,
    ) -> None:
        self.snap = snap
        self.policy = policy
        self.now = now
        self.cache = cache
        self.result = result
        self.jobs = jobs
        self.holds = PreemptorHolds(snap)  # room kept for preemptors waiting for victims
        self.pool = CandidatePool(
            snap,
            now,
            LasRule.of(policy),
            result.started_ids,
            result.started_queues,
            Strategy.LAS in policy.preemption,
        )
        self.preempted_for: set[str] = set()  # queues that already preempt this cycle
        self.no_node_freed: dict[JobId, str] = {}  # job -> strategies, for its reason
        self._backlog: Backlog | None = None  # what the pending jobs ask for; on first use
        # Only fair share weighs the backlog, and only between queues with quotas; ``backlog``
        # computes it faster than the jobs.
        self._backlog_source = backlog
        if Strategy.FAIR_SHARE not in policy.preemption or snap.quota is None:
            self._backlog = {}

    def key(self, spec: JobSpec) -> object:
        """What a search for ``spec`` depends on."""
        level = None
        if Strategy.LAS in self.policy.preemption:
            level = las_level(self.snap.attained.get(spec.id, 0.0), self.policy.las_thresholds)
        return (self.cache.key(spec), spec.queue, spec.priority, level)

    def preempt(self, spec: JobSpec, attempt: Attempt, release_hold: Callable[[], None]) -> bool:
        """True when ``spec`` waits for preempted jobs (new or already stopping), with its
        explanation set. ``release_hold`` lifts the backfill hold before a victim search."""
        snap, cache, pending = self.snap, self.cache, self.result.pending
        key = self.key(spec)
        if key in cache.preemption:
            verdict = cache.preemption[key]
            if verdict is not None:
                pending[spec.id] = verdict
            return verdict is not None
        waiting_on = next(
            (
                f
                for f in accepted_flavors(snap, spec)
                if f not in attempt.refused and fits_once_stopped(snap, spec, f, self.holds)
            ),
            None,
        )
        if waiting_on is not None:
            if spec.id in snap.nominated:
                # Its victims are stopping: keep the room it counts on for it.
                self.reserve(spec, waiting_on)
            waiting = waiting_explanation(snap, waiting_on, self.now)
            cache.preemption[key] = waiting
            pending[spec.id] = waiting
            return True
        if spec.queue in self.preempted_for:
            return False
        release_hold()
        chosen = find_preemptions(
            snap,
            spec,
            self.policy,
            self.now,
            self.pool,
            self.holds,
            backlog=self._pending_backlog(),
            quota_check=attempt.quota_block is not None,
            refused=attempt.refused,
        )
        if chosen.flavor is None:
            cache.preemption[key] = None
            if chosen.frees_quota is not None:
                cache.no_node[key] = ", ".join(str(s) for s in chosen.frees_quota)
            return False
        flavor, found = chosen.flavor, chosen.preemptions
        for preemption in found:
            self.result.undos.append(snap.mark_stopping(preemption.victim, preemption.stop_by))
            self.holds.stopping(preemption.victim)
        self.reserve(spec, flavor)
        self.pool.invalidate()
        self.result.preemptions.extend(found)
        self.preempted_for.add(spec.queue)
        pending[spec.id] = Explanation(
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
            source = self._backlog_source
            self._backlog = backlog_of(self.snap, self.jobs) if source is None else source()
        return self._backlog

    def no_node(self, spec: JobSpec) -> bool:
        """True when ``spec``'s search found no victims although the victims it may take
        would free its quota: no set of them makes a placement. Remembers the strategies for
        its explanation."""
        verdict = self.cache.no_node.get(self.key(spec))
        if verdict is not None:
            self.no_node_freed[spec.id] = verdict
        return verdict is not None

    def reserve(self, spec: JobSpec, flavor: str) -> None:
        """Keep what ``spec`` needs once its victims are gone: its quota request and its
        placement hold (``PreemptorHolds.hold``), so no later job takes that room and the
        preemptor need not preempt again."""
        undo = self.holds.hold(spec, flavor)
        if undo is not None:
            self.result.undos.append(undo)

    def started(self, spec: JobSpec, flavor: str) -> None:
        """``spec`` started on ``flavor`` in this cycle: keep the holds' view and the candidate
        pool in step."""
        self.holds.started(spec, flavor)
        self.pool.invalidate()
