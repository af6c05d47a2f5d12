"""Exits are pushed: the executor names the run of every runner that ends, as soon as it
ends, with pidfds or (where those are unavailable) by polling; every runner is reaped."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from allot.control.ports import RunState, TaskLaunch
from allot.executors.local import LocalExecutor

RunBuilder = Callable[..., list[TaskLaunch]]
Until = Callable[..., object]


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "polling"])
def test_each_ended_run_is_pushed_after_it_exited(
    executor: LocalExecutor, run: RunBuilder, until: Until, pidfd: bool
) -> None:
    executor._watcher._use_pidfd = pidfd
    pushed: list[tuple[str, RunState]] = []
    lock = threading.Lock()

    def on_exit(run_id: str) -> None:
        state = executor.status(run_id, 2 if run_id == "gang" else 1).state
        with lock:
            pushed.append((run_id, state))

    executor.notify_on_exit(on_exit)
    executor.launch(run("quick", "exit 0"))
    executor.launch(run("gang", "exit 3", num_tasks=2))
    executor.launch(run("slow", "sleep 0.5"))
    until(lambda: executor.unreported() == 0, "every runner reaped")

    def pushed_all() -> bool:
        with lock:
            return {run_id for run_id, _ in pushed} == {"gang", "quick", "slow"}

    # A push runs on the watcher's thread and may land just after the reap is counted.
    until(pushed_all, "every run pushed")
    # Each run is pushed (a gang once per task, or once for tasks that end together), and a
    # push comes after its runner wrote how the task ended.
    assert {run_id for run_id, _ in pushed} == {"gang", "quick", "slow"}
    last = dict(pushed)
    assert set(last.values()) == {RunState.EXITED}
