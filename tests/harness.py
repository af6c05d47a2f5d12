"""In-memory fakes of the control plane's ports, for unit tests of the layers above the store
(API, SDK): ``MemoryStore`` (the ``Store`` protocol in dicts), ``FakeExecutor`` (serves logs the
test writes), ``ManualClock``, ``FakeScheduler`` (counts wakes, stops runs through the store).
``make_harness`` wires them into a ``ControlPlane`` over two nodes and one unconstrained queue
``default`` of tenant ``default``; ``Harness.start``/``finish`` move a job through its life.
The fakes follow the ``Store`` protocol's docstrings, not its crash-safety guarantees.
``InProcessTransport`` lets a synchronous httpx client call an ASGI app (the API) in-process.
"""

from __future__ import annotations

import hmac
import itertools
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace

import httpx
from anyio.from_thread import start_blocking_portal
from starlette.types import ASGIApp

from allot.api.auth import hash_token
from allot.control.dependencies import DependencyWait
from allot.control.ports import ConflictError, NotFoundError, RunState, RunStatus, TaskLaunch
from allot.control.records import (
    NEW_ARRAY,
    DependencyProgress,
    EventRecord,
    JobFilter,
    JobRecord,
    NewJob,
    RunPhase,
    RunRecord,
    StopCause,
    TokenRecord,
    UsageRecord,
)
from allot.control.services import ControlPlane
from allot.core.explain import Explanation
from allot.core.model import JobState, Node, NodeState, TaskPlacement
from allot.core.quota.config import QueueSpec, QuotaConfig, TenantSpec

START = 1_700_000_000.0
DEFAULT_QUOTAS = QuotaConfig((TenantSpec("default"),), (QueueSpec("default", "default"),))


class ManualClock:
    """A clock that moves only when the test says so."""

    def __init__(self, start: float = START) -> None:
        self.time = start

    def now(self) -> float:
        return self.time

    def advance(self, seconds: float) -> float:
        self.time += seconds
        return self.time


def _matches(record: JobRecord, where: JobFilter) -> bool:
    job = record.job
    return (
        (where.before is None or record.id < where.before)
        and (not where.states or record.state in where.states)
        and where.queue in (None, job.queue)
        and where.user in (None, job.user)
        and where.tenant in (None, job.tenant)
    )


