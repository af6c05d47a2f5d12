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

from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet

from allot.core.model import MILLI_PER_GPU, RunningJob
from allot.core.placement.rank import best_device
from allot.core.placement.select import choose_placement
from allot.core.preemption import Preemptor, Strategy, fair_share, las, reclaim, within_queue
from allot.core.quota.config import WithinQueue
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
            # What does not change while victims are removed is computed once per search:
            # whether the preemptor's queue may reclaim, and its share after admission.
            if Strategy.RECLAIM in allowed and reclaim.preemptor_qualifies(tree, preemptor):
                checks.append(
                    (
                        Strategy.RECLAIM,
                        lambda v: (
                            v.spec.queue not in settled
                            and reclaim.victim_qualifies(tree, preemptor, v)
                        ),
                    )
                )
            if Strategy.FAIR_SHARE in allowed and rules.fair_share:
                mine = tree.dominant_share(preemptor.spec.queue, preemptor.request)
                checks.append(
                    (
                        Strategy.FAIR_SHARE,
                        lambda v: (
                            v.spec.queue not in settled
                            and fair_share.allows(tree, preemptor, v, mine)
                        ),
                    )
                )
        if Strategy.LAS in allowed and preemptor.las_level is not None:
            checks.append((Strategy.LAS, lambda v: las.allows(preemptor, v, thresholds)))
        self.checks = checks

    def first_strategy(
        self, victim: RunningJob, cache: dict[object, Strategy | None]
    ) -> Strategy | None:
        """``strategy`` before any victim is removed: then the answer depends only on the
        victim's queue, shape, priority and attained-service level, so it is cached."""
        level = (
            las.level_of(victim, self.p.now, self.thresholds) if self.p.las_level is not None else 0
        )
        key = (victim.spec.queue, victim.spec.shape, victim.spec.priority, level)
        if key not in cache:
            cache[key] = self.strategy(victim)
        return cache[key]

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

    def invalidate(self) -> None:
        """Forget everything (jobs were marked stopping)."""
        self._by_flavor.clear()
        self._min_priority.clear()
        self._max_level.clear()

    def _summarise(self, flavor: str) -> None:
        """Lowest priority per queue and highest LAS level among possible victims, in one
        pass without sorting."""
        level = -1
        for job in self.snap.running.values():
            if job.flavor != flavor or job.stopping_until is not None:
                continue
            if not job.spec.preemptible or job.spec.id in self.fresh:
                continue
            key = (flavor, job.spec.queue)
            lowest = self._min_priority.get(key)
            if lowest is None or job.spec.priority < lowest:
                self._min_priority[key] = job.spec.priority
            if self.track_levels:
                level = max(level, las.level_of(job, self.now, self.thresholds))
        self._max_level[flavor] = level

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
        return jobs

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
        if p.las_level is not None:
            return self._max_level[p.flavor] > p.las_level
        return False


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
    first: dict[object, Strategy | None] = {}
    everyone = [job for job in pool.of(p.flavor) if search.first_strategy(job, first) is not None]
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
    # Each candidate with the devices it holds on each node.
    by_node: dict[int, dict[int, int]] = {}  # node -> job id -> devices held there
    jobs_by_id = {job.spec.id: job for job in everyone}
    for job in everyone:
        for where in job.placement:
            i = snap.node_index[where.node]
            if snap.schedulable(i):
                devices = by_node.setdefault(i, {})
                devices[job.spec.id] = devices.get(job.spec.id, 0) + len(where.devices)
    # Visit nodes by an optimistic count of the victims they need (freeing every device a
    # victim touches), and stop once no node left can beat the best set found.
    need = p.spec.tasks[0].gpu_milli // MILLI_PER_GPU
    ranked: list[tuple[int, int]] = []
    for i, held in by_node.items():
        bound = _at_least(need - snap.whole_free[i], held.values())
        if bound is not None:
            ranked.append((bound, i))
    ranked.sort()
    best: Victims | None = None
    best_cost: tuple[int, int, float] | None = None
    for bound, i in ranked:
        if best_cost is not None and bound > best_cost[0]:
            break
        held = by_node[i]
        local = sorted(
            (jobs_by_id[j] for j in held), key=lambda j: (-held[j.spec.id], preference(j))
        )
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


def _at_least(missing: int, held: Iterable[int]) -> int | None:
    """The fewest victims, taking the largest holders first, that could free ``missing``
    devices (0 when none are missing); None when even all of them could not."""
    count = 0
    for devices in sorted(held, reverse=True):
        if missing <= 0:
            break
        missing -= devices
        count += 1
    return count if missing <= 0 else None
