"""Victim selection: the smallest set of running jobs whose removal lets the preemptor in.

Order of preference among allowed candidates: lowest priority first, then checkpointable
jobs (they lose least), then the most recently started (least work lost), then job id.

- A single-task preemptor is tried node by node: on each node, candidates are removed
  (largest share of that node first, then by preference) until the task fits there, then more
  are removed anywhere if the queue's quota still blocks; then every victim that is not needed
  is put back. The node whose set is smallest wins (ties: lower highest priority among the
  victims, then less work lost).
- A gang is placed greedily: candidates are removed in preference order until the whole job
  fits (quota and placement), then unneeded victims are put back, most valuable first.

Strategies are checked at the moment a victim is removed, against the what-if state. Every
check is monotone in the other victims (a victim allowed with some others gone is allowed with
them present), so putting victims back never makes the set illegal. The snapshot is restored
before returning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet

from allot.core.model import MILLI_PER_GPU, RunningJob
from allot.core.placement.rank import best_device
from allot.core.placement.select import choose_placement
from allot.core.preemption import Preemptor, Strategy, fair_share, las, reclaim, within_queue
from allot.core.quota.config import ReclaimWithinCohort, WithinQueue
from allot.core.snapshot import Snapshot, Undo

Victims = list[tuple[RunningJob, Strategy]]


def preference(job: RunningJob) -> tuple[int, bool, float, int]:
    """Sort key: the job to preempt first comes first."""
    return (job.spec.priority, not job.spec.checkpointable, -job.start_time, job.spec.id)


def _lost_work(victims: Victims, now: float) -> float:
    return sum(
        (now - v.start_time) * v.spec.total.gpu_milli
        for v, _ in victims
        if not v.spec.checkpointable
    )


class VictimSearch:
    """One preemptor's search over one flavor."""

    def __init__(
        self,
        snap: Snapshot,
        preemptor: Preemptor,
        thresholds: Sequence[float],
        settled: AbstractSet[str] = frozenset(),
    ) -> None:
        self.snap = snap
        self.p = preemptor
        self.thresholds = thresholds
        self.undos: list[Undo] = []
        # Only the strategies that can apply to this preemptor are asked, in this order.
        tree, rules, allowed = snap.quota, preemptor.rules, preemptor.strategies
        checks: list[tuple[Strategy, Callable[[RunningJob], bool]]] = []
        if Strategy.WITHIN_QUEUE in allowed and rules.within_queue is WithinQueue.LOWER_PRIORITY:
            checks.append((Strategy.WITHIN_QUEUE, lambda v: within_queue.allows(preemptor, v)))
        if tree is not None and tree.cohort_root(preemptor.spec.queue) is not None:
            reclaims = rules.reclaim_within_cohort is not ReclaimWithinCohort.NEVER
            if Strategy.RECLAIM in allowed and reclaims:
                checks.append(
                    (
                        Strategy.RECLAIM,
                        lambda v: (
                            v.spec.queue not in settled and reclaim.allows(tree, preemptor, v)
                        ),
                    )
                )
            if Strategy.FAIR_SHARE in allowed and rules.fair_share:
                checks.append(
                    (
                        Strategy.FAIR_SHARE,
                        lambda v: (
                            v.spec.queue not in settled and fair_share.allows(tree, preemptor, v)
                        ),
                    )
                )
        if Strategy.LAS in allowed and preemptor.las_level is not None:
            checks.append((Strategy.LAS, lambda v: las.allows(preemptor, v, thresholds)))
        self.checks = checks

    def strategy(self, victim: RunningJob) -> Strategy | None:
        """The first strategy that allows taking ``victim`` now, if any."""
        for strategy, allows in self.checks:
            if allows(victim):
                return strategy
        return None

    def quota_ok(self) -> bool:
        tree = self.snap.quota
        return tree is None or tree.block(self.p.spec.queue, self.p.request) is None

    def fits(self) -> bool:
        return (
            self.quota_ok() and choose_placement(self.snap, self.p.spec, self.p.flavor) is not None
        )

    def fits_on(self, i: int) -> bool:
        """True when the preemptor's single task fits node ``i`` as it is now."""
        snap, task = self.snap, self.p.spec.tasks[0]
        if snap.cpu_free[i] < task.cpu_milli or snap.mem_free[i] < task.memory_mib:
            return False
        if task.gpu_milli >= MILLI_PER_GPU:
            return snap.whole_free[i] >= task.gpu_milli // MILLI_PER_GPU
        if task.gpu_milli > 0:
            return best_device(snap.dev_free[i], task.gpu_milli) is not None
        return True

    def remove(self, victims: Victims, job: RunningJob) -> bool:
        """Take ``job`` out (what-if) if a strategy allows it; True when taken."""
        if job.spec.id not in self.snap.running:
            return False
        reason = self.strategy(job)
        if reason is None:
            return False
        self.undos.append(self.snap.finish(job.spec.id))
        victims.append((job, reason))
        return True

    def put_back_unneeded(self, victims: Victims, still_fits: Callable[[], bool]) -> Victims:
        """Re-add every victim the preemptor does not need, the most valuable first."""
        kept: Victims = []
        for job, reason in sorted(victims, key=lambda v: preference(v[0]), reverse=True):
            undo = self.snap.start(job)
            if still_fits():
                self.undos.append(undo)
            else:
                undo()
                kept.append((job, reason))
        return kept

    def restore(self) -> None:
        for undo in reversed(self.undos):
            undo()
        self.undos.clear()


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
    ) -> None:
        self.snap = snap
        self.now = now
        self.thresholds = thresholds
        self.fresh = fresh  # jobs started by the current cycle: never victims of it
        # Queues that admitted a job in the current cycle: their quota is not taken back in the
        # same cycle (admitting and reclaiming at once would only churn).
        self.fresh_queues = fresh_queues
        self._by_flavor: dict[str, list[RunningJob]] = {}
        self._min_priority: dict[tuple[str, str], int] = {}  # (flavor, queue) -> lowest
        self._max_level: dict[str, int] = {}

    def invalidate(self) -> None:
        """Forget everything (jobs were marked stopping)."""
        self._by_flavor.clear()
        self._min_priority.clear()
        self._max_level.clear()

    def of(self, flavor: str) -> list[RunningJob]:
        """Possible victims on ``flavor``, the one to preempt first first."""
        jobs = self._by_flavor.get(flavor)
        if jobs is None:
            jobs = sorted(
                (
                    job
                    for job in self.snap.running.values()
                    if job.flavor == flavor
                    and job.stopping_until is None
                    and job.spec.preemptible
                    and job.spec.id not in self.fresh
                ),
                key=preference,
            )
            self._by_flavor[flavor] = jobs
            level = 0
            for job in jobs:
                key = (flavor, job.spec.queue)
                self._min_priority[key] = min(
                    self._min_priority.get(key, job.spec.priority), job.spec.priority
                )
                level = max(level, las.level_of(job, self.now, self.thresholds))
            self._max_level[flavor] = level
        return jobs

    def might_help(self, p: Preemptor) -> bool:
        """False when no strategy could possibly find a victim for ``p`` (a cheap test)."""
        if not self.of(p.flavor):
            return False
        tree = self.snap.quota
        if tree is not None and tree.cohort_root(p.spec.queue) is not None:
            return True  # reclaim and fair share depend on borrowing; let the search decide
        lowest = self._min_priority.get((p.flavor, p.spec.queue))
        if lowest is not None and lowest < p.spec.priority:
            return True
        return p.las_level is not None and self._max_level[p.flavor] > p.las_level