class MemoryStore:
    """The ``Store`` protocol in memory; one lock stands in for a transaction."""

    def __init__(self, quotas: QuotaConfig | None = None) -> None:
        self._lock = threading.RLock()
        self._jobs: dict[int, JobRecord] = {}
        self._runs: dict[str, RunRecord] = {}
        self._runs_of: dict[int, list[str]] = {}
        self._keys: dict[tuple[str, str], tuple[int, str | None]] = {}
        self._nodes: dict[str, Node] = {}
        self._quotas = quotas or DEFAULT_QUOTAS
        self._tokens: dict[str, TokenRecord] = {}
        self._events: list[EventRecord] = []
        self._usage: list[UsageRecord] = []
        self._job_ids = itertools.count(1)
        self._event_ids = itertools.count(1)
        self._token_ids = itertools.count(1)

    def _event(self, at: float, kind: str, job: JobRecord | None, before: object, actor: str,
               reason: str, **data: object) -> None:  # fmt: skip
        job_id, after = (None, None) if job is None else (job.id, str(job.state))
        before_state = None if before is None else str(before)
        event_id = next(self._event_ids)
        self._events.append(
            EventRecord(event_id, at, kind, job_id, before_state, after, actor, reason, data)
        )

    def submit(self, job: NewJob, *, at: float, actor: str, idempotency_key: str | None = None,
               request_hash: str | None = None) -> tuple[JobRecord, bool]:  # fmt: skip
        with self._lock:
            if idempotency_key is not None:
                seen = self._keys.get((actor, idempotency_key))
                if seen is not None:
                    job_id, first_hash = seen
                    if first_hash != request_hash:
                        raise ConflictError(f"key {idempotency_key!r} was used for another request")
                    return self._jobs[job_id], False
            record = JobRecord(next(self._job_ids), job, JobState.PENDING, at, held=job.held)
            self._jobs[record.id] = record
            self._runs_of[record.id] = []
            if idempotency_key is not None:
                self._keys[(actor, idempotency_key)] = (record.id, request_hash)
            held = ", held" if job.held else ""
            self._event(at, "submitted", record, None, actor,
                        f"submitted by {actor} to queue {job.queue}{held}")  # fmt: skip
            return record, True

    def submit_many(
        self,
        jobs: Sequence[NewJob],
        *,
        at: float,
        actor: str,
        idempotency_keys: Sequence[str | None],
        request_hashes: Sequence[str | None],
        array: int | None = None,
    ) -> list[tuple[JobRecord, bool]]:
        with self._lock:
            # All or nothing, as in one transaction: find a conflicting key before storing any.
            seen = dict(self._keys)
            for key, digest in zip(idempotency_keys, request_hashes, strict=True):
                if key is not None and seen.setdefault((actor, key), (0, digest))[1] != digest:
                    raise ConflictError(f"key {key!r} was used for another request")
            if array not in (None, NEW_ARRAY) and (
                array not in self._jobs or self._jobs[array].array_id != array
            ):
                raise NotFoundError(f"array {array} does not exist")
            results = [
                self.submit(job, at=at, actor=actor, idempotency_key=key, request_hash=digest)
                for job, key, digest in zip(jobs, idempotency_keys, request_hashes, strict=True)
            ]
            if array is None or not results:
                return results
            array_id = results[0][0].id if array == NEW_ARRAY else array
            out = []
            for record, created in results:
                if created:
                    record = self._jobs[record.id] = replace(record, array_id=array_id)
                out.append((record, created))
            return out

    def find_idempotent(
        self, actor: str, idempotency_key: str, request_hash: str | None
    ) -> JobRecord | None:
        with self._lock:
            seen = self._keys.get((actor, idempotency_key))
            if seen is None:
                return None
            job_id, first_hash = seen
            if first_hash != request_hash:
                raise ConflictError(f"key {idempotency_key!r} was used for another request")
            return self._jobs[job_id]

    def get_job(self, job_id: int) -> JobRecord:
        with self._lock:
            if job_id not in self._jobs:
                raise NotFoundError(f"no job {job_id}")
            return self._jobs[job_id]

    def list_jobs(self, where: JobFilter) -> list[JobRecord]:
        with self._lock:
            newest_first = sorted(self._jobs.values(), key=lambda r: -r.id)
            return [r for r in newest_first if _matches(r, where)][: where.limit]

    def pending_jobs(self, *, include_held: bool = True) -> list[JobRecord]:
        with self._lock:
            pending = [
                r
                for r in self._jobs.values()
                if r.state is JobState.PENDING and (include_held or not r.held)
            ]
            return sorted(pending, key=lambda r: r.id)

    def active_jobs(self) -> list[JobRecord]:
        with self._lock:
            return [r for r in self._jobs.values() if r.run is not None]

    def dependency_progress(self, job_ids: Collection[int]) -> dict[int, DependencyProgress]:
        with self._lock:
            found = {}
            for target in set(job_ids):
                named = self._jobs.get(target)
                if named is None:
                    continue
                array = named.array_id == target
                members = (
                    [r for r in self._jobs.values() if r.array_id == target] if array else [named]
                )
                bad = sorted((r.id, r.state) for r in members
                             if r.state in (JobState.FAILED, JobState.CANCELLED))  # fmt: skip
                ok = sum(r.state is JobState.SUCCEEDED for r in members)
                found[target] = DependencyProgress(target, array, len(members), ok, len(bad),
                                                   bad[0] if bad else None)  # fmt: skip
            return found

    def cancel_pending_many(self, reasons: Mapping[int, str], *, at: float,
                            actor: str) -> list[int]:  # fmt: skip
        with self._lock:
            pending = [i for i in sorted(reasons) if self._jobs[i].state is JobState.PENDING]
            for job_id in pending:
                self.cancel_pending(job_id, at=at, actor=actor, reason=reasons[job_id])
            return pending

    def _pending(self, job_id: int, what: str) -> JobRecord:
        record = self.get_job(job_id)
        if record.state is not JobState.PENDING:
            raise ConflictError(f"job {job_id} is {record.state}; only a pending job can be {what}")
        return record

    def set_held(self, job_id: int, held: bool, *, at: float, actor: str) -> JobRecord:
        with self._lock:
            record = replace(self._pending(job_id, "held or released"), held=held)
            self._jobs[job_id] = record
            kind = "held" if held else "released"
            self._event(at, kind, record, record.state, actor, f"{kind} by {actor}")
            return record

    def cancel_pending(self, job_id: int, *, at: float, actor: str, reason: str) -> JobRecord:
        with self._lock:
            before = self._pending(job_id, "cancelled")
            record = replace(before, state=JobState.CANCELLED, end_time=at, reason=reason)
            self._jobs[job_id] = record
            self._event(at, "cancelled", record, before.state, actor, reason)
            return record

    def begin_run(self, run: RunRecord, *, actor: str) -> bool:
        with self._lock:
            record = self._jobs.get(run.job_id)
            if record is None or record.state is not JobState.PENDING or record.held or record.run:
                return False
            started = record.start_time if record.start_time is not None else run.started_at
            updated = replace(record, state=JobState.RUNNING, run=run, start_time=started,
                              run_count=record.run_count + 1)  # fmt: skip
            self._jobs[run.job_id] = updated
            self._runs[run.run_id] = run
            self._runs_of[run.job_id].append(run.run_id)
            self._event(run.started_at, "starting", updated, record.state, actor, "placed",
                        run_id=run.run_id, phase=str(RunPhase.STARTING))  # fmt: skip
            return True

    def _set_run(self, run: RunRecord) -> None:
        self._runs[run.run_id] = run
        record = self._jobs[run.job_id]
        if record.run is not None and record.run.run_id == run.run_id:
            self._jobs[run.job_id] = replace(record, run=run)

    def mark_running(self, run_id: str, *, at: float) -> None:
        with self._lock:
            run = self._runs[run_id]
            if run.phase is RunPhase.STARTING:
                self._set_run(replace(run, phase=RunPhase.RUNNING))
                record = self._jobs[run.job_id]
                self._event(at, "running", record, record.state, "executor", "launched",
                            run_id=run_id, phase=str(RunPhase.RUNNING),
                            from_phase=str(run.phase))  # fmt: skip

    def request_stop(
        self, run_id: str, *, stop_by: float, cause: StopCause, reason: str, at: float, actor: str
    ) -> None:
        with self._lock:
            run = self._runs[run_id]
            if run.phase in (RunPhase.STOPPING, RunPhase.ENDED):
                return
            self._set_run(replace(run, phase=RunPhase.STOPPING, stop_by=stop_by,
                                  stop_cause=cause, stop_reason=reason))  # fmt: skip
            record = self._jobs[run.job_id]
            self._event(at, "stopping", record, record.state, actor, reason, run_id=run_id,
                        phase=str(RunPhase.STOPPING), from_phase=str(run.phase))  # fmt: skip

    def restate_stop(
        self, run_id: str, *, cause: StopCause, reason: str, at: float, actor: str
    ) -> None:
        with self._lock:
            run = self._runs[run_id]
            if run.phase is not RunPhase.STOPPING or run.stop_cause is cause:
                return
            self._set_run(replace(run, stop_cause=cause, stop_reason=reason))
            record = self._jobs[run.job_id]
            self._event(at, "stopping", record, record.state, actor, reason, run_id=run_id,
                        phase=str(RunPhase.STOPPING), from_phase=str(RunPhase.STOPPING),
                        replaces=run.stop_reason)  # fmt: skip

    def end_run(self, run_id: str, *, outcome: JobState, exit_code: int | None, reason: str,
                at: float, actor: str,
                exit_codes: Sequence[int | None] = ()) -> JobRecord:  # fmt: skip
        with self._lock:
            run = self._runs[run_id]
            codes = tuple(exit_codes) or (None,) * len(run.placement)
            ended = replace(run, phase=RunPhase.ENDED, ended_at=at, exit_code=exit_code,
                            exit_codes=codes)  # fmt: skip
            self._runs[run_id] = ended
            before = self._jobs[run.job_id]
            gpus = sum(t.gpu_milli for t in before.job.tasks) / 1000
            terminal = outcome.is_terminal
            attained = before.attained_service + gpus * max(0.0, at - run.started_at)
            record = replace(before, state=outcome, run=None, end_time=at if terminal else None,
                             exit_code=exit_code if terminal else None, reason=reason,
                             attained_service=attained)  # fmt: skip
            self._jobs[run.job_id] = record
            job = before.job
            self._usage.append(
                UsageRecord(len(self._usage) + 1, run.job_id, run_id, job.tenant, job.user,
                            job.queue, run.flavor, run.started_at, max(at, run.started_at),
                            sum(t.gpu_milli for t in job.tasks),
                            sum(t.cpu_milli for t in job.tasks),
                            sum(t.memory_mib for t in job.tasks))
            )  # fmt: skip
            data = {"run_id": run_id, "phase": str(RunPhase.ENDED), "from_phase": str(run.phase)}
            if outcome is JobState.PENDING:  # a preemption: preempted, then requeued
                preempted = replace(record, state=JobState.PREEMPTED)
                self._event(at, "preempted", preempted, before.state, actor, reason, **data)
                self._event(at, "requeued", record, JobState.PREEMPTED, actor, reason, **data)
            else:
                self._event(at, str(outcome), record, before.state, actor, reason, **data)
            return record

    def runs_of(self, job_id: int) -> list[RunRecord]:
        with self._lock:
            return [self._runs[r] for r in self._runs_of.get(job_id, [])]

    def usage(self, *, after: int = 0, ended_after: float | None = None) -> list[UsageRecord]:
        with self._lock:
            return [
                u for u in self._usage[after:]
                if ended_after is None or u.ended_at > ended_after
            ]  # fmt: skip

    def sync_nodes(
        self, nodes: Sequence[Node], *, at: float, pool: str | None = None
    ) -> list[Node]:
        with self._lock:
            stored = dict(self._nodes)
            self._nodes = {
                name: n if pool is not None and n.pool != pool else replace(n, state=NodeState.DOWN)
                for name, n in stored.items()
            }
            for node in nodes:
                old = stored.get(node.name)
                kept = old is not None and old.state is NodeState.DRAINING  # an admin's drain
                self._nodes[node.name] = replace(node, state=NodeState.DRAINING) if kept else node
            return self.nodes()

    def nodes(self) -> list[Node]:
        with self._lock:
            return list(self._nodes.values())

    def set_node_state(self, name: str, state: NodeState, *, at: float, actor: str) -> Node:
        with self._lock:
            if name not in self._nodes:
                raise NotFoundError(f"no node {name!r}")
            node = replace(self._nodes[name], state=state)
            self._nodes[name] = node
            self._event(at, f"node {state}", None, None, actor, f"node {name} {state}", node=name)
            return node

    def save_quotas(self, config: QuotaConfig, *, at: float) -> None:
        with self._lock:
            self._quotas = config

    def quotas(self) -> QuotaConfig:
        with self._lock:
            return self._quotas

    def add_token(self, name: str, role: str, token_hash: str, *, at: float) -> TokenRecord:
        with self._lock:
            record = TokenRecord(next(self._token_ids), name, role, at)
            self._tokens[token_hash] = record
            return record

    def find_token(self, token_hash: str) -> TokenRecord | None:
        with self._lock:
            # Constant-time comparison of every stored hash, as a careful store would do.
            found = [r for h, r in self._tokens.items() if hmac.compare_digest(h, token_hash)]
            return next((r for r in found if r.revoked_at is None), None)

    def events(self, job_id: int | None = None, *, after: int = 0,
               limit: int = 1000) -> list[EventRecord]:  # fmt: skip
        with self._lock:
            found = [e for e in self._events if e.id > after and job_id in (None, e.job_id)]
            return found[:limit]


