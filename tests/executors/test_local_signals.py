"""Stopping a run with real processes: a task gets SIGTERM once however often it is asked to
stop (a second SIGTERM could abort the checkpoint the first one started), a kill still goes
through, and a task that outlives its runner is reported in the run's notes."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

from allot.control.ports import RunState, TaskLaunch
from allot.executors.local import LocalExecutor
from allot.executors.task_state import Processes

Until = Callable[..., object]
RunBuilder = Callable[..., list[TaskLaunch]]
ReadLog = Callable[[LocalExecutor, str, int], str]


def _terms(path: Path) -> int:
    return len(path.read_text().split()) if path.exists() else 0


def _exit_record(executor: LocalExecutor, run_id: str, until: Until) -> dict[str, object]:
    path = executor.task_dir(run_id, 0) / "exit.json"
    until(path.exists, f"run {run_id} to record its end")
    record: dict[str, object] = json.loads(path.read_text())
    return record


def test_a_second_stop_sends_no_second_sigterm(
    executor: LocalExecutor, run: RunBuilder, until: Until, read_log: ReadLog, tmp_path: Path
) -> None:
    count, gate = tmp_path / "terms", tmp_path / "go"
    # Counts each SIGTERM and keeps running (as a task finishing its checkpoint would) until
    # the gate opens.
    script = (
        f"trap 'echo term >> {count}' TERM; echo ready; "
        f"while [ ! -e {gate} ]; do sleep 0.05; done; exit 0"
    )
    executor.launch(run("twice", script))
    until(lambda: "ready" in read_log(executor, "twice", 0), "the trap to be set")
    executor.signal("twice", kill=False)
    until(lambda: _terms(count) == 1, "the task to receive SIGTERM")
    executor.signal("twice", kill=False)  # a second cancel
    LocalExecutor(executor.data_dir).signal("twice", kill=False)  # and one after a restart
    gate.touch()
    record = _exit_record(executor, "twice", until)
    # The runner counts what reached it before it recorded the end: exactly the first.
    assert record["terms_received"] == 1
    assert (record["exit_code"], record["terminated"]) == (0, True)
    assert _terms(count) == 1


def test_a_kill_after_a_term_still_kills(
    executor: LocalExecutor, run: RunBuilder, until: Until, read_log: ReadLog
) -> None:
    script = 'trap "" TERM; echo ready; while true; do sleep 0.05; done'
    executor.launch(run("stubborn2", script))
    until(lambda: "ready" in read_log(executor, "stubborn2", 0), "the trap to be set")
    executor.signal("stubborn2", kill=False)
    executor.signal("stubborn2", kill=True)
    executor.signal("stubborn2", kill=False)  # never downgrades the kill
    record = _exit_record(executor, "stubborn2", until)
    assert record["exit_code"] == -signal.SIGKILL
    marker = executor.task_dir("stubborn2", 0) / "stop"
    assert marker.read_text() == "kill"


def test_a_task_without_its_runner_is_noted(
    executor: LocalExecutor, run: RunBuilder, until: Until
) -> None:
    executor.launch(run("orphan2", "sleep 30"))

    def started() -> Processes | None:
        procs = Processes.read(executor.task_dir("orphan2", 0))
        return procs if procs is not None and procs.task_pid is not None else None

    procs = until(started, "the task to start")
    assert isinstance(procs, Processes)
    assert executor.status("orphan2", 1).notes == ()
    os.kill(procs.runner_pid, signal.SIGKILL)
    until(lambda: not procs.runner_alive, "the runner to die")
    status = executor.status("orphan2", 1)
    assert status.state is RunState.RUNNING
    assert status.notes == (
        f"the task runs without its runner (pid {procs.runner_pid} is gone), so its exit code "
        "will not be known",
    )
    executor.signal("orphan2", kill=True)
    until(lambda: executor.status("orphan2", 1).state is RunState.LOST, "the task to end")
