"""The pending jobs as a driver keeps them from one cycle to the next, with a journal of what
changed, so that a cycle's bookkeeping costs the jobs that changed, not the queue.

``schedule()`` takes any sequence of jobs; handed a plain list, the snapshot's pending index
(``allot.core.pending_index``) compares it with the jobs it indexed last time, which costs one
pass over the queue. Handed the same ``PendingJobs`` as last time, it reads the ids changed
since then from the journal instead. The journal is trimmed once it outgrows the queue; an
index that fell behind the trim compares the whole queue once, as for a list.

Order: jobs iterate in the order they were first put (replacing a job's spec keeps its place;
a job popped and put again goes last), like a dict.

A ``Plan`` built from a ``PendingJobs`` explains its settled tail from it on demand, so read
``Plan.pending`` before changing the jobs: after a change it raises ``PendingChangedError``
instead of answering from jobs that are no longer the ones it was made for.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from allot.core.model import JobId, JobSpec


class PendingChangedError(RuntimeError):
    """A Plan's settled tail was read after the pending jobs it was made from changed."""


class PendingJobs(Sequence[JobSpec]):
    """Pending jobs by id, in arrival order, with a journal of the ids changed (module
    docstring)."""

    def __init__(self, jobs: Iterable[JobSpec] = ()) -> None:
        self._by_id: dict[JobId, JobSpec] = {}
        self._journal: list[JobId] = []
        self._base = 0  # the version of ``_journal[0]``
        self._list: list[JobSpec] | None = None
        for spec in jobs:
            self.put(spec)

    @property
    def version(self) -> int:
        """How many changes were made so far (a counter that only grows)."""
        return self._base + len(self._journal)

    def _note(self, job_id: JobId) -> None:
        self._list = None
        journal = self._journal
        if len(journal) > 2 * len(self._by_id) + 4096:
            # Readers that were this far behind compare the whole queue once instead.
            self._base += len(journal)
            journal.clear()
        journal.append(job_id)

    def put(self, spec: JobSpec) -> None:
        """Add ``spec``, or replace the pending job with its id."""
        self._by_id[spec.id] = spec
        self._note(spec.id)

    def pop(self, job_id: JobId) -> JobSpec:
        """Remove the job ``job_id`` and return it (``KeyError`` when it is not pending)."""
        spec = self._by_id.pop(job_id)
        self._note(job_id)
        return spec

    def get(self, job_id: JobId) -> JobSpec | None:
        """The pending job with id ``job_id``, if there is one."""
        return self._by_id.get(job_id)

    def has(self, job_id: JobId) -> bool:
        """True when job ``job_id`` is pending."""
        return job_id in self._by_id

    def changed_since(self, version: int) -> list[JobId] | None:
        """The ids put or popped since ``version`` (with repeats); None when the journal no
        longer reaches back that far."""
        if version < self._base or version > self.version:
            return None
        return self._journal[version - self._base :]

    def __iter__(self) -> Iterator[JobSpec]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def __bool__(self) -> bool:
        return bool(self._by_id)

    @overload
    def __getitem__(self, index: int) -> JobSpec: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[JobSpec]: ...

    def __getitem__(self, index: int | slice) -> JobSpec | Sequence[JobSpec]:
        if self._list is None:
            self._list = list(self._by_id.values())
        return self._list[index]

    def __repr__(self) -> str:
        return f"PendingJobs({len(self)} jobs, version {self.version})"