@dataclass
class FakeExecutor:
    """An executor that starts nothing: it records launches and signals, and serves the logs
    a test writes with ``write_log``."""

    nodes: list[Node]
    launched: list[TaskLaunch] = field(default_factory=list)
    signals: list[tuple[str, bool]] = field(default_factory=list)
    logs: dict[tuple[str, int], bytearray] = field(default_factory=dict)

    def inventory_source(self) -> str:
        return "declared"

    def inventory(self) -> list[Node]:
        return list(self.nodes)

    def launch(self, tasks: Sequence[TaskLaunch]) -> None:
        self.launched.extend(tasks)

    def status(self, run_id: str, num_tasks: int) -> RunStatus:
        return RunStatus(run_id, RunState.UNKNOWN)

    def statuses(self, runs: Sequence[tuple[str, int]]) -> list[RunStatus]:
        return [self.status(run_id, n) for run_id, n in runs]

    def notify_on_exit(self, callback: Callable[[str], None]) -> None:
        return None  # it starts nothing, so nothing ever exits

    def signal(self, run_id: str, *, kill: bool) -> None:
        self.signals.append((run_id, kill))

    def write_log(self, run_id: str, task_index: int, data: bytes) -> None:
        self.logs.setdefault((run_id, task_index), bytearray()).extend(data)

    def read_log(self, run_id: str, task_index: int, offset: int, limit: int) -> tuple[bytes, int]:
        log = self.logs.get((run_id, task_index), bytearray())
        data = bytes(log[offset : offset + limit])
        return data, offset + len(data)


