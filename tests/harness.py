"""In-memory fakes of the control plane's ports, for unit tests of the layers above the store
(API, SDK): ``MemoryStore`` (the ``Store`` protocol in dicts, from ``memory_store``; the store
contract tests hold it to ``SqlStore``'s behaviour), ``FakeExecutor`` (serves logs the test
writes), ``ManualClock``, ``FakeScheduler`` (counts wakes, stops runs through the store).
``make_harness`` wires them into a ``ControlPlane`` over two nodes and one unconstrained queue
``default`` of tenant ``default``; ``Harness.start``/``finish`` move a job through its life.
``InProcessTransport`` lets a synchronous httpx client call an ASGI app (the API) in-process.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import httpx
from anyio.from_thread import start_blocking_portal
from starlette.types import ASGIApp

from allot.control.credentials import hash_token
from allot.control.dependencies import DependencyWait
from allot.control.ports import NotFoundError, RunState, RunStatus, TaskLaunch
from allot.control.principal import Role
from allot.control.records import JobRecord, RunPhase, RunRecord, StopCause
from allot.control.services import ControlPlane
from allot.core.explain import Explanation
from allot.core.model import JobState, Node, TaskPlacement
from allot.core.quota.config import QuotaConfig
from memory_store import MemoryStore  # re-exported: tests import it from here

START = 1_700_000_000.0


class ManualClock:
    """A clock that moves only when the test says so."""

    def __init__(self, start: float = START) -> None:
        self.time = start

    def now(self) -> float:
        return self.time

    def advance(self, seconds: float) -> float:
        self.time += seconds
        return self.time


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
    unconstrained queue) and ``tokens`` (token -> user name; each user a cluster admin)."""
    clock = ManualClock()
    store = MemoryStore(quotas)
    executor = FakeExecutor(list(nodes if nodes is not None else default_nodes()))
    store.sync_nodes(executor.inventory(), at=clock.now())
    loop = FakeScheduler(store, clock)
    harness = Harness(store, executor, clock, loop, ControlPlane(store, executor, clock, loop))
    for token, name in (tokens or {}).items():
        add_token(store, token, name, at=clock.now())
    return harness


def add_token(
    store: MemoryStore,
    token: str,
    user: str,
    *,
    at: float = START,
    cluster_admin: bool = True,
    roles: Mapping[str, Role] | None = None,
    expires_at: float | None = None,
) -> None:
    """Store ``token`` as a token of ``user`` (created when new: a cluster admin unless told
    otherwise, with ``roles`` in tenants)."""
    try:
        store.get_user(user)
    except NotFoundError:
        store.add_user(user, cluster_admin=cluster_admin, at=at)
    for tenant, role in (roles or {}).items():
        store.set_membership(user, tenant, role)
    store.add_token(user, f"{user}-token", hash_token(token), at=at, expires_at=expires_at)


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
