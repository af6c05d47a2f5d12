"""Reconcile hands on the active jobs as it left them, so the loop reads them once per cycle:
what it hands on is exactly what a fresh read returns, and it hands on nothing (the loop
reads again) when it changed a run in a way it does not derive (a stop)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from allot.control.ports import RunState, RunStatus, TaskLaunch
from allot.control.reconcile import reconcile
from allot.control.records import Launch, NewJob, RunPhase, RunRecord
from allot.control.registry import ExecutorRegistry
from allot.core.model import Resources, TaskPlacement
from allot.store import SqlStore, default_database_url


class ScriptedExecutor:
    """Reports what a test says about each run; launches and signals are recorded."""

    def __init__(self, states: dict[str, RunStatus]) -> None:
        self.states = states
        self.signalled: list[str] = []

    def inventory(self) -> list[object]:
        return []

    def inventory_source(self) -> str:
        return "declared"

    def launch(self, tasks: Sequence[TaskLaunch]) -> None:
        raise AssertionError("nothing is launched again")

    def status(self, run_id: str, num_tasks: int) -> RunStatus:
        return self.states[run_id]

    def statuses(self, runs: Sequence[tuple[str, int]]) -> list[RunStatus]:
        return [self.status(run_id, n) for run_id, n in runs]

    def notify_on_exit(self, callback: Callable[[str], None]) -> None:
        return None

    def signal(self, run_id: str, *, kill: bool) -> None:
        self.signalled.append(run_id)

    def read_log(self, run_id: str, task_index: int, offset: int, limit: int) -> tuple[bytes, int]:
        return b"", offset


class Clock:
    def now(self) -> float:
        return 100.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    found = SqlStore(default_database_url(tmp_path))
    found.migrate()
    yield found
    found.close()


def start(store: SqlStore, name: str, *, tasks: int = 1, running: bool = True) -> str:
    job = NewJob(
        name,
        "default",
        "ada",
        "default",
        (Resources.of(gpus=1, cpus=1, memory_mib=64),) * tasks,
        Launch(("true",)),
    )
    job_id = store.submit(job, at=1.0, actor="ada")[0].id
    placement = tuple(TaskPlacement("n1", (i,), 1000) for i in range(tasks))
    run = RunRecord(f"run-{name}", job_id, RunPhase.STARTING, "H100", placement, 2.0)
    assert store.begin_run(run, actor="scheduler")
    if running:
        store.mark_running(run.run_id, at=3.0)
    return run.run_id


def test_the_active_jobs_handed_on_are_what_a_fresh_read_returns(store: SqlStore) -> None:
    done = start(store, "done")
    busy = start(store, "busy")
    fresh = start(store, "fresh", running=False)
    executor = ScriptedExecutor(
        {
            done: RunStatus(done, RunState.EXITED, (0,)),
            busy: RunStatus(busy, RunState.RUNNING, (None,)),
            fresh: RunStatus(fresh, RunState.RUNNING, (None,)),
        }
    )
    registry = ExecutorRegistry.of(executor)  # type: ignore[arg-type]
    seen = reconcile(store, registry, Clock(), 30.0, only={done})
    assert seen.ended == 1
    assert seen.active is not None
    assert seen.active == store.active_jobs()
    phases = {r.run.run_id: r.run.phase for r in seen.active if r.run is not None}
    assert phases == {busy: RunPhase.RUNNING, fresh: RunPhase.RUNNING}


def test_after_a_stop_the_active_jobs_are_read_again(store: SqlStore) -> None:
    gang = start(store, "gang", tasks=2)
    executor = ScriptedExecutor({gang: RunStatus(gang, RunState.RUNNING, (3, None))})
    registry = ExecutorRegistry.of(executor)  # type: ignore[arg-type]
    seen = reconcile(store, registry, Clock(), 30.0)
    assert seen.stopped == 1
    assert seen.active is None
    assert executor.signalled == [gang]
