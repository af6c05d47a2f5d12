"""The what-if state of one preemptor's victim search, and how victim sets compare.

A ``VictimSearch`` removes candidates from the snapshot (and from the quota view held for
waiting preemptors, which it keeps in step) and puts them back; ``restore`` undoes every edit.
A victim is taken only when one of the strategies the preemptor's queue and the policy allow
permits it at that moment. Order of preference among candidates: lowest priority first, then
checkpointable jobs (they lose least), then the most recently started (least work lost), then
job id; a set is better than another when it has fewer victims, then fewer of the preemptor's
own queue, then a lower highest priority among them, then less work lost (``cost``). Within a
search, candidates of other queues come first, the queues furthest above their share first,
the preemptor's own last (``VictimSearch.rank``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet

from allot.core.model import MILLI_PER_GPU, NodeState, RunningJob
from allot.core.placement.rank import best_device
from allot.core.placement.select import choose_placement
from allot.core.preemption import Preemptor, Strategy, las, reclaim, within_queue
from allot.core.preemption.fair_share import FairShare
from allot.core.quota import request_of
from allot.core.quota.config import WithinQueue
from allot.core.quota.tree import QuotaTree
from allot.core.snapshot import Snapshot, Undo

Victims = list[tuple[RunningJob, Strategy]]
Cost = tuple[int, int, int, float]


def preference(job: RunningJob) -> tuple[int, bool, float, int]:
    """Sort key: the job to preempt first comes first."""
    return (job.spec.priority, not job.spec.checkpointable, -job.start_time, job.spec.id)


def cost(victims: Victims, now: float, queue: str) -> Cost:
    """How bad a victim set is: its size, then how many are the preemptor's own (``queue``'s:
    other queues' borrowed jobs go first), its highest priority, the work it loses."""
    lost = sum(
        (now - v.start_time) * v.spec.total.gpu_milli
        for v, _ in victims
        if not v.spec.checkpointable
    )
    own = sum(1 for v, _ in victims if v.spec.queue == queue)
    return (len(victims), own, max((v.spec.priority for v, _ in victims), default=0), lost)


