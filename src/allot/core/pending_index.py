"""What a snapshot remembers about the pending jobs from one cycle to the next: their order
under a policy and each job's decision key, so a cycle's cost follows what changed.

A policy's order (``allot.core.policy.ordering``) is a static key, except for the USAGE
criterion, whose fair-share factors move every cycle. So the jobs are kept in **groups**: a
group holds the jobs that agree on every criterion up to the last USAGE one (for ``fairshare``,
a (tenant, user); for ``allot``, a (priority, tenant, user)); inside a group the order never
changes and is kept sorted by the rest of the key (ending in submit time and id). Each cycle
the groups are ordered by their factors, and groups that tie are merged. Without USAGE there is
one group and the order is simply kept.

From one cycle to the next the index removes the jobs that left, adds the ones that came (a
job whose spec object or attained service changed counts as both) and re-sorts only the groups
they touched, all with C-level list operations; with nothing changed the previous order is
reused as it is. The result is exactly ``sorted(jobs, key=static_key(...))``.

Decision key: what a cycle's verdict for a job depends on besides the cycle's state: its
admission key (``allot.core.checks``), its queue (when preemption or per-queue blocking read
it), priority (when preemption reads it), LAS level (when LAS may preempt) and whether it has
a runtime estimate or time limit (backfill asks). Two jobs with the same
decision key get the same verdict in the same state (``allot.core.cycle``'s tail), and the
index keeps how many pending jobs share each one.

The index lives on the snapshot (``Snapshot.pending_index``), one per policy signature; a new
snapshot starts empty, so a driver that builds one per cycle simply sorts every time.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from itertools import compress
from operator import attrgetter, is_, itemgetter, not_
from typing import TYPE_CHECKING, cast

from allot.core.checks import CacheScope, admission_key, widest_scope
from allot.core.model import JobId, JobSpec, Resources
from allot.core.pending_jobs import PendingJobs
from allot.core.policy import Blocking, Criterion, Policy
from allot.core.policy.ordering import INF, SortKey, expected_work, las_level
from allot.core.preemption import Strategy
from allot.core.preemption.finder import Backlog, backlog_of
from allot.core.quota.config import FlavorResource
from allot.core.quota.fair_share import FairShareFactors

if TYPE_CHECKING:
    from allot.core.snapshot import Snapshot

# A decision key as the index hands it out: a small number standing for the key (equal
# numbers, equal keys; hashing a number is what makes a cycle's per-job bookkeeping cheap),
# or, when the admission key is the job itself or reads its run time, the key (numbering would
# grow with every job, or every estimate, ever seen).
DecisionKey = object
_FullKey = tuple[object, ...]
GroupKey = tuple[object, ...]
_Entry = tuple[SortKey, JobSpec]
# ``JobSpec.shape``: (tasks, flavors), and with a colocation rule (..., colocate, required).
_Shape = tuple[object, ...]
_ID = attrgetter("id")
_TENANT = attrgetter("tenant")
_USER = attrgetter("user")
_QUEUE = attrgetter("queue")
_SHAPE = attrgetter("shape")
_PRIORITY = attrgetter("priority")
_SUBMIT = attrgetter("submit_time")
_RUNTIME = attrgetter("expected_runtime")
_SPEC = itemgetter(1)
_RANK = itemgetter(0)


def _group_value(criterion: Criterion, spec: JobSpec, level: int) -> object:
    if criterion is Criterion.PRIORITY:
        return spec.priority
    if criterion is Criterion.SJF:
        return spec.expected_runtime
    if criterion is Criterion.WORK:
        return expected_work(spec)
    if criterion is Criterion.LAS:
        return level
    return (spec.tenant, spec.user)


def _part(criterion: Criterion, value: object, factors: FairShareFactors | None) -> SortKey:
    """The sort key parts of one criterion from its group value."""
    if criterion is Criterion.PRIORITY:
        return (-value,)  # type: ignore[operator]
    if criterion is Criterion.SJF:
        return (INF if value is None else value,)  # type: ignore[return-value]
    if criterion is Criterion.WORK:
        return (value,)  # type: ignore[return-value]
    if criterion is Criterion.LAS:
        return (value,)  # type: ignore[return-value]
    if factors is None:
        return ()
    tenant, user = cast(tuple[str, str], value)
    return (-factors.tenant(tenant), -factors.user(tenant, user))


class PendingIndex:
    """The pending jobs of one policy signature, grouped and sorted (module docstring)."""

    def __init__(self, policy: Policy, scope: CacheScope) -> None:
        criteria = tuple(c for c in policy.order if c is not Criterion.DRS)
        usage = [i for i, c in enumerate(criteria) if c is Criterion.USAGE]
        cut = usage[-1] + 1 if usage else 0
        self.prefix = criteria[:cut]  # the criteria that make a group
        self.suffix = criteria[cut:]  # the static rest of the key
        self.thresholds = policy.las_thresholds
        self.scope = scope
        self.las_decides = Strategy.LAS in policy.preemption
        self.leveled = self.las_decides or Criterion.LAS in criteria
        self.shares = Criterion.USAGE in criteria  # keeps the (tenant, user) pairs asking
        self.backfills = policy.blocking is Blocking.BACKFILL  # keeps runtimes per key
        # The queue decides a verdict through preemption rules and per-queue blocking (an
        # admission check that reads it puts it in the admission key); the priority only
        # through preemption. Left out otherwise, so keys are fewer and tails settle sooner.
        self.preempts = bool(policy.preemption)
        self.queue_decides = self.preempts or (
            policy.blocking is Blocking.STRICT and policy.queue_fair
        )
        self.specs: dict[JobId, JobSpec] = {}
        self.attained: dict[JobId, float] = {}  # for jobs that had some when indexed
        self.group_of: dict[JobId, GroupKey] = {}
        self.groups: dict[GroupKey, list[_Entry]] = {}
        self.decision: dict[JobId, DecisionKey] = {}
        self.counts: Counter[DecisionKey] = Counter()
        self.users: Counter[tuple[str, str]] = Counter()
        # decision key -> the runtimes (estimate, else limit) of its jobs that have one, sorted
        self.runtimes: dict[DecisionKey, list[float]] = {}
        self.entries: dict[JobId, _Entry] = {}
        self._numbers: dict[_FullKey, int] = {}  # decision key -> its number (``_number``)
        self._numbered = scope not in (CacheScope.JOB, CacheScope.COST)
        self._full: list[_FullKey] = []
        # What the last update compared against: the driver's journal, or a copy of its list.
        self._source: PendingJobs | None = None
        self._version = 0
        self._last: list[JobSpec] | None = None
        self._shapes: list[JobSpec] | None = None
        # The groups' order (runs of tied groups) under the last fair-share parts seen; kept
        # while the same groups exist.
        self._ordering: tuple[object, tuple[tuple[GroupKey, ...], ...]] | None = None
        # Without groups: each decision key's entries in order, built when first asked for
        # (``ordered_by_key``) and kept up from then on.
        self._by_key: dict[DecisionKey, list[_Entry]] | None = None

    # ------------------------------------------------------------------ keeping up

    def update(self, snap: Snapshot, jobs: Sequence[JobSpec]) -> None:
        """Bring the index to exactly ``jobs``."""
        specs = self.specs
        stale: set[JobId] = set()
        changed = None
        if isinstance(jobs, PendingJobs) and jobs is self._source:
            changed = jobs.changed_since(self._version)
        if changed is not None:
            # The driver's journal names what changed: no pass over the queue.
            assert isinstance(jobs, PendingJobs)
            get = jobs.get
            stale = {i for i in changed if specs.get(i) is not get(i)}
        elif type(jobs) is not list or jobs != self._last:
            # ``==`` on two lists stops at the first difference and compares identical
            # elements without calling ``__eq__``; equal specs decide equally.
            ids = list(map(_ID, jobs))
            same = list(map(is_, map(specs.get, ids), jobs))  # all in C: no loop per job here
            if len(ids) != len(specs) or not all(same):
                stale = set(compress(ids, map(not_, same)))
                stale |= specs.keys() - set(ids)
        self._source, self._last = None, None
        if isinstance(jobs, PendingJobs):
            self._source, self._version = jobs, jobs.version
        elif type(jobs) is list:
            self._last = list(jobs)
        attained = snap.attained
        if self.leveled and (attained or self.attained):
            mine = self.attained
            stale |= {i for i, v in attained.items() if i in specs and mine.get(i, 0.0) != v}
            stale |= {i for i in mine if i in specs and i not in attained}
        if not stale:
            return
        touched: set[GroupKey] = set()
        groups = len(self.groups)
        if len(stale) * 2 > len(specs):
            self._clear()
            self._add(list(jobs), attained, touched)
            for group in touched:
                self.groups[group].sort()
        else:
            gone = [i for i in stale if i in specs]
            if gone:
                self._remove(gone, touched)
            if isinstance(jobs, PendingJobs):
                fresh = [s for s in map(jobs.get, stale) if s is not None]
                fresh.sort(key=_ID)  # the same order whatever the set's
            else:
                fresh = [s for s in jobs if s.id in stale]
            self._add(fresh, attained, touched, sort=False)
            for group in touched:
                if not self.groups[group]:
                    del self.groups[group]
        if len(self.groups) != groups or any(len(self.groups.get(g, ())) == 0 for g in touched):
            self._ordering = None

    def _clear(self) -> None:
        for table in (self.specs, self.attained, self.group_of, self.groups, self.decision):
            table.clear()
        self._by_key = None
        self.entries.clear()
        self._shapes = None
        self._ordering = None
        self.counts.clear()
        self.users.clear()
        self.runtimes.clear()

    def _remove(self, gone: list[JobId], touched: set[GroupKey]) -> None:
        by_group: dict[GroupKey, set[JobId]] = {}
        counts, users, runtimes = self.counts, self.users, self.runtimes
        keys = len(counts)
        by_key = self._by_key
        if by_key is not None and len(gone) * 16 > len(self.specs):
            by_key = self._by_key = None  # many: built again when next asked for
        for i in gone:
            spec = self.specs.pop(i)
            self.attained.pop(i, None)
            by_group.setdefault(self.group_of.pop(i, ()), set()).add(i)
            key = self.decision.pop(i)
            if by_key is not None:
                mine = by_key[key]
                del mine[bisect_left(mine, self.entries[i])]
                if not mine:
                    del by_key[key]
            counts[key] -= 1
            if not counts[key]:
                del counts[key]
            if self.shares:
                user = (spec.tenant, spec.user)
                users[user] -= 1
                if not users[user]:
                    del users[user]
            runtime = spec.expected_runtime
            if runtime is not None and self.backfills:
                times = runtimes[key]
                del times[bisect_left(times, runtime)]
                if not times:
                    del runtimes[key]
        entries = self.entries
        for group, ids in by_group.items():
            bucket = self.groups[group]
            if len(ids) * 16 < len(bucket):
                for i in ids:  # a few: each found by bisection (sort keys are unique)
                    del bucket[bisect_left(bucket, entries.pop(i))]
            else:
                self.groups[group] = [e for e in bucket if e[1].id not in ids]
                for i in ids:
                    del entries[i]
            touched.add(group)
        if len(counts) != keys:
            self._shapes = None

    def _add(
        self,
        specs: list[JobSpec],
        attained: Mapping[JobId, float],
        touched: set[GroupKey],
        *,
        sort: bool = True,
    ) -> None:
        """Index ``specs`` in bulk: one pass per table, most of them in C. With ``sort``
        the caller sorts the touched groups; without, each entry is inserted in place."""
        if not specs:
            return
        ids = list(map(_ID, specs))
        thresholds = self.thresholds
        if self.leveled:
            levels = [las_level(attained.get(i, 0.0), thresholds) for i in ids]
            self.attained.update((i, attained[i]) for i in ids if attained.get(i))
        else:
            levels = [0] * len(ids)
        entries = list(zip(self._tails(specs, ids, levels), specs, strict=True))
        self.specs.update(zip(ids, specs, strict=True))
        self.entries.update(zip(ids, entries, strict=True))
        prefix, table = self.prefix, self.groups
        place = list.append if sort else insort
        if prefix:
            groups = [
                tuple(_group_value(c, s, level) for c in prefix)
                for s, level in zip(specs, levels, strict=True)
            ]
            self.group_of.update(zip(ids, groups, strict=True))
            for group, entry in zip(groups, entries, strict=True):
                bucket = table.get(group)
                if bucket is None:
                    bucket = table[group] = []
                    self._ordering = None
                place(bucket, entry)
            touched.update(groups)
        else:
            bucket = table.setdefault((), [])
            if sort:
                bucket.extend(entries)
            else:
                for entry in entries:
                    insort(bucket, entry)
            touched.add(())
        keys = self._decision_keys(specs, ids, levels)
        self.decision.update(zip(ids, keys, strict=True))
        by_key = self._by_key
        if by_key is not None:
            if sort:
                self._by_key = None
            else:
                for key, entry in zip(keys, entries, strict=True):
                    insort(by_key.setdefault(key, []), entry)
        known = len(self.counts)
        self.counts.update(keys)
        if len(self.counts) != known:
            self._shapes = None
        if self.shares:
            self.users.update(zip(map(_TENANT, specs), map(_USER, specs), strict=True))
        if self.backfills:
            self._add_runtimes(specs, keys)

    def _tails(self, specs: list[JobSpec], ids: list[JobId], levels: list[int]) -> list[SortKey]:
        """The static rest of each job's sort key, column by column."""
        columns: list[list[float]] = []
        for c in self.suffix:
            if c is Criterion.PRIORITY:
                columns.append([-p for p in map(_PRIORITY, specs)])
            elif c is Criterion.SJF:
                columns.append([INF if r is None else r for r in map(_RUNTIME, specs)])
            elif c is Criterion.WORK:
                columns.append(list(map(expected_work, specs)))
            elif c is Criterion.LAS:
                columns.append([float(level) for level in levels])
        return list(zip(*columns, map(_SUBMIT, specs), ids, strict=True))

    def _decision_keys(
        self, specs: list[JobSpec], ids: list[JobId], levels: list[int]
    ) -> list[DecisionKey]:
        """Each job's decision key (``decision_key``), column by column."""
        scope, n = self.scope, len(specs)
        shapes, queues = map(_SHAPE, specs), list(map(_QUEUE, specs))
        admission: list[tuple[object, ...]]
        if scope is CacheScope.SHAPE:
            admission = list(zip(shapes))
        elif scope is CacheScope.QUEUE:
            admission = list(zip(queues, shapes, strict=True))
        elif scope is CacheScope.OWNER:
            admission = list(
                zip(queues, map(_TENANT, specs), map(_USER, specs), shapes, strict=True)
            )
        elif scope is CacheScope.COST:
            admission = list(
                zip(queues, map(_TENANT, specs), map(_USER, specs), map(_RUNTIME, specs), shapes,
                    strict=True)
            )  # fmt: skip
        else:
            admission = [("job", i) for i in ids]
        decided: list[int | None] = list(levels) if self.las_decides else [None] * n
        timed = [r is not None for r in map(_RUNTIME, specs)]
        owners: list[str | None] = queues if self.queue_decides else [None] * n
        ranks: list[int | None] = list(map(_PRIORITY, specs)) if self.preempts else [None] * n
        return self._number(list(zip(admission, owners, ranks, decided, timed, strict=True)))

    def _number(self, keys: list[_FullKey]) -> list[DecisionKey]:
        """``keys`` as the index hands them out (``DecisionKey``); numbers are never reused."""
        if not self._numbered:
            return list(keys)
        numbers, full = self._numbers, self._full
        for key in dict.fromkeys(keys):
            if key not in numbers:
                numbers[key] = len(full)
                full.append(key)
        return list(map(numbers.__getitem__, keys))

    def full_key(self, key: DecisionKey) -> _FullKey:
        """The decision key (admission key, queue, priority, level, timed) behind ``key``."""
        return self._full[cast(int, key)] if self._numbered else cast(_FullKey, key)

    def key_of(self, spec: JobSpec, attained: float) -> DecisionKey:
        """The decision key of one job (as ``_decision_keys`` gives it)."""
        level = las_level(attained, self.thresholds) if self.las_decides else None
        key = (
            admission_key(self.scope, spec),
            spec.queue if self.queue_decides else None,
            spec.priority if self.preempts else None,
            level,
            spec.expected_runtime is not None,
        )
        number = self._numbers.get(key) if self._numbered else None
        return number if number is not None else self._number([key])[0]

    def _add_runtimes(self, specs: list[JobSpec], keys: list[DecisionKey]) -> None:
        runtimes = self.runtimes
        grown: set[DecisionKey] = set()
        for key, runtime in zip(keys, map(_RUNTIME, specs), strict=True):
            if runtime is not None:
                times = runtimes.get(key)
                if times is None:
                    runtimes[key] = [runtime]
                else:
                    times.append(runtime)
                    grown.add(key)
        for key in grown:
            runtimes[key].sort()

    # ------------------------------------------------------------------ reading

    def shapes(self) -> list[JobSpec]:
        """A job of every request shape pending: built from the decision keys (one per key),
        unless the admission key is the job itself."""
        if self.scope is CacheScope.JOB:
            return list({s.shape: s for s in self.specs.values()}.values())
        if self._shapes is None:
            shapes = {
                cast(_Shape, cast(_FullKey, self.full_key(key)[0])[-1]) for key in self.counts
            }
            self._shapes = [_spec_of(shape) for shape in shapes]
        return self._shapes

    def ordered(self, factors: FairShareFactors | None) -> Iterator[JobSpec]:
        """Every job, in the policy's static order under ``factors``; lazy, so a cycle that
        stops early pays for the jobs it took (the index must not change meanwhile)."""
        prefix = self.prefix
        usage = None
        if Criterion.USAGE in prefix and factors is not None:
            # The groups' order moves only with the fair-share parts of the users asking.
            usage = {u: _part(Criterion.USAGE, u, factors) for u in self.users}
        if self._ordering is None or self._ordering[0] != usage:
            runs: list[tuple[GroupKey, ...]] = []
            last: SortKey | None = None
            for key, group in sorted(
                ((self._rank(g, factors, usage), g) for g in self.groups), key=_RANK
            ):
                if runs and key == last:
                    runs[-1] += (group,)
                else:
                    runs.append((group,))
                last = key
            self._ordering = (usage, tuple(runs))
        groups = self.groups
        for run in self._ordering[1]:
            if len(run) == 1:
                yield from map(_SPEC, groups[run[0]])
            else:
                yield from map(_SPEC, heapq.merge(*(groups[g] for g in run)))

    def skips(self) -> bool:
        """True when ``ordered_by_key`` can serve: one group, decision keys numbered (few)."""
        return not self.prefix and self._numbered

    def ordered_by_key(self, settled: set[DecisionKey]) -> Iterator[JobSpec]:
        """Every job in the static order (as ``ordered`` without groups), except that once a
        key is in ``settled`` (which the caller fills as it goes) its later jobs are left
        out: a merge of each key's own ordered jobs, so a settled key costs nothing more."""
        assert self.skips()
        by_key = self._by_key
        if by_key is None:
            decision = self.decision
            by_key = self._by_key = {}
            for entry in self.groups.get((), ()):
                mine = by_key.get(decision[entry[1].id])
                if mine is None:
                    by_key[decision[entry[1].id]] = [entry]
                else:
                    mine.append(entry)
        heap = [(entries[0], key, 0) for key, entries in by_key.items()]
        heapq.heapify(heap)  # entries are unique (their sort keys end in the job's id)
        while heap:
            entry, key, position = heap[0]
            yield entry[1]
            position += 1
            entries = by_key[key]
            if key in settled or position == len(entries):
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (entries[position], key, position))

    def _rank(
        self,
        group: GroupKey,
        factors: FairShareFactors | None,
        usage: dict[tuple[str, str], SortKey] | None,
    ) -> SortKey:
        key: SortKey = ()
        for c, value in zip(self.prefix, group, strict=True):
            if c is Criterion.USAGE and usage is not None:
                key += usage[cast(tuple[str, str], value)]
            else:
                key += _part(c, value, factors)
        return key


