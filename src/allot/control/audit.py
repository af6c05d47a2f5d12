"""The audit log's writer: ``AuditTrail`` takes entries (state-changing requests, recorded by
the API; scheduling decisions, recorded by ``SchedulingAudit`` from each cycle's report; quota
changes) and the last use of tokens, and writes them to the store in batches from its own
thread, so a request never waits for an audit write.

Invariants: entries are written in the order they were recorded, each batch in one
transaction; ``flush`` returns once everything recorded before it is stored; ``close`` writes
what is left. A batch the store refuses is logged (counted in ``lost``) and dropped, never
retried forever. What a crash of the server loses: the entries of at most its last
``FLUSH_SECONDS``; the jobs' own event log, written in the transaction of each change, keeps
every state change regardless.

Entries never hold a token or an environment variable's value: requests are described by
their route, target and the problem's detail, which never echoes input.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace

from allot.control.observers import CycleReport
from allot.control.ports import Clock, NotFoundError, Store
from allot.control.records import AuditEntry

log = logging.getLogger("allot.audit")

FLUSH_SECONDS = 0.2
BATCH = 2000
TOUCH_SECONDS = 60.0  # a token's last use is written at most this often
SCHEDULER = "scheduler"


class AuditTrail:
    """Batches audit entries and token uses into the store (see the module docstring)."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.lost = 0
        self._entries: list[AuditEntry] = []
        self._uses: dict[int, float] = {}
        self._touched: dict[int, float] = {}
        self._cond = threading.Condition()
        self._written = 0  # entries taken by the writer so far
        self._done = 0  # of which stored (or dropped)
        self._recorded = 0
        self._closed = False
        self._thread: threading.Thread | None = None

    def record(self, *entries: AuditEntry) -> None:
        """Queue entries for the log (their ``id`` is the store's)."""
        self.record_all(entries)

    def record_all(self, entries: Iterable[AuditEntry]) -> None:
        """Queue many entries."""
        with self._cond:
            before = len(self._entries)
            self._entries.extend(entries)
            self._recorded += len(self._entries) - before
            self._start()
            self._cond.notify()

    def token_used(self, token_id: int, at: float) -> None:
        """Note a token's use; written when it was not written in the last minute."""
        with self._cond:
            if at - self._touched.get(token_id, float("-inf")) < TOUCH_SECONDS:
                return
            self._touched[token_id] = at
            self._uses[token_id] = at
            self._start()
            self._cond.notify()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything recorded so far is written; False on timeout."""
        with self._cond:
            target = self._recorded
            self._cond.notify_all()
            return self._cond.wait_for(
                lambda: self._done >= target and not self._uses, timeout=timeout
            )

    def close(self) -> None:
        """Write what is queued and stop the writer."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(30)

    def _start(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="allot-audit", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._closed or self._entries or self._uses, timeout=FLUSH_SECONDS
                )
                batch = self._entries[:BATCH]
                del self._entries[:BATCH]
                uses, self._uses = self._uses, {}
                closing = self._closed and not self._entries
            self._write(batch, uses)
            with self._cond:
                self._done += len(batch)
                self._cond.notify_all()
            if closing:
                return

    def _write(self, batch: Sequence[AuditEntry], uses: dict[int, float]) -> None:
        try:
            if batch:
                self.store.append_audit([self._with_tenant(e) for e in batch])
            if uses:
                self.store.touch_tokens(uses)
        except Exception:
            self.lost += len(batch)
            log.exception("audit: %d entries could not be written", len(batch))

    def _with_tenant(self, entry: AuditEntry) -> AuditEntry:
        """A scheduler's decision names its job only (the cycle's report carries no tenants):
        its tenant is looked up here, off the loop's thread."""
        if entry.tenant or entry.job_id is None or entry.actor != SCHEDULER:
            return entry
        try:
            tenant = self.store.get_job(entry.job_id).job.tenant
        except NotFoundError:
            return entry
        return replace(entry, tenant=tenant)


class SchedulingAudit:
    """A cycle observer that records the scheduler's decisions: each start, preemption,
    refused or failed start, and each job cancelled because a dependency can never be met."""

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail

    def cycle_done(self, report: CycleReport) -> None:
        at = report.at
        plan = report.plan
        entries: list[AuditEntry] = []
        starts = {s.job_id: s for s in plan.starts}
        for job_id in report.applied.started:
            start = starts.get(job_id)
            where = "" if start is None else f" on {start.flavor}"
            entries.append(_decision(at, "start", job_id, "ok", f"started{where}"))
        victims = {p.victim: p for p in plan.preemptions}
        for job_id in report.applied.preempted:
            p = victims.get(job_id)
            if p is None:
                why = ""
            elif p.preemptor is None:
                why = f" ({p.strategy})"
            else:
                why = f" for job {p.preemptor} ({p.strategy})"
            entries.append(_decision(at, "preempt", job_id, "ok", f"preempted{why}"))
        for job_id in report.applied.refused:
            entries.append(
                _decision(at, "start", job_id, "refused", "the job changed before it started")
            )
        for job_id in report.applied.failed:
            entries.append(_decision(at, "start", job_id, "failed", "the launch failed"))
        for job_id in report.unsatisfiable:
            entries.append(
                _decision(at, "reject", job_id, "cancelled", "a dependency can never be met")
            )
        if entries:
            self.trail.record_all(entries)


def _decision(at: float, action: str, job_id: int, outcome: str, reason: str) -> AuditEntry:
    return AuditEntry(at, SCHEDULER, action, f"job {job_id}", outcome, reason, "", job_id)
