"""The running jobs a cycle's preemptors may consider as victims, per flavor. A candidate is
preemptible, is not already stopping, runs on the flavor asked for, was not started by the
current cycle, and has run at least the minimum runtime of its queue and priority class (Slurm's
``PreemptExemptTime``; ``QuotaConfig.min_runtime``). The pool is built lazily once per cycle and
keeps cheap summaries (lowest priority per queue, highest attained-service level) that rule a
search out without sorting; ``invalidate`` after jobs are marked stopping or started.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress
from operator import not_

from allot.core.model import RunningJob
from allot.core.policy.ordering import las_level
from allot.core.preemption import Preemptor, las
from allot.core.preemption.search import preference
from allot.core.quota.config import WithinQueue
from allot.core.snapshot import Snapshot

VictimKey = tuple[str, tuple[object, ...], int, int]


@dataclass(frozen=True, slots=True)
class _Kept:
    """A candidate list kept on the snapshot for the next cycle (``CandidatePool.of``); its
    lists are never changed in place."""

    key: tuple[object, ...]
    sig: int
    jobs: list[RunningJob]
    ids: list[int]
    keys: list[int]


def _level_zero(job: RunningJob) -> int:
    return 0


def _rule_key(thresholds: Sequence[float]) -> object:
    """What victim levels depend on: the LAS rule (``las.LasRule``), or bare thresholds."""
    return thresholds if isinstance(thresholds, las.LasRule) else tuple(thresholds)


class CandidatePool:
    """Running jobs that could be victims (preemptible, not stopping), per flavor, in order of
    preference, with summaries that rule a search out cheaply. Built lazily once per cycle;
    ``invalidate`` after jobs are marked stopping."""

    def __init__(
        self,
        snap: Snapshot,
        now: float,
        thresholds: Sequence[float],
        fresh: set[int],
        fresh_queues: set[str],
        track_levels: bool,
    ) -> None:
        self.snap = snap
        self.now = now
        self.thresholds = thresholds
        self.fresh = fresh  # jobs started by the current cycle: never victims of it
        # Queues that admitted a job in the current cycle: their quota is not taken back in the
        # same cycle (admitting and reclaiming at once would only churn).
        self.fresh_queues = fresh_queues
        self.track_levels = track_levels  # only 2D-LAS needs the victims' levels
        self._by_flavor: dict[str, list[RunningJob]] = {}
        self._min_priority: dict[tuple[str, str], int] = {}  # (flavor, queue) -> lowest
        self._max_level: dict[str, int] = {}
        self._exempt: dict[tuple[str, int], float] = {}  # (queue, priority) -> seconds
        self._stale: set[str] = set()  # flavors whose list may hold jobs no longer possible
        self._levels: dict[int, int] = {}  # running job id -> its LAS level at ``now``
        self._sig_at_start = snap.running_sig  # built before the cycle starts anything
        self._stopping_at_start = len(snap.stopping)
        self._keys: dict[str, list[int]] = {}  # victim key codes, in step with ``_by_flavor``
        self._ids: dict[str, list[int]] = {}  # job ids, in step with ``_by_flavor``
        self._stopping_seen: dict[str, int] = {}  # stopping jobs when a list was last filtered

    def _min_runtime(self, job: RunningJob) -> float:
        tree = self.snap.quota
        if tree is None:
            return 0.0
        key = (job.spec.queue, job.spec.priority)
        seconds = self._exempt.get(key)
        if seconds is None:
            seconds = self._exempt[key] = tree.config.min_runtime(*key)
        return seconds

    def invalidate(self) -> None:
        """Jobs were marked stopping or started: the lists drop them when next read. The
        summaries stay: they only ever overstate what a search may find, never understate
        it, and the search checks every victim itself."""
        self._stale = set(self._by_flavor)

    def _possible(self, job: RunningJob, flavor: str) -> bool:
        return (
            job.flavor == flavor
            and job.stopping_until is None
            and job.spec.preemptible
            and job.spec.id not in self.fresh
            and self._served_min_runtime(job)
        )

    def _served_min_runtime(self, job: RunningJob) -> bool:
        seconds = self._min_runtime(job)
        return seconds <= 0 or self.now - job.start_time >= seconds

    def _summarise(self, flavor: str) -> None:
        """Lowest priority per queue and highest LAS level among possible victims, in one
        pass without sorting."""
        top: float | None = None  # the most attained service: levels rise with it
        track, now = self.track_levels, self.now
        for job in self.snap.running.values():
            if not self._possible(job, flavor):
                continue
            key = (flavor, job.spec.queue)
            lowest = self._min_priority.get(key)
            if lowest is None or job.spec.priority < lowest:
                self._min_priority[key] = job.spec.priority
            if track:
                attained = job.attained_at(now)
                if top is None or attained > top:
                    top = attained
        self._max_level[flavor] = -1 if top is None else las_level(top, self.thresholds)

    def level(self, job: RunningJob) -> int:
        """The LAS level ``job`` has reached by ``now`` (memoised for the cycle)."""
        found = self._levels.get(job.spec.id)
        if found is None:
            found = self._levels[job.spec.id] = las.level_of(job, self.now, self.thresholds)
        return found

    def of(self, flavor: str) -> list[RunningJob]:
        """Possible victims on ``flavor``, the one to preempt first first."""
        jobs = self._by_flavor.get(flavor)
        if jobs is not None and flavor in self._stale:
            self._stale.discard(flavor)
            stopping = self.snap.stopping
            if len(stopping) != self._stopping_seen.get(flavor):
                # Only jobs marked stopping leave a list (tested in C, by id): one started
                # after it was built is not in it, and what-if removals are put back before
                # it is read again. A sublist of a sorted list keeps its order: the same as
                # sorting again.
                keep = list(map(not_, map(stopping.__contains__, self._ids[flavor])))
                jobs = self._by_flavor[flavor] = list(compress(jobs, keep))
                self._keys[flavor] = list(compress(self._keys[flavor], keep))
                self._ids[flavor] = list(compress(self._ids[flavor], keep))
                self._stopping_seen[flavor] = len(stopping)
        if jobs is None:
            snap = self.snap
            # Until this cycle marks a job stopping, the list is that of the running jobs the
            # cycle started with (its own starts are never candidates): one built for the same
            # running jobs, time and levels in an earlier cycle is the same list.
            reusable = len(snap.stopping) == self._stopping_at_start
            # The LAS rule as a whole: another policy's protections give other victim levels.
            key = (flavor, self.now, _rule_key(self.thresholds), self.track_levels)
            kept = snap.victim_lists.get(flavor) if reusable else None
            if isinstance(kept, _Kept) and kept.key == key and kept.sig == self._sig_at_start:
                jobs, ids, keys = kept.jobs, kept.ids, kept.keys
            else:
                jobs = sorted(
                    (job for job in snap.running.values() if self._possible(job, flavor)),
                    key=preference,
                )
                ids = [j.spec.id for j in jobs]
                level = self.level if self.track_levels else _level_zero
                codes: dict[VictimKey, int] = {}
                keys = [
                    codes.setdefault(
                        (j.spec.queue, j.spec.shape, j.spec.priority, level(j)), len(codes)
                    )
                    for j in jobs
                ]
                if reusable:
                    snap.victim_lists[flavor] = _Kept(key, self._sig_at_start, jobs, ids, keys)
            self._by_flavor[flavor], self._ids[flavor], self._keys[flavor] = jobs, ids, keys
            self._stopping_seen[flavor] = len(snap.stopping)
        return jobs

    def keys(self, flavor: str) -> list[int]:
        """For each job of ``of(flavor)``, in step, a number standing for what a search's
        first look at it depends on (``VictimSearch.first_strategy``, but for the
        newer-equal-priority rule, which also reads its age): queue, shape, priority, LAS
        level (0 when the policy has no LAS). Equal numbers, equal keys."""
        self.of(flavor)
        return self._keys[flavor]

    def might_help(self, p: Preemptor) -> bool:
        """False when no strategy could possibly find a victim for ``p`` (a cheap test)."""
        if p.flavor not in self._max_level:
            self._summarise(p.flavor)
        tree = self.snap.quota
        root = None if tree is None else tree.cohort_root(p.spec.queue)
        if tree is not None and root is not None:
            # Reclaim and fair share only ever take from a queue of the cohort that borrows.
            needed = [fr for fr, amount in p.request.items() if amount > 0]
            if any(
                tree.borrowing(queue, fr) > 0
                for queue in tree.queues
                if queue != p.spec.queue and tree.cohort_root(queue) == root
                for fr in needed
            ):
                return True
        lowest = self._min_priority.get((p.flavor, p.spec.queue))
        if lowest is not None and lowest < p.spec.priority:
            return True
        newer_equal = p.rules.within_queue is WithinQueue.LOWER_OR_NEWER_EQUAL_PRIORITY
        if newer_equal and lowest is not None and lowest == p.spec.priority:
            return True
        if p.las_level is not None:
            return self._max_level[p.flavor] > p.las_level
        return False
