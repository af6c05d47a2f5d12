"""Group commit for submissions: one writer thread turns the single-job submissions that
arrive together into one store transaction per actor.

A request hands its job to ``SubmissionIntake.submit`` and gets a future; the writer takes
every submission waiting (up to ``max_group``), stores each actor's share with
``ControlPlane.submit_many`` (one transaction, one multi-row insert), and resolves the futures.
Under load the cost of a commit is shared by the whole group (the same idea as a database's
group commit); an idle server stores a lone submission at once, so latency does not grow.

Invariants:
- A future resolves only after its job is committed: an answered submission is durable.
- Each submission gets exactly its own answer. When a group fails as a whole (one job is
  rejected, two requests reuse an idempotency key, the database refuses), every job of that
  group is submitted again on its own, so the failure reaches only the request it belongs to
  and the others are stored as if they had come alone.
- Nothing is stored twice: the fallback runs only after the group's transaction rolled back.
- A submission whose caller gave up (its future was cancelled) before the writer took it is
  not stored: no answer was given, so nothing was accepted.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

from allot.control.principal import Principal
from allot.control.records import JobRecord, NewJob
from allot.control.services import ControlPlane

MAX_GROUP = 500

Accepted = tuple[JobRecord, bool]
"""The stored job, and whether this submission created it (False: an idempotent retry)."""


@dataclass(slots=True)
class _Submission:
    job: NewJob
    principal: Principal
    idempotency_key: str | None
    request_hash: str | None
    answer: Future[Accepted] = field(default_factory=Future)


class SubmissionIntake:
    """Accepts single-job submissions from many request handlers and stores them in groups."""

    def __init__(self, control: ControlPlane, *, max_group: int = MAX_GROUP) -> None:
        if max_group < 1:
            raise ValueError("max_group: must be at least 1")
        self._control = control
        self._max_group = max_group
        self._waiting: queue.SimpleQueue[_Submission | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="allot-intake", daemon=True)
        self._thread.start()

    def submit(
        self,
        job: NewJob,
        *,
        principal: Principal,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> Future[Accepted]:
        """Queue ``job`` for storing. The future gives what ``ControlPlane.submit`` returns
        and raises what it raises (RejectedError, ConflictError); RuntimeError once closed."""
        item = _Submission(job, principal, idempotency_key, request_hash)
        with self._lock:
            if self._closed:
                raise RuntimeError("the submission intake is closed")
            self._waiting.put(item)
        return item.answer

    def close(self) -> None:
        """Store what is already queued, then stop the writer."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._waiting.put(None)
        self._thread.join()

    # -- the writer

    def _run(self) -> None:
        while True:
            first = self._waiting.get()
            group: list[_Submission] = []
            stop = first is None
            if first is not None:
                group.append(first)
            while not stop and len(group) < self._max_group:
                try:
                    more = self._waiting.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                else:
                    group.append(more)
            if group:
                self._store(group)
            if stop:
                return

    def _store(self, group: list[_Submission]) -> None:
        by_caller: dict[Principal, list[_Submission]] = {}
        for item in group:
            if not item.answer.set_running_or_notify_cancel():
                continue  # the caller gave up before it was stored
            by_caller.setdefault(item.principal, []).append(item)
        for principal, items in by_caller.items():
            if len(items) == 1:
                self._store_alone(items[0])
                continue
            try:
                results = self._control.submit_many(
                    [i.job for i in items],
                    principal=principal,
                    idempotency_keys=[i.idempotency_key for i in items],
                    request_hashes=[i.request_hash for i in items],
                )
            except Exception:  # the group rolled back: answer each on its own
                for item in items:
                    self._store_alone(item)
                continue
            for item, result in zip(items, results, strict=True):
                item.answer.set_result(result)

    def _store_alone(self, item: _Submission) -> None:
        try:
            result = self._control.submit(
                item.job,
                principal=item.principal,
                idempotency_key=item.idempotency_key,
                request_hash=item.request_hash,
            )
        except Exception as err:  # the request's own failure, raised to its handler
            item.answer.set_exception(err)
        else:
            item.answer.set_result(result)
