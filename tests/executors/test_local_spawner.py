"""The spawner: runners are forked by one long-lived process instead of started as fresh
interpreters, and every guarantee of a runner still holds: it outlives the server and the
spawner, a task is never run twice, and a spawner that died is replaced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from allot.control.ports import RunState, TaskLaunch
from allot.executors import runner
from allot.executors.local import LocalExecutor
from allot.executors.task_state import Processes

Until = Callable[..., object]
RunBuilder = Callable[..., list[TaskLaunch]]


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[1])


def gone(pid: int) -> bool:
    """The process has exited and been reaped (not a zombie)."""
    found = runner.process_start(pid)
    return found is None


def runner_of(executor: LocalExecutor, run_id: str, until: Until) -> Processes:
    def check() -> Processes | None:
        procs = Processes.read(executor.task_dir(run_id, 0))
        return procs if procs is not None and procs.task_pid is not None else None

    found = until(check, f"the task of {run_id} to start")
    assert isinstance(found, Processes)
    return found


def exit_code(executor: LocalExecutor, run_id: str, until: Until) -> int | None:
    def check() -> bool:
        return executor.status(run_id, 1).state in (RunState.EXITED, RunState.LOST)

    until(check, f"run {run_id} to end")
    status = executor.status(run_id, 1)
    assert status.state is RunState.EXITED, status.detail
    return status.exit_codes[0]


def test_runners_are_forked_by_the_spawner_not_by_the_server(
    executor: LocalExecutor, run: RunBuilder, until: Until, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    executor.launch(run("forked", f"while [ ! -e {gate} ]; do sleep 0.05; done; exit 5"))
    procs = runner_of(executor, "forked", until)
    spawner = executor._spawner
    assert spawner is not None
    assert spawner.pid is not None
    assert spawner.pid != os.getpid()
    assert parent_of(procs.runner_pid) == spawner.pid
    assert os.getsid(procs.runner_pid) == procs.runner_pid  # a session of its own
    gate.touch()
    assert exit_code(executor, "forked", until) == 5
    until(lambda: gone(procs.runner_pid), "the runner to be reaped")


def test_a_spawner_that_died_is_replaced_and_its_runners_go_on(
    executor: LocalExecutor, run: RunBuilder, until: Until, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    executor.launch(run("before", f"while [ ! -e {gate} ]; do sleep 0.05; done; exit 3"))
    first = executor._spawner
    assert first is not None
    assert first.pid is not None
    old = first.pid
    procs = runner_of(executor, "before", until)
    os.kill(old, signal.SIGKILL)
    until(lambda: gone(old), "the spawner to die and be reaped")
    executor.launch(run("after", "exit 0"))
    assert exit_code(executor, "after", until) == 0
    assert executor._spawner is not None
    assert executor._spawner.pid not in (None, old)
    assert procs.runner_alive  # the runner of the first run outlived its spawner
    gate.touch()
    assert exit_code(executor, "before", until) == 3


def test_a_relaunch_through_a_new_spawner_never_runs_a_task_twice(
    executor: LocalExecutor, run: RunBuilder, until: Until, tmp_path: Path
) -> None:
    counter = tmp_path / "counter"
    tasks = run("once", f"echo ran >> {counter}")
    executor.launch(tasks)
    assert exit_code(executor, "once", until) == 0
    assert executor._spawner is not None
    assert executor._spawner.pid is not None
    os.kill(executor._spawner.pid, signal.SIGKILL)
    executor.launch(tasks)
    LocalExecutor(executor.data_dir).launch(tasks)  # another server's spawner, too
    assert exit_code(executor, "once", until) == 0
    assert counter.read_text() == "ran\n"


def test_the_spawner_ends_with_its_server_and_the_runner_lives_on(
    executor: LocalExecutor, until: Until, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    server = f"""
from pathlib import Path
from allot.control.ports import TaskLaunch
from allot.control.records import Launch
from allot.core.model import TaskPlacement
from allot.executors.local import LocalExecutor
script = "while [ ! -e {gate} ]; do sleep 0.05; done; echo survived"
task = TaskLaunch("left", 1, 0, 1, TaskPlacement("n"), Launch(("/bin/sh", "-c", script)), None)
executor = LocalExecutor(Path({str(executor.data_dir)!r}))
executor.launch([task])
print(executor._spawner.pid)
"""
    out = subprocess.run(
        [sys.executable, "-c", server], check=True, timeout=60, capture_output=True, text=True
    )
    spawner = int(out.stdout)
    procs = runner_of(executor, "left", until)
    assert procs.runner_alive

    def spawner_ended() -> bool:
        found = runner.process_start(spawner)
        return found is None or found[1] == "Z"  # exited (reparented: maybe not reaped)

    until(spawner_ended, "the spawner to exit after its server")
    assert executor.status("left", 1).state is RunState.RUNNING
    gate.touch()
    assert exit_code(executor, "left", until) == 0
    assert executor.read_log("left", 0, 0, 100)[0] == b"survived\n"


def test_without_a_usable_spawner_runners_start_as_interpreters(
    data_dir: Path, run: RunBuilder, until: Until, tmp_path: Path
) -> None:
    # An interpreter that cannot run the spawner (here: none at all) leaves the fresh
    # interpreter as the way to start runners; launches still never fail because of it.
    stillborn = LocalExecutor(data_dir, python="/bin/true")
    stillborn.launch(run("fallback", "exit 0"))
    assert stillborn._spawner is None
    executor = LocalExecutor(data_dir)
    executor.launch(run("fallback", "exit 0"))  # the unclaimed task is started now
    assert exit_code(executor, "fallback", until) == 0


def test_a_request_the_spawner_never_answered_starts_its_runner_another_way(
    executor: LocalExecutor, run: RunBuilder, until: Until
) -> None:
    executor.launch(run("first", "exit 0"))
    spawner = executor._spawner
    assert spawner is not None
    assert spawner.pid is not None
    pid = spawner.pid
    os.kill(pid, signal.SIGSTOP)  # it reads nothing more
    executor.launch(run("queued", "exit 6"))  # asked, never answered
    os.kill(pid, signal.SIGKILL)
    assert exit_code(executor, "queued", until) == 6
    assert exit_code(executor, "first", until) == 0


def test_a_spawner_that_hangs_is_given_up_and_its_requests_started_another_way(
    data_dir: Path, run: RunBuilder, until: Until
) -> None:
    executor = LocalExecutor(data_dir)
    assert executor._spawner is not None
    executor._spawner.timeout = 0.5
    executor.launch(run("first", "exit 0"))
    pid = executor._spawner.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    executor.launch(run("stuck", "exit 7"))
    assert exit_code(executor, "stuck", until) == 7
    until(lambda: gone(pid), "the hung spawner to be killed and reaped")