def _on_node(
    search: VictimSearch, i: int, local: list[RunningJob], everyone: list[RunningJob]
) -> Victims | None:
    victims: Victims = []
    for job in local:
        if search.fits_on(i):
            break
        search.remove(victims, job)
    if not search.fits_on(i):
        return None
    for job in everyone:
        if search.quota_ok():
            break
        search.remove(victims, job)
    if not search.fits():
        return None
    return search.put_back_unneeded(victims, search.fits)


def choose_victims(snap: Snapshot, p: Preemptor, pool: CandidatePool) -> Victims | None:
    """The victims that make room for ``p`` on its flavor, or None when no allowed set does.
    Leaves ``snap`` unchanged."""
    search = VictimSearch(snap, p, pool.thresholds, pool.fresh_queues)
    if not search.checks or not pool.might_help(p):
        return None
    # A job no strategy allows now is never allowed once others are gone (the checks are
    # monotone), so the search only ever considers the jobs allowed at the start.
    everyone = [job for job in pool.of(p.flavor) if search.strategy(job) is not None]
    if not everyone:
        return None
    if len(p.spec.tasks) > 1:
        try:
            victims: Victims = []
            for job in everyone:
                if search.fits():
                    break
                search.remove(victims, job)
            if not victims or not search.fits():
                return None
            return search.put_back_unneeded(victims, search.fits)
        finally:
            search.restore()
    by_node: dict[int, list[RunningJob]] = {}
    for job in everyone:
        for where in job.placement:
            i = snap.node_index[where.node]
            if snap.schedulable(i):
                by_node.setdefault(i, []).append(job)
    best: Victims | None = None
    best_cost: tuple[int, int, float] | None = None
    for i in sorted(by_node):

        def held_here(job: RunningJob, i: int = i) -> int:
            return -sum(
                len(w.devices) * w.gpu_milli_per_device
                for w in job.placement
                if snap.node_index[w.node] == i
            )

        local = sorted(dict.fromkeys(by_node[i]), key=lambda j: (held_here(j), preference(j)))
        try:
            found = _on_node(search, i, local, everyone)
        finally:
            search.restore()
        if not found:
            continue
        cost = (len(found), max(v.spec.priority for v, _ in found), _lost_work(found, p.now))
        if best_cost is None or cost < best_cost:
            best, best_cost = found, cost
    return best
