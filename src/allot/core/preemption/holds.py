"""The room kept, for the rest of one cycle, for preemptors whose victims are stopping.

A preemptor that has just chosen its victims, or a nominated one whose victims are still
stopping, is a *holder*. It keeps two things, and nothing else of its cohort or flavor:

- its quota request. ``future`` is a second quota tree counting what will be used once every
  stopping job has stopped and every holder has started. A later job is admitted only when its
  request fits both the tree of now and ``future``: it neither over-uses quota now nor takes
  quota a holder counts on. (Kueue likewise adds a preempting workload's net usage, its request
  less what its targets free, to its queue for the rest of the cycle: pkg/scheduler/scheduler.go.)
- its placement hold. Its placement is chosen once the stopping jobs are gone and the holders
  before it have taken theirs; what it needs there beyond what the stopping jobs free is taken
  out of the capacity later placements see, ``hold(d) = max(0, need(d) - (free_then(d) -
  free_now(d)))`` per device (and likewise CPU and memory), as for a backfill reservation.

So a job of the same cohort or flavor that fits elsewhere starts during the grace period, and
the holder still finds its room when its victims have stopped.

Invariants: ``future`` is built from the snapshot the first time it is needed and then kept in
step by the cycle (every start, every job marked stopping) and by the victim search (every
what-if removal); a hold only takes capacity that is free, so no view over-allocates; every
edit of the snapshot has an undo, which the cycle runs when it restores.
"""

from __future__ import annotations

from dataclasses import dataclass

from allot.core.model import JobId, JobSpec
from allot.core.placement.select import choose_placement
from allot.core.policy.backfill import Hold, HoldAmounts, hold_amounts, placement_need
from allot.core.quota import request_of
from allot.core.quota.tree import QuotaTree, Request
from allot.core.snapshot import Snapshot, Undo


@dataclass(frozen=True, slots=True)
class Holder:
    """A waiting preemptor: where it will run and what it holds there now."""

    job_id: JobId
    queue: str
    flavor: str
    need: list[HoldAmounts]  # its whole placement
    held: Hold  # the part not freed by the stopping jobs, taken out of free capacity


def _minus(need: list[HoldAmounts], held: list[HoldAmounts]) -> list[HoldAmounts]:
    """``need - held``, node by node and device by device: what the stopping jobs free."""
    taken = {i: (devices, cpu, mem) for i, devices, cpu, mem in held}
    out: list[HoldAmounts] = []
    for i, devices, cpu, mem in need:
        t_dev, t_cpu, t_mem = taken.get(i, ({}, 0, 0))
        rest = {d: a - t_dev.get(d, 0) for d, a in devices.items() if a > t_dev.get(d, 0)}
        out.append((i, rest, max(0, cpu - t_cpu), max(0, mem - t_mem)))
    return out


class PreemptorHolds:
    """The holders of one cycle, the quota view they keep, and their placement holds."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.future: QuotaTree | None = None
        self.holders: list[Holder] = []
        # (tasks, flavor) -> the holder whose placement hold alone kept that shape out
        self.kept_out: dict[object, JobId] = {}

    def future_tree(self) -> QuotaTree | None:
        """The quota once the stopping jobs have stopped and the holders have started (None
        without quotas); built on first use."""
        if self.future is None and self.snap.quota is not None:
            tree = QuotaTree(self.snap.quota.config)
            for job in self.snap.running.values():
                if job.stopping_until is None:
                    tree.add(job.spec.queue, request_of(job.spec, job.flavor))
            self.future = tree
        return self.future

    # ------------------------------------------------------------ keeping in step

    def started(self, spec: JobSpec, flavor: str) -> None:
        """``spec`` started on ``flavor`` in this cycle."""
        if self.future is not None:
            self.future.add(spec.queue, request_of(spec, flavor))

    def stopping(self, job_id: JobId) -> None:
        """Running job ``job_id`` was marked stopping in this cycle."""
        job = self.snap.running.get(job_id)
        if self.future is not None and job is not None:
            self.future.remove(job.spec.queue, request_of(job.spec, job.flavor))

    # ------------------------------------------------------------ holding

    def _then(self, flavor: str) -> list[Undo]:
        """What-if: the stopping jobs gone and every holder on ``flavor`` in its place."""
        snap = self.snap
        undos = [snap.finish(job_id) for job_id in sorted(snap.stopping) if job_id in snap.running]
        for holder in self.holders:
            if holder.flavor == flavor:
                released = _minus(holder.need, holder.held.holds)
                claim = Hold(snap, released)
                claim.engage()
                undos.append(claim.disengage)
        return undos

    def fits_then(self, spec: JobSpec, flavor: str) -> bool:
        """True when ``spec`` would fit ``flavor`` once the stopping jobs have stopped and the
        holders have started."""
        future = self.future_tree()
        if future is not None and not future.fits(spec.queue, request_of(spec, flavor)):
            return False
        undos = self._then(flavor)
        try:
            return choose_placement(self.snap, spec, flavor) is not None
        finally:
            for undo in reversed(undos):
                undo()

    def hold(self, spec: JobSpec, flavor: str) -> Undo | None:
        """Keep ``spec``'s quota request and placement for it; the undo releases the placement
        hold (None when it found no placement, which holds nothing)."""
        snap = self.snap
        undos = self._then(flavor)
        try:
            placement = choose_placement(snap, spec, flavor)
            if placement is None:
                return None
            need = placement_need(snap, spec, placement)
            then = {
                i: (list(snap.dev_free[i]), snap.cpu_free[i], snap.mem_free[i]) for i, *_ in need
            }
        finally:
            for undo in reversed(undos):
                undo()
        held_now = Hold(snap, hold_amounts(snap, need, then))
        held_now.engage()
        self.holders.append(Holder(spec.id, spec.queue, flavor, need, held_now))
        future = self.future_tree()
        if future is not None:
            future.add(spec.queue, request_of(spec, flavor))
        return held_now.disengage

    # ------------------------------------------------------------ asking

    def quota_holder(self, queue: str, request: Request) -> JobId | None:
        """The holder whose kept quota stops ``request`` of ``queue``, if one does."""
        if not self.holders or self.future is None or self.future.fits(queue, request):
            return None
        root = self.future.cohort_root(queue)
        for holder in self.holders:
            if holder.queue == queue or (
                root is not None and self.future.cohort_root(holder.queue) == root
            ):
                return holder.job_id
        return self.holders[0].job_id

    def placement_holder(self, spec: JobSpec, flavor: str) -> JobId | None:
        """The holder whose placement hold on ``flavor`` is what keeps ``spec`` from fitting,
        if releasing the holds there would let it fit."""
        on_flavor = [h for h in self.holders if h.flavor == flavor]
        if not on_flavor:
            return None
        for holder in on_flavor:
            holder.held.disengage()
        try:
            fits = choose_placement(self.snap, spec, flavor) is not None
        finally:
            for holder in on_flavor:
                holder.held.engage()
        return on_flavor[0].job_id if fits else None
