"""The settled tail of a cycle: when every job still to come would get a verdict the cycle has
already reached in the same state, the walk stops and those jobs are explained on demand.

Why this is exact: a job's verdict is a function of the cycle's state and of its decision key
(``allot.core.pending_index``), plus, once a backfill reservation exists, whether it would
outlast the reservation (its *variant*). Taking a job either changes the state (a start, a
preemption, a reservation, a blocked queue, a preemptor's hold) or leaves it as it was. While
the state stays the same, a later job with a key and variant already seen gets the same verdict
and changes nothing either; so once every key still pending has been seen since the last change
in each variant its jobs may have, nothing later can change the state, and every job not taken
gets the verdict its key's representative got. ``Tail`` does that bookkeeping in O(1) per job.

Some verdicts outlive a change (``sticky``): within a cycle free capacity and quota usage only
shrink and grow, blocked queues stay blocked, and a failed admission attempt and a victim
search's verdict are reused for every later job with the same key, so a job that could not
start (no room, an admission check, no victims, screened out, a blocked queue) gets the same
verdict after any later start or preemption. Only a verdict that weighs what is free against a
reservation's hold (``BEHIND_RESERVATION``) can turn. A change keeps the sticky keys settled,
so after a start the walk goes on until the keys that may still start are seen again, not
until every key is: on a full cluster a few jobs per start instead of a few per request shape.

The same argument lets the cycle give a job whose key and variant were already decided in
the current state its verdict without trying it (the cycle's fast path), and stop at once
behind a head that blocks everyone (strict FIFO): every later job then waits for that head,
or is screened out, whatever it is.

``PendingReasons`` is the Plan's ``pending``: the explanations of the jobs taken, and for the
others the representative's explanation, looked up the first time someone asks. Nobody asking
(the simulator) costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from allot.core.explain import Explanation
from allot.core.model import JobId, JobSpec
from allot.core.pending_index import DecisionKey
from allot.core.pending_jobs import PendingChangedError, PendingJobs

Variant = bool | None  # None before a reservation; then: outlasts the reservation or not
_BOTH: frozenset[Variant] = frozenset({True, False})
_HELD: frozenset[Variant] = frozenset({True})
_UNHELD: frozenset[Variant] = frozenset({False})
_ANY: frozenset[Variant] = frozenset({None})


class Tail:
    """Which decision keys are settled since the cycle's state last changed."""

    def __init__(
        self, counts: Mapping[DecisionKey, int], runtimes: Mapping[DecisionKey, list[float]]
    ) -> None:
        self.left = dict(counts)  # jobs of each key not yet taken
        self.runtimes = runtimes  # per key, its jobs' runtimes (estimate, else limit), sorted
        self.live = sum(1 for n in self.left.values() if n > 0)
        self.memo: dict[tuple[DecisionKey, Variant], JobId] = {}  # -> representative
        self._seen: dict[DecisionKey, set[Variant]] = {}
        self._settled: set[DecisionKey] = set()
        self._reservation: tuple[float, float] | None = None  # (now, its start)
        self._sticky: set[tuple[DecisionKey, Variant]] = set()  # verdicts a change keeps
        # Keys settled for good, for a walk that leaves their later jobs out (None: no such
        # walk; only while no reservation can come, so sticky keys stay settled).
        self.dropped: set[DecisionKey] | None = None

    def changed(self, reservation: tuple[float, float] | None) -> None:
        """The cycle's state changed: only sticky verdicts are known to hold any more (none,
        when the reservation changed). ``reservation`` is (now, the reserved start), once
        there is one."""
        sticky, memo, seen = self._sticky, self.memo, self._seen
        if reservation != self._reservation or not sticky:
            sticky.clear()
            memo.clear()
            seen.clear()
            self._settled.clear()
            self._reservation = reservation
            return
        for entry in [e for e in memo if e not in sticky]:
            del memo[entry]
        for key in list(seen):
            kept = {v for v in seen[key] if (key, v) in sticky}
            if kept:
                seen[key] = kept
            else:
                del seen[key]
        self._settled = {k for k in self._settled if k in seen and self.variants(k) <= seen[k]}

    def variants(self, key: DecisionKey) -> frozenset[Variant]:
        """The variants the jobs of ``key`` may have. With a reservation a job outlasts it
        when ``now + runtime > start`` (always, without a runtime); the key's shortest and
        longest runtimes bound what its jobs can be (the same test, so rounding agrees)."""
        if self._reservation is None:
            return _ANY
        now, start = self._reservation
        times = self.runtimes.get(key)
        if not times or now + times[0] > start:
            return _HELD
        if now + times[-1] <= start:
            return _UNHELD
        return _BOTH

    def took(
        self,
        key: DecisionKey,
        variant: Variant,
        representative: JobId | None,
        sticky: bool = False,
    ) -> bool:
        """A job of ``key`` was taken without changing the state (``representative`` is its
        id, or None when its verdict may not be lent, e.g. a nominated job; ``sticky`` when
        its verdict outlives later changes). True when every job still to come is settled."""
        left = self.left[key] - 1
        self.left[key] = left
        if left == 0:
            self.live -= 1
            self._settled.discard(key)
        if representative is not None:
            self.memo.setdefault((key, variant), representative)
            if sticky:
                self._sticky.add((key, variant))
            seen = self._seen.setdefault(key, set())
            seen.add(variant)
            if left > 0 and self.variants(key) <= seen:
                self._settled.add(key)
                if sticky and self.dropped is not None:
                    self.dropped.add(key)
        return len(self._settled) == self.live


Resolve = Callable[[JobSpec], Explanation]


class PendingReasons(Mapping[JobId, Explanation]):
    """Why each pending job waits: the jobs the cycle took, then the settled tail on demand."""

    def __init__(
        self,
        explained: dict[JobId, Explanation],
        jobs: Sequence[JobSpec] = (),
        started: frozenset[JobId] | set[JobId] = frozenset(),
        resolve: Resolve | None = None,
    ) -> None:
        self._explained = explained
        self._jobs = jobs if resolve is not None else ()
        # Jobs a driver keeps changing: the tail is only theirs while they are unchanged.
        self._version = jobs.version if isinstance(jobs, PendingJobs) else None
        self._started = started
        self._resolve = resolve
        self._tail: dict[JobId, JobSpec] | None = None
        self._resolved: dict[JobId, Explanation] = {}

    def _rest(self) -> dict[JobId, JobSpec]:
        if self._tail is None:
            if self._version is not None:
                assert isinstance(self._jobs, PendingJobs)
                if self._jobs.version != self._version:
                    raise PendingChangedError(
                        "Plan.pending: the pending jobs changed since this plan was made; "
                        "read its explanations before changing them"
                    )
            explained, started = self._explained, self._started
            self._tail = {
                j.id: j for j in self._jobs if j.id not in explained and j.id not in started
            }
        return self._tail

    def __getitem__(self, job_id: JobId) -> Explanation:
        found = self._explained.get(job_id)
        if found is not None:
            return found
        found = self._resolved.get(job_id)
        if found is not None:
            return found
        spec = self._rest()[job_id]  # KeyError for a job that is not pending
        assert self._resolve is not None
        found = self._resolved[job_id] = self._resolve(spec)
        return found

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._explained or job_id in self._rest()

    def __iter__(self) -> Iterator[JobId]:
        yield from self._explained
        yield from self._rest()

    def __len__(self) -> int:
        return len(self._explained) + len(self._rest())

    def __repr__(self) -> str:
        return f"PendingReasons({dict(self)!r})"