def pending_index(snap: Snapshot, policy: Policy, jobs: Sequence[JobSpec]) -> PendingIndex:
    """The snapshot's index for ``policy``, brought up to ``jobs``."""
    scope = widest_scope(snap.checks)
    signature = (
        policy.order,
        policy.las_thresholds,
        scope,
        policy.preemption,
        policy.blocking,
    )
    index = snap.pending_index.get(signature)
    if not isinstance(index, PendingIndex):
        index = snap.pending_index[signature] = PendingIndex(policy, scope)
    index.update(snap, jobs)
    return index


def backlog(snap: Snapshot, index: PendingIndex) -> Backlog:
    """What the pending jobs of each queue ask for, per flavor they accept (a job that accepts
    several flavors counts on each): ``allot.core.preemption.finder.backlog_of`` over the
    index's jobs, summed per decision key (a key's jobs share queue and shape)."""
    if index.scope is CacheScope.JOB:
        return backlog_of(snap, index.specs.values())
    out: dict[str, dict[str, dict[FlavorResource, int]]] = {}
    for number, count in index.counts.items():
        key = index.full_key(number)
        shape = cast(_Shape, cast(tuple[object, ...], key[0])[-1])
        tasks = cast(tuple[tuple[int, ...], ...], shape[0])
        flavors = cast(tuple[str, ...], shape[1])
        queue = cast(str, key[1])
        total = tuple(sum(t[k] for t in tasks) * count for k in range(3))
        accepted = snap.flavors if not flavors else [f for f in flavors if f in snap.buckets]
        for flavor in accepted:
            amounts = out.setdefault(flavor, {}).setdefault(queue, {})
            for resource, amount in zip(("gpu", "cpu", "memory"), total, strict=True):
                fr = (flavor, resource)
                amounts[fr] = amounts.get(fr, 0) + amount
    return out


def _spec_of(shape: _Shape) -> JobSpec:
    """A job of this request shape (``JobSpec.shape``), standing for every job that has it."""
    tasks = cast(tuple[tuple[int, ...], ...], shape[0])
    flavors = cast(tuple[str, ...], shape[1])
    colocate = cast(str, shape[2]) if len(shape) > 2 else ""
    required = bool(shape[3]) if len(shape) > 3 else False
    return JobSpec(0, "", "", "", tuple(Resources(*t) for t in tasks), flavors,
                   colocate=colocate, colocate_required=required)  # fmt: skip
