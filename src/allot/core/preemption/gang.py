"""Victims for a gang: the fewest running jobs whose removal lets all of its tasks start.

Two searches; the better set (``search.cost``: fewest victims, then fewest of the preemptor's
own queue, then lowest highest priority, then least work lost) wins:

- by nodes, for a gang whose tasks share one whole-GPU shape: for each node ``i`` and each
  ``k`` (over the nodes that promise the fewest victims per task, counting devices only),
  ``c(i, k)`` is the number of victims that free room for ``k`` tasks there (candidates
  removed largest holder of that node first, then by preference; ``c(i, k) = 0`` while ``k``
  tasks fit what is free). Then the nodes are chosen by a knapsack over task counts,
  ``best(t) = min over nodes of best(t - k) + c(i, k)``, so the victims add up to the fewest;
  the chosen sets are removed, more candidates are taken in preference order while the quota
  still blocks, and every victim not needed is put back;
- greedily: candidates in preference order until the whole job fits, then every victim not
  needed is put back (the only search for gangs of mixed or fractional shapes).

Both leave the snapshot as they found it.
"""

from __future__ import annotations

from collections.abc import Iterable

from allot.core.model import MILLI_PER_GPU, RunningJob
from allot.core.placement.feasibility import tasks_on_node
from allot.core.preemption.search import (
    Victims,
    VictimSearch,
    cost,
    holders_by_node,
    node_order,
)

Choice = tuple[int, list[tuple[int, int]]]  # (victims counted, [(node, tasks there)])
NODES_PER_TASK = 16  # nodes the node-by-node search looks at, per task of the gang


def gang_victims(search: VictimSearch, everyone: list[RunningJob]) -> Victims | None:
    """The better of the node-by-node and the greedy victim sets for ``search``'s gang."""
    greedy = _greedy(search, everyone)
    if greedy is not None and len(greedy) <= 1:
        return greedy  # nothing can do with fewer
    found = [v for v in (greedy, _by_nodes(search, everyone)) if v]
    if not found:
        return None
    return min(found, key=lambda v: cost(v, search.p.now, search.p.spec.queue))


def _greedy(search: VictimSearch, everyone: list[RunningJob]) -> Victims | None:
    try:
        victims: Victims = []
        search.take_until(victims, everyone, search.fits)
        if not victims or not search.fits():
            return None
        return search.put_back_unneeded(victims, search.fits)
    finally:
        search.restore()


def _by_nodes(search: VictimSearch, everyone: list[RunningJob]) -> Victims | None:
    spec, snap = search.p.spec, search.snap
    task, count = spec.tasks[0], len(spec.tasks)
    if task.gpu_milli < MILLI_PER_GPU or any(t != task for t in spec.tasks):
        return None
    by_node = holders_by_node(snap, everyone)
    jobs_by_id = {job.spec.id: job for job in everyone}
    # Nodes by an optimistic count of victims per task they could host (freeing every device
    # a candidate touches), and only the most promising ``NODES_PER_TASK`` per task are
    # searched: the knapsack needs a few good nodes, not all of them.
    g = task.gpu_milli // MILLI_PER_GPU
    promising: list[tuple[float, int]] = []
    for i, node in enumerate(snap.nodes):
        if node.flavor != search.p.flavor or not snap.schedulable(i):
            continue
        held = by_node.get(i, {})
        most = min(count, (snap.whole_free[i] + sum(held.values())) // g)
        if most == 0:
            continue
        bound = _at_least_devices(most * g - snap.whole_free[i], held.values())
        promising.append((bound / most, i))
    promising.sort()
    options: list[tuple[int, list[list[RunningJob]]]] = []  # node, victims freeing k tasks
    for _, i in promising[: count * NODES_PER_TASK]:
        held = by_node.get(i, {})
        local = node_order(held, jobs_by_id, search.rank)
        sets = _sets_on_node(search, i, local, count)
        if len(sets) > 1:
            options.append((i, sets))
    best = _knapsack(options, count)
    if best is None:
        return None
    sets_of = dict(options)
    chosen = {job.spec.id: job for i, k in best[1] for job in sets_of[i][k]}
    try:
        victims: Victims = []
        search.take_until(victims, sorted(chosen.values(), key=search.rank), lambda: False)
        search.top_up_quota(victims, everyone)
        if not victims or not search.fits():
            return None
        return search.put_back_unneeded(victims, search.fits)
    finally:
        search.restore()


def _at_least_devices(missing: int, held: Iterable[int]) -> int:
    """The fewest holders, largest first, that free ``missing`` devices (all of them when even
    they cannot)."""
    count = 0
    for devices in sorted(held, reverse=True):
        if missing <= 0:
            break
        missing -= devices
        count += 1
    return count


def _sets_on_node(
    search: VictimSearch, i: int, local: list[RunningJob], limit: int
) -> list[list[RunningJob]]:
    """``sets[k]``: the victims on node ``i`` that free room for ``k`` tasks (``sets[0]`` is
    empty); as long as the list is, up to ``limit`` tasks."""
    snap, task = search.snap, search.p.spec.tasks[0]

    def fit() -> int:
        return tasks_on_node(snap.whole_free[i], snap.cpu_free[i], snap.mem_free[i], task, limit)

    sets: list[list[RunningJob]] = [[] for _ in range(fit() + 1)]
    removed: Victims = []
    try:
        for job in local:
            if len(sets) > limit:
                break
            if search.remove(removed, job):
                now = [v for v, _ in removed]
                sets.extend(list(now) for _ in range(fit() + 1 - len(sets)))
    finally:
        search.restore()
    return sets[: limit + 1]


def _knapsack(options: list[tuple[int, list[list[RunningJob]]]], count: int) -> Choice | None:
    """The nodes and task counts that host ``count`` tasks with the fewest victims counted."""
    best: list[Choice | None] = [None] * (count + 1)
    best[0] = (0, [])
    for i, sets in options:
        step = list(best)
        for t, choice in enumerate(best):
            if choice is None or t == count:
                continue
            for k in range(1, len(sets)):
                total = min(count, t + k)
                victims = choice[0] + len(sets[k])
                known = step[total]
                if known is None or victims < known[0]:
                    step[total] = (victims, [*choice[1], (i, k)])
        best = step
    return best[count]
