"""The runner on its own (``python -m allot.executors.runner``), the files it leaves, the
starting window before it reports, and the environment the executor builds for a task."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from allot.control.ports import RunState, TaskLaunch
from allot.control.records import Launch
from allot.core.model import TaskPlacement
from allot.executors import runner
from allot.executors.environment import task_environment
from allot.executors.local import LocalExecutor
from allot.executors.task_state import STARTING_WINDOW, Processes

Until = Callable[..., object]
RunBuilder = Callable[..., list[TaskLaunch]]


def run_module(task_dir: Path) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "allot.executors.runner", str(task_dir)]
    return subprocess.run(command, capture_output=True, timeout=30, check=False)


def write_spec(task_dir: Path, script: str, **extra: object) -> None:
    task_dir.mkdir(parents=True)
    spec = {"argv": ["/bin/sh", "-c", script], "workdir": str(task_dir), "env": {}, **extra}
    (task_dir / "spec.json").write_text(json.dumps(spec))


def test_the_module_runs_a_task_and_records_it(tmp_path: Path) -> None:
    task_dir = tmp_path / "task-0"
    write_spec(task_dir, "echo out; echo err >&2; exit 5")
    assert run_module(task_dir).returncode == 0
    exit_record = json.loads((task_dir / "exit.json").read_text())
    assert exit_record["exit_code"] == 5
    assert (exit_record["timed_out"], exit_record["terminated"]) == (False, False)
    assert (task_dir / "output.log").read_text() == "out\nerr\n"
    pids = json.loads((task_dir / "pid.json").read_text())
    assert pids["boot_id"] == runner.boot_id()
    assert pids["task_pid"] != pids["pid"]


def test_a_claimed_task_is_never_run_again(tmp_path: Path) -> None:
    task_dir = tmp_path / "task-0"
    write_spec(task_dir, f"echo ran >> {tmp_path / 'ran'}")
    (task_dir / "claim").touch()
    assert run_module(task_dir).returncode == 0
    assert not (tmp_path / "ran").exists()
    assert not (task_dir / "pid.json").exists()
    assert not (task_dir / "exit.json").exists()


def test_the_runner_forwards_sigterm_to_the_task(tmp_path: Path, until: Until) -> None:
    task_dir = tmp_path / "task-0"
    write_spec(task_dir, "sleep 30")
    command = [sys.executable, "-m", "allot.executors.runner", str(task_dir)]
    with subprocess.Popen(command, start_new_session=True) as proc:
        found = until(lambda: Processes.read(task_dir), "pid.json")
        assert isinstance(found, Processes)
        until(lambda: (p := Processes.read(task_dir)) and p.task_pid, "the task to start")
        proc.send_signal(signal.SIGTERM)  # to the runner alone, not to the task's group
        assert proc.wait(timeout=30) == 0
    exit_record = json.loads((task_dir / "exit.json").read_text())
    assert (exit_record["exit_code"], exit_record["terminated"]) == (-signal.SIGTERM, True)


def test_the_runner_records_the_process_start_time(tmp_path: Path, until: Until) -> None:
    task_dir = tmp_path / "task-0"
    write_spec(task_dir, "sleep 30")
    command = [sys.executable, "-m", "allot.executors.runner", str(task_dir)]
    with subprocess.Popen(command, start_new_session=True) as proc:
        until(lambda: (p := Processes.read(task_dir)) and p.task_pid, "the task to start")
        procs = Processes.read(task_dir)
        assert procs is not None
        assert procs.runner_pid == proc.pid
        found = runner.process_start(proc.pid)
        assert found is not None
        assert found[0] == procs.runner_start
        assert procs.runner_alive
        # The same pid with another start time is another process.
        assert not runner.is_alive(proc.pid, procs.runner_start + 1, procs.boot_id)
        assert procs.task_pid is not None
        os.killpg(procs.task_pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == 0
    assert json.loads((task_dir / "exit.json").read_text())["exit_code"] == -signal.SIGKILL


def test_a_spec_nobody_claims_is_starting_then_lost_and_can_be_launched_again(
    data_dir: Path, run: RunBuilder, until: Until
) -> None:
    # A "python" that exits at once stands for a server that died before its runner came up.
    stillborn = LocalExecutor(data_dir, python="/bin/true")
    tasks = run("late", "exit 0")
    stillborn.launch(tasks)
    assert stillborn.status("late", 1).state is RunState.RUNNING
    spec = stillborn.task_dir("late", 0) / "spec.json"
    long_ago = time.time() - STARTING_WINDOW - 5
    os.utime(spec, (long_ago, long_ago))
    status = stillborn.status("late", 1)
    assert status.state is RunState.LOST
    assert status.detail == "the task never started: no runner claimed it within 10 s of its launch"
    executor = LocalExecutor(data_dir)
    executor.launch(tasks)
    until(lambda: executor.status("late", 1).state is RunState.EXITED, "the relaunch to run")


@pytest.mark.parametrize("kill", [False, True])
def test_a_stop_before_the_runner_is_up_keeps_the_task_from_starting(
    data_dir: Path, run: RunBuilder, until: Until, tmp_path: Path, kill: bool
) -> None:
    ran = tmp_path / "ran"
    tasks = run("early", f"touch {ran}")
    LocalExecutor(data_dir, python="/bin/true").launch(tasks)
    executor = LocalExecutor(data_dir)
    executor.signal("early", kill=kill)
    executor.launch(tasks)
    until(lambda: executor.status("early", 1).state is RunState.EXITED, "the runner to finish")
    status = executor.status("early", 1)
    assert status.exit_codes == (-(signal.SIGKILL if kill else signal.SIGTERM),)
    assert status.detail == "the task was stopped before it started"
    assert not ran.exists()


def test_a_gang_with_an_unlaunched_task_is_lost_once_the_others_end(
    executor: LocalExecutor, run: RunBuilder, until: Until
) -> None:
    executor.launch(run("partial", "exit 0", num_tasks=2)[:1])
    until(lambda: executor.status("partial", 2).state is RunState.LOST, "the run to be lost")
    assert executor.status("partial", 2).detail == "task 1 was never launched"


def _task(num_tasks: int = 1, index: int = 0, **env: str) -> TaskLaunch:
    where = TaskPlacement("n", (2,), 250)
    return TaskLaunch("r1", 3, index, num_tasks, where, Launch(("true",), None, env), None)


def test_the_environment_puts_allot_variables_over_the_users_over_the_servers() -> None:
    server = {"PATH": "/bin", "ALLOT_TOKEN": "t", "WORLD_SIZE": "9", "HOME": "/home/s"}
    env = task_environment(_task(HOME="/home/u", ALLOT_TASK_INDEX="5"), server, master_port=None)
    assert env["PATH"] == "/bin"
    assert env["HOME"] == "/home/u"
    assert env["ALLOT_TASK_INDEX"] == "0"
    assert (env["CUDA_VISIBLE_DEVICES"], env["ALLOT_GPU_FRACTION"]) == ("2", "0.25")
    assert "ALLOT_TOKEN" not in env
    assert "WORLD_SIZE" not in env


def test_the_environment_of_a_gang_task_names_its_rank_and_peers() -> None:
    env = task_environment(
        _task(num_tasks=4, index=3), {}, master_port=29500, local_rank=1, local_world_size=2
    )
    assert env["RANK"] == "3"
    assert (env["WORLD_SIZE"], env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"]) == ("4", "1", "2")
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("127.0.0.1", "29500")


def test_a_relaunched_gang_keeps_its_master_port(data_dir: Path, run: RunBuilder) -> None:
    tasks = run("port", "exit 0", num_tasks=2)
    LocalExecutor(data_dir, python="/bin/true").launch(tasks[:1])
    LocalExecutor(data_dir, python="/bin/true").launch(tasks)
    ports = {
        json.loads((data_dir / f"runs/port/task-{i}/spec.json").read_text())["env"]["MASTER_PORT"]
        for i in range(2)
    }
    assert len(ports) == 1


def test_a_missing_interpreter_is_refused() -> None:
    with pytest.raises(ValueError, match="python: no interpreter"):
        LocalExecutor(Path("/nonexistent"), python="/no/such/python")