@dataclass
class FakeScheduler:
    """The scheduling loop's face to the use cases: counts wakes, stops runs by asking the
    store (the run then ends when the test says), and returns the explanations a test sets."""

    store: MemoryStore
    clock: ManualClock
    grace_seconds: float = 30.0
    wakes: int = 0
    explanations: dict[int, Explanation] = field(default_factory=dict)
    waits: dict[int, DependencyWait] = field(default_factory=dict)

    def wake(self) -> None:
        self.wakes += 1

    def stop_run(self, run: RunRecord, *, cause: StopCause, reason: str, actor: str) -> None:
        now = self.clock.now()
        stop_by = now + self.grace_seconds
        self.store.request_stop(
            run.run_id, stop_by=stop_by, cause=cause, reason=reason, at=now, actor=actor
        )

    def explanation(self, job_id: int) -> Explanation | None:
        return self.explanations.get(job_id)

    def dependency_wait(self, job_id: int) -> DependencyWait | None:
        return self.waits.get(job_id)


def default_nodes() -> list[Node]:
    """An 8-GPU H100 node and a 4-GPU A100 node."""
    return [
        Node("gpu-1", "H100-80G", 8, 64_000, 512 * 1024, ("zone-a", "rack-1", "gpu-1")),
        Node("gpu-2", "A100-40G", 4, 32_000, 256 * 1024, ("zone-a", "rack-2", "gpu-2")),
    ]


