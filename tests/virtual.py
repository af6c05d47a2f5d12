"""A virtual-time harness for the live loop: the real ``SchedulingLoop`` over a real store,
with an executor that runs tasks in virtual time (``VirtualExecutor``) and a clock that moves
only when the test says. ``VirtualPlant.step`` advances time, pushes the exits that happened
meanwhile and runs one cycle; every cycle's report is recorded through the cycle-observer seam
(as Nomad's scheduler Harness records every plan it submits). No sleeps, no processes.

A task's run time comes from its job's ``runtime_estimate`` (the harness's convention: a job
runs exactly as long as it estimated; without one it runs until stopped); it exits 0 at the
end. SIGTERM ends it ``stop_delay`` seconds later with -15; SIGKILL at once with -9.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from allot.control.loop import SchedulingLoop
from allot.control.metering import MeteringConfig
from allot.control.observers import CycleReport
from allot.control.ports import RunState, RunStatus, TaskLaunch
from allot.control.principal import Principal
from allot.control.records import JobRecord, Launch, NewJob
from allot.control.services import ControlPlane
from allot.control.system import SystemConfig, build
from allot.core.model import Node, Resources
from allot.core.quota.config import QuotaConfig
from allot.store import SqlStore, default_database_url
from harness import ManualClock


@dataclass
class _Task:
    started: float
    ends: float | None  # None: runs until stopped
    code: int = 0


@dataclass
class VirtualExecutor:
    """Runs tasks in virtual time (see the module docstring). ``durations`` maps a job id to
    its run time; jobs not in it run until stopped."""

    clock: ManualClock
    nodes: list[Node]
    durations: dict[int, float] = field(default_factory=dict)
    stop_delay: float = 0.0
    runs: dict[str, list[_Task]] = field(default_factory=dict)
    launches: list[str] = field(default_factory=list)
    _callbacks: list[Callable[[str], None]] = field(default_factory=list)
    _told: set[str] = field(default_factory=set)

    def inventory(self) -> list[Node]:
        return list(self.nodes)

    def inventory_source(self) -> str:
        return "declared"

    def launch(self, tasks: Sequence[TaskLaunch]) -> None:
        run_id = tasks[0].run_id
        if run_id in self.runs:
            return  # idempotent per run id
        now = self.clock.now()
        duration = self.durations.get(tasks[0].job_id)
        ends = None if duration is None else now + duration
        self.runs[run_id] = [_Task(now, ends) for _ in range(tasks[0].num_tasks)]
        self.launches.append(run_id)

    def status(self, run_id: str, num_tasks: int) -> RunStatus:
        tasks = self.runs.get(run_id)
        if tasks is None:
            return RunStatus(run_id, RunState.UNKNOWN)
        now = self.clock.now()
        codes = tuple(t.code if t.ends is not None and t.ends <= now else None for t in tasks)
        state = RunState.EXITED if all(c is not None for c in codes) else RunState.RUNNING
        return RunStatus(run_id, state, codes)

    def statuses(self, runs: Sequence[tuple[str, int]]) -> list[RunStatus]:
        return [self.status(run_id, n) for run_id, n in runs]

    def notify_on_exit(self, callback: Callable[[str], None]) -> None:
        self._callbacks.append(callback)

    def signal(self, run_id: str, *, kill: bool) -> None:
        now = self.clock.now()
        for task in self.runs.get(run_id, []):
            if task.ends is not None and task.ends <= now:
                continue
            ends = now if kill else now + self.stop_delay
            if task.ends is None or ends < task.ends:
                task.ends, task.code = ends, (-9 if kill else -15)

    def read_log(self, run_id: str, task_index: int, offset: int, limit: int) -> tuple[bytes, int]:
        return b"", offset

    def exits_due(self) -> bool:
        """True when a run has ended by now whose exit was not pushed yet."""
        now = self.clock.now()
        return any(
            run_id not in self._told and all(t.ends is not None and t.ends <= now for t in tasks)
            for run_id, tasks in self.runs.items()
        )

    def push_exits(self) -> None:
        """Tell the subscribers of every run whose tasks all ended by now (once per run)."""
        now = self.clock.now()
        for run_id, tasks in self.runs.items():
            if run_id in self._told:
                continue
            if all(t.ends is not None and t.ends <= now for t in tasks):
                self._told.add(run_id)
                for callback in self._callbacks:
                    callback(run_id)


class VirtualPlant:
    """The loop, the use cases and a real SQLite store in ``root``, over a virtual executor
    and clock. ``reports`` holds every cycle's report; ``restart`` builds a new loop (and use
    cases) over the same store and executor, as a server restart would."""

    def __init__(
        self,
        root: Path,
        nodes: list[Node],
        quotas: QuotaConfig,
        *,
        policy: str = "allot",
        grace: float = 30.0,
        metering: MeteringConfig | None = None,
    ) -> None:
        self.clock = ManualClock()
        self.metering = metering
        root.mkdir(parents=True, exist_ok=True)
        self.store = SqlStore(default_database_url(root))
        self.store.migrate()
        self.store.save_quotas(quotas, at=self.clock.now())
        self.executor = VirtualExecutor(self.clock, nodes)
        self.policy = policy
        self.grace = grace
        self.reports: list[CycleReport] = []
        self.loop, self.control = self._build()

    def _build(self) -> tuple[SchedulingLoop, ControlPlane]:
        config = SystemConfig(self.policy, grace_seconds=self.grace)
        system = build(
            config,
            store=self.store,
            executors=self.executor,
            clock=self.clock,
            metering=self.metering,
        )
        system.loop.subscribe(self)
        return system.loop, system.control

    def cycle_done(self, report: CycleReport) -> None:
        self.reports.append(report)

    def restart(self) -> None:
        """A new loop and use cases over the same store and executor (nothing else kept)."""
        self.loop.close()
        self.loop, self.control = self._build()

    def submit(
        self,
        *,
        tenant: str = "default",
        user: str = "u",
        queue: str = "default",
        gpus: float = 1,
        tasks: int = 1,
        runs_for: float | None = None,
        **fields: object,
    ) -> JobRecord:
        """Submit a job; it runs ``runs_for`` virtual seconds once started (None: until
        stopped)."""
        job = NewJob(
            name="",
            tenant=tenant,
            user=user,
            queue=queue,
            tasks=(Resources.of(gpus=gpus, cpus=1, memory_mib=1024),) * tasks,
            launch=Launch(("true",)),
            runtime_estimate=runs_for,
            **fields,  # type: ignore[arg-type]
        )
        record, _ = self.control.submit(job, principal=Principal.admin(user))
        if runs_for is not None:
            self.executor.durations[record.id] = runs_for
        return record

    def step(self, seconds: float = 0.0) -> CycleReport:
        """Advance the clock, push the exits that happened meanwhile, and run one cycle."""
        self.clock.advance(seconds)
        self.executor.push_exits()
        return self.loop.run_once()

    def started(self) -> list[int]:
        """Every job started so far, in start order."""
        return [job for r in self.reports for job in r.applied.started]

    def close(self) -> None:
        self.loop.close()
        self.store.close()