class VictimSearch:
    """One preemptor's search over one flavor."""

    def __init__(
        self,
        snap: Snapshot,
        preemptor: Preemptor,
        thresholds: Sequence[float],
        settled: AbstractSet[str] = frozenset(),
        future: QuotaTree | None = None,
    ) -> None:
        self.snap = snap
        self.p = preemptor
        self.thresholds = thresholds
        self.future = future
        self.undos: list[Undo] = []
        self.own: set[int] = set()  # victims taken now within the preemptor's queue
        # Only the strategies that can apply to this preemptor are asked, in this order. Each
        # is a rule about the victim plus, for reclaim, a gate on the preemptor's side that is
        # checked at the moment of each removal: taking the queue's own lower-priority jobs can
        # bring it back within its quota, and that makes it eligible to reclaim.
        tree, rules, allowed = snap.quota, preemptor.rules, preemptor.strategies
        checks: list[tuple[Strategy, Callable[[RunningJob], bool]]] = []
        if Strategy.WITHIN_QUEUE in allowed and rules.within_queue is not WithinQueue.NEVER:
            checks.append((Strategy.WITHIN_QUEUE, lambda v: within_queue.allows(preemptor, v)))
        self.reclaims = False
        if tree is not None and tree.cohort_root(preemptor.spec.queue) is not None:
            if Strategy.RECLAIM in allowed and reclaim.may_reclaim(preemptor):
                self.reclaims = True
                checks.append(
                    (
                        Strategy.RECLAIM,
                        lambda v: (
                            v.spec.queue not in settled
                            and reclaim.victim_qualifies(tree, preemptor, v)
                            and self._reclaim_gate(v)
                        ),
                    )
                )
            if Strategy.BORROW_WITHIN_COHORT in allowed and reclaim.may_borrow_while_preempting(
                preemptor
            ):
                checks.append(
                    (
                        Strategy.BORROW_WITHIN_COHORT,
                        lambda v: (
                            v.spec.queue not in settled
                            and reclaim.borrows_while_preempting(tree, preemptor, v)
                        ),
                    )
                )
            if Strategy.FAIR_SHARE in allowed and rules.fair_share:
                fair = FairShare(tree, preemptor)
                checks.append(
                    (
                        Strategy.FAIR_SHARE,
                        lambda v: v.spec.queue not in settled and fair.allows(v),
                    )
                )
        if Strategy.LAS in allowed and preemptor.las_level is not None:
            checks.append((Strategy.LAS, lambda v: las.allows(preemptor, v, thresholds)))
        self.checks = checks
        self._optimistic = False  # the gate as it would be once every own candidate is gone
        self._could_reclaim: dict[int, bool] = {}  # per side node, in that state
        # Candidates of other queues first, the queues furthest above their share first; the
        # preemptor's own jobs last (Kueue's candidate order, by share as its fair sharing).
        self._shares: dict[str, tuple[float, float]] = {}

    def rank(self, job: RunningJob) -> tuple[object, ...]:
        """Sort key of candidates for this preemptor: the one to take first first."""
        return (*self.place(job.spec.queue), *preference(job))

    def place(self, queue: str) -> tuple[int, tuple[float, float]]:
        """The first part of ``rank`` for jobs of ``queue``: other queues first, the furthest
        above their share first; the preemptor's own last."""
        if queue == self.p.spec.queue:
            return (1, (0.0, 0.0))
        share = self._shares.get(queue)
        if share is None:
            tree = self.snap.quota
            share = self._shares[queue] = (
                (0.0, 0.0) if tree is None else tree.dominant_share_order(queue)
            )
        return (0, (-share[0], -share[1]))

    def _reclaim_gate(self, victim: RunningJob) -> bool:
        tree = self.snap.quota
        if not self._optimistic:
            return reclaim.preemptor_qualifies(tree, self.p, victim)
        sides = None if tree is None else tree.sides(self.p.spec.queue, victim.spec.queue)
        return sides is not None and self._could_reclaim.get(id(sides[0]), False)

    def plan_candidates(self, jobs: Iterable[RunningJob]) -> None:
        """Decide, for the optimistic first look (``first_strategy``), whether the preemptor's
        side towards each other queue could reclaim once its candidates within the queue
        (among ``jobs``) were all gone."""
        tree = self.snap.quota
        if not self.reclaims or tree is None:
            return
        jobs = list(jobs)
        within = [allows for strategy, allows in self.checks if strategy is Strategy.WITHIN_QUEUE]
        own = [job for job in jobs if within and within[0](job)]
        others = {job.spec.queue: job for job in jobs if job.spec.queue != self.p.spec.queue}
        undos = [self._take(job) for job in own if job.spec.id in self.snap.running]
        try:
            for job in others.values():
                sides = tree.sides(self.p.spec.queue, job.spec.queue)
                if sides is not None and id(sides[0]) not in self._could_reclaim:
                    gate = reclaim.preemptor_qualifies(tree, self.p, job)
                    self._could_reclaim[id(sides[0])] = gate
        finally:
            for undo in reversed(undos):
                undo()

    def first_strategy(
        self, victim: RunningJob, cache: dict[object, Strategy | None]
    ) -> Strategy | None:
        """The strategy that could allow ``victim``, asked before any victim is removed and
        optimistically for reclaim (as if the queue's own candidates were gone): then the
        answer depends only on the victim's queue, shape, priority, attained-service level
        (and, for the newer-equal-priority rule, its age), so it is cached. A job refused here
        is refused in every later state of the search."""
        level = (
            las.level_of(victim, self.p.now, self.thresholds) if self.p.las_level is not None else 0
        )
        key: tuple[object, ...] = (
            victim.spec.queue,
            victim.spec.shape,
            victim.spec.priority,
            level,
        )
        if self.p.rules.within_queue is WithinQueue.LOWER_OR_NEWER_EQUAL_PRIORITY:
            key = (*key, victim.spec.submit_time, victim.spec.id)
        if key not in cache:
            self._optimistic = True
            try:
                cache[key] = self.strategy(victim)
            finally:
                self._optimistic = False
        return cache[key]

    def strategy(self, victim: RunningJob) -> Strategy | None:
        """The first strategy that allows taking ``victim`` now, if any."""
        for strategy, allows in self.checks:
            if allows(victim):
                return strategy
        return None

    def legal(self, victims: Victims) -> bool:
        """True when every victim still taken is allowed in the state as it is now: a reclaim
        victim needs the preemptor's side still eligible (other checks do not depend on the
        rest of the set)."""
        tree = self.snap.quota
        return all(
            reclaim.preemptor_qualifies(tree, self.p, v)
            for v, s in victims
            if s is Strategy.RECLAIM
        )

    def quota_ok(self) -> bool:
        """True when the preemptor's request fits its queue's quota now and in the view held
        for waiting preemptors, and, when it takes jobs of its own queue, the queue would not
        use more of any flavor-resource than its nominal quota."""
        queue, request = self.p.spec.queue, self.p.request
        tree, future = self.snap.quota, self.future
        if tree is not None and not tree.fits(queue, request):
            return False
        if future is not None and not future.fits(queue, request):
            return False
        return not self.own or self._no_more_borrowing()

    def _no_more_borrowing(self) -> bool:
        # A swap within a queue happens on its own quota only: on borrowed quota the
        # preemptor would be a fair-share target, and jobs would go round (docs/quotas.md).
        tree = self.snap.quota
        node = None if tree is None else tree.queues.get(self.p.spec.queue)
        if node is None:
            return True
        return all(
            node.usage.get(fr, 0) + amount <= node.subtree.get(fr, 0)
            for fr, amount in self.p.request.items()
            if amount > 0 and fr in node.quotas
        )

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

    def _take(self, job: RunningJob) -> Undo:
        """Remove ``job`` (what-if) from the snapshot and the held view; the undo re-adds it."""
        undo_snap = self.snap.finish(job.spec.id)
        future = self.future
        if future is None:
            return undo_snap
        queue, request = job.spec.queue, request_of(job.spec, job.flavor)
        future.remove(queue, request)

        def undo() -> None:
            future.add(queue, request)
            undo_snap()

        return undo

    def _give(self, job: RunningJob) -> Undo:
        """Put ``job`` back (what-if); the undo takes it out again."""
        undo_snap = self.snap.start(job)
        future = self.future
        if future is None:
            return undo_snap
        queue, request = job.spec.queue, request_of(job.spec, job.flavor)
        future.add(queue, request)

        def undo() -> None:
            future.remove(queue, request)
            undo_snap()

        return undo

    def take_until(
        self,
        victims: Victims,
        jobs: Iterable[RunningJob],
        done: Callable[[], bool],
        enablers: Iterable[RunningJob] = (),
    ) -> None:
        """Remove ``jobs`` in order (each only if a strategy allows it now) until ``done``.
        A job refused while the preemptor's queue could not yet reclaim is asked again after
        each job taken within the queue, which may have made it eligible; when ``jobs`` run
        out with such jobs still refused, the queue's own candidates among ``enablers`` are
        taken, one at a time, to make it eligible (put back later if not needed)."""
        waiting: list[RunningJob] = []

        def retry() -> bool:
            for other in list(waiting):
                if done():
                    return True
                if self.remove(victims, other):
                    waiting.remove(other)
            return done()

        for job in jobs:
            if done():
                return
            if not self.remove(victims, job):
                waiting.append(job)
                continue
            if waiting and victims[-1][1] is Strategy.WITHIN_QUEUE and self.reclaims and retry():
                return
        if not waiting or not self.reclaims or done():
            return
        for job in enablers:
            if job.spec.queue != self.p.spec.queue or job.spec.id not in self.snap.running:
                continue
            if self.remove(victims, job) and victims[-1][1] is Strategy.WITHIN_QUEUE and retry():
                return
            if not waiting:
                return

    def remove(self, victims: Victims, job: RunningJob) -> bool:
        """Take ``job`` out (what-if) if a strategy allows it; True when taken."""
        if job.spec.id not in self.snap.running:
            return False
        reason = self.strategy(job)
        if reason is None:
            return False
        undo = self._take(job)
        if reason is Strategy.WITHIN_QUEUE:
            own, job_id = self.own, job.spec.id
            own.add(job_id)

            def undo_own() -> None:
                own.discard(job_id)
                undo()

            self.undos.append(undo_own)
        else:
            self.undos.append(undo)
        victims.append((job, reason))
        return True

    def put_back_unneeded(self, victims: Victims, still_fits: Callable[[], bool]) -> Victims:
        """Re-add every victim the preemptor does not need, the most valuable first."""
        kept: Victims = []
        ordered = sorted(victims, key=lambda v: self.rank(v[0]), reverse=True)
        for k, (job, reason) in enumerate(ordered):
            undo = self._give(job)
            was_own = job.spec.id in self.own
            self.own.discard(job.spec.id)
            if still_fits() and self.legal(kept + ordered[k + 1 :]):
                self.undos.append(undo)
            else:
                undo()
                if was_own:
                    self.own.add(job.spec.id)
                kept.append((job, reason))
        return kept

    def top_up_quota(self, victims: Victims, everyone: Iterable[RunningJob]) -> bool:
        """Remove more candidates until the quota fits, the largest first (the fewest victims
        cover the shortfall; those not needed are put back later), then in preference order;
        True when it fits."""
        if self.quota_ok():
            return True
        by_size = sorted(everyone, key=lambda j: (-j.spec.total.gpu_milli, self.rank(j)))
        self.take_until(victims, by_size, self.quota_ok, by_size)
        return self.quota_ok()

    def restore(self) -> None:
        for undo in reversed(self.undos):
            undo()
        self.undos.clear()


def holders_by_node(snap: Snapshot, jobs: Iterable[RunningJob]) -> dict[int, dict[int, int]]:
    """For each schedulable node, the devices each of ``jobs`` holds there (node -> job id ->
    devices)."""
    by_node: dict[int, dict[int, int]] = {}
    index, state, up = snap.node_index, snap.state, NodeState.UP  # ``schedulable``, inlined
    for job in jobs:
        job_id = job.spec.id
        for where in job.placement:
            i = index[where.node]
            if state[i] is up:
                devices = by_node.get(i)
                if devices is None:
                    devices = by_node[i] = {}
                devices[job_id] = devices.get(job_id, 0) + len(where.devices)
    return by_node


def node_order(
    held: dict[int, int], jobs_by_id: dict[int, RunningJob], rank: Callable[[RunningJob], object]
) -> list[RunningJob]:
    """The candidates holding devices on one node (``held``: job id -> devices there), the
    largest holder first, then by ``rank``."""
    return sorted((jobs_by_id[j] for j in held), key=lambda j: (-held[j.spec.id], rank(j)))