@dataclass
class Harness:
    """A ``ControlPlane`` over the fakes, plus moves a scheduler and an executor would make."""

    store: MemoryStore
    executor: FakeExecutor
    clock: ManualClock
    loop: FakeScheduler
    control: ControlPlane
    _runs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def start(self, job_id: int, node: str = "gpu-1") -> RunRecord:
        """Start every task of a pending job on ``node`` (devices counted up from 0)."""
        record = self.store.get_job(job_id)
        flavor = next(n.flavor for n in self.store.nodes() if n.name == node)
        placement, device = [], 0
        for task in record.job.tasks:
            count = max(1, task.whole_gpus) if task.gpu_milli else 0
            share = 1000 if task.whole_gpus else task.gpu_milli
            placement.append(TaskPlacement(node, tuple(range(device, device + count)), share))
            device += count
        run = RunRecord(f"r{next(self._runs)}", job_id, RunPhase.STARTING, flavor,
                        tuple(placement), self.clock.now())  # fmt: skip
        if not self.store.begin_run(run, actor="scheduler"):
            raise AssertionError(f"job {job_id} could not start")
        self.store.mark_running(run.run_id, at=self.clock.now())
        return self.store.runs_of(job_id)[-1]

    def finish(self, job_id: int, outcome: JobState = JobState.SUCCEEDED, exit_code: int | None = 0,
               reason: str = "exited") -> JobRecord:  # fmt: skip
        """End the job's current run."""
        run = self.store.get_job(job_id).run
        if run is None:
            raise AssertionError(f"job {job_id} has no run")
        return self.store.end_run(run.run_id, outcome=outcome, exit_code=exit_code, reason=reason,
                                  at=self.clock.now(), actor="executor")  # fmt: skip


def make_harness(nodes: Sequence[Node] | None = None, quotas: QuotaConfig | None = None,
                 tokens: Mapping[str, str] | None = None) -> Harness:  # fmt: skip
    """A harness with ``nodes`` (default: ``default_nodes()``), ``quotas`` (default: one
    unconstrained queue) and ``tokens`` (token -> name)."""
    clock = ManualClock()
    store = MemoryStore(quotas)
    executor = FakeExecutor(list(nodes if nodes is not None else default_nodes()))
    store.sync_nodes(executor.inventory(), at=clock.now())
    loop = FakeScheduler(store, clock)
    harness = Harness(store, executor, clock, loop, ControlPlane(store, executor, clock, loop))
    for token, name in (tokens or {}).items():
        store.add_token(name, "admin", hash_token(token), at=clock.now())
    return harness


class InProcessTransport(httpx.BaseTransport):
    """A synchronous httpx transport that calls an ASGI app in this process (as
    ``httpx.ASGITransport`` does for async clients), on an event loop in a helper thread."""

    def __init__(self, app: ASGIApp) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._loop = ExitStack()
        self._portal = self._loop.enter_context(start_blocking_portal())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def call() -> httpx.Response:
            response = await self._asgi.handle_async_request(request)
            body = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=body)

        return self._portal.call(call)

    def close(self) -> None:
        self._loop.close()
