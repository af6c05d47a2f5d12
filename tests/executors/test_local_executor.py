"""The local executor with real processes: environment, exit codes, signals, time limits,
idempotent launches, restarts of the server, lost tasks, gangs and logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from allot.control.ports import RunState, RunStatus, TaskLaunch
from allot.control.records import Launch
from allot.executors import runner
from allot.executors.local import LocalExecutor
from allot.executors.task_state import Processes

Until = Callable[..., object]
RunBuilder = Callable[..., list[TaskLaunch]]
ReadLog = Callable[[LocalExecutor, str, int], str]


def env_of(log: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in log.splitlines() if "=" in line)


def ended(executor: LocalExecutor, run_id: str, until: Until, num_tasks: int = 1) -> RunStatus:
    def check() -> RunStatus | None:
        status = executor.status(run_id, num_tasks)
        return status if status.state in (RunState.EXITED, RunState.LOST) else None

    found = until(check, f"run {run_id} to end")
    assert isinstance(found, RunStatus)
    return found


def started(executor: LocalExecutor, run_id: str, until: Until, task: int = 0) -> Processes:
    """The runner and task pids once the runner has started the task."""

    def check() -> Processes | None:
        procs = Processes.read(executor.task_dir(run_id, task))
        return procs if procs is not None and procs.task_pid is not None else None

    found = until(check, f"task {task} of {run_id} to start")
    assert isinstance(found, Processes)
    return found


def test_a_task_sees_its_devices_ids_and_workdir_but_never_the_token(
    executor: LocalExecutor,
    run: RunBuilder,
    until: Until,
    read_log: ReadLog,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALLOT_TOKEN", "secret-token-value")
    monkeypatch.setenv("ALLOT_DATA_DIR", str(data_dir))  # where the admin token lives
    monkeypatch.setenv("RANK", "5")  # the server's own, if it had one, is not the task's
    user_env = {"GREETING": "hello", "CUDA_VISIBLE_DEVICES": "7"}
    executor.launch(run("env1", "env; echo cwd=$(pwd)", devices=[(0, 1)], env=user_env))
    status = ended(executor, "env1", until)
    env = env_of(read_log(executor, "env1", 0))
    assert status.state is RunState.EXITED
    assert status.exit_codes == (0,)
    assert env["GREETING"] == "hello"
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1"  # allot's value wins over the user's
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert (env["ALLOT_JOB_ID"], env["ALLOT_RUN_ID"]) == ("7", "env1")
    assert (env["ALLOT_TASK_INDEX"], env["ALLOT_NUM_TASKS"]) == ("0", "1")
    assert env["cwd"] == str(data_dir / "work")
    assert "ALLOT_TOKEN" not in env
    assert "ALLOT_DATA_DIR" not in env
    assert "ALLOT_GPU_FRACTION" not in env
    assert "RANK" not in env
    assert "MASTER_PORT" not in env
    spec = (executor.task_dir("env1", 0) / "spec.json").read_text()
    assert "secret-token-value" not in spec


def test_a_given_workdir_is_used(
    executor: LocalExecutor, run: RunBuilder, until: Until, read_log: ReadLog, tmp_path: Path
) -> None:
    executor.launch(run("wd", "pwd", workdir=str(tmp_path)))
    ended(executor, "wd", until)
    assert read_log(executor, "wd", 0).strip() == str(tmp_path)


def test_a_cpu_only_task_sees_no_gpu_and_a_share_sees_its_fraction(
    executor: LocalExecutor, run: RunBuilder, until: Until, read_log: ReadLog
) -> None:
    executor.launch(run("cpu", "env"))
    executor.launch(run("half", "env", devices=[(1,)], gpu_milli=500))
    ended(executor, "cpu", until)
    ended(executor, "half", until)
    cpu, half = env_of(read_log(executor, "cpu", 0)), env_of(read_log(executor, "half", 0))
    assert cpu["CUDA_VISIBLE_DEVICES"] == ""
    assert "ALLOT_GPU_FRACTION" not in cpu
    assert (half["CUDA_VISIBLE_DEVICES"], half["ALLOT_GPU_FRACTION"]) == ("1", "0.5")


def test_a_gang_gets_ranks_and_one_rendezvous(
    executor: LocalExecutor, run: RunBuilder, until: Until, read_log: ReadLog
) -> None:
    executor.launch(run("gang", "env", num_tasks=3, devices=[(0,), (1,), (2,)]))
    status = ended(executor, "gang", until, num_tasks=3)
    assert status.exit_codes == (0, 0, 0)
    assert status.detail == "all 3 tasks exited with code 0"
    envs = [env_of(read_log(executor, "gang", i)) for i in range(3)]
    assert [e["RANK"] for e in envs] == ["0", "1", "2"]
    assert [e["LOCAL_RANK"] for e in envs] == ["0", "1", "2"]
    assert {e["WORLD_SIZE"] for e in envs} == {"3"}
    assert {e["LOCAL_WORLD_SIZE"] for e in envs} == {"3"}
    assert {e["MASTER_ADDR"] for e in envs} == {"127.0.0.1"}
    ports = {e["MASTER_PORT"] for e in envs}
    assert len(ports) == 1
    assert 0 < int(ports.pop()) < 65536
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "2"]


@pytest.mark.parametrize("code", [0, 3])
def test_exit_codes_are_reported(
    executor: LocalExecutor, run: RunBuilder, until: Until, code: int
) -> None:
    executor.launch(run(f"code{code}", f"exit {code}"))
    status = ended(executor, f"code{code}", until)
    assert (status.state, status.exit_codes, status.timed_out) == (RunState.EXITED, (code,), False)
    assert status.detail == f"the task exited with code {code}"


def test_a_task_killed_by_a_signal_reports_it(
    executor: LocalExecutor, run: RunBuilder, until: Until
) -> None:
    executor.launch(run("sig", '[ "$ALLOT_TASK_INDEX" = 1 ] && kill -9 $$; exit 0', num_tasks=2))
    status = ended(executor, "sig", until, num_tasks=2)
    assert status.exit_codes == (0, -9)
    assert status.detail == "task 1 killed by signal 9 (SIGKILL)"


def test_sigterm_stops_a_well_behaved_task(
    executor: LocalExecutor, run: RunBuilder, until: Until
) -> None:
    executor.launch(run("term", "sleep 30"))
    started(executor, "term", until)
    executor.signal("term", kill=False)
    status = ended(executor, "term", until)
    assert status.exit_codes == (-signal.SIGTERM,)
    exit_record = json.loads((executor.task_dir("term", 0) / "exit.json").read_text())
    assert exit_record["terminated"] is True
    assert exit_record["timed_out"] is False


def test_a_task_that_ignores_sigterm_is_killed(
    executor: LocalExecutor, run: RunBuilder, until: Until, read_log: ReadLog
) -> None:
    script = 'trap "" TERM; echo ready; while true; do sleep 0.05; done'
    executor.launch(run("stubborn", script))
    until(lambda: "ready" in read_log(executor, "stubborn", 0), "the trap to be set")
    executor.signal("stubborn", kill=False)
    assert executor.status("stubborn", 1).state is RunState.RUNNING
    executor.signal("stubborn", kill=True)
    status = ended(executor, "stubborn", until)
    # The runner is not in the task's group: it survives the SIGKILL and reports it.
    assert (status.state, status.exit_codes) == (RunState.EXITED, (-signal.SIGKILL,))


def test_the_runner_enforces_the_time_limit(
    executor: LocalExecutor, run: RunBuilder, until: Until, read_log: ReadLog
) -> None:
    executor.launch(run("limit", "sleep 30", time_limit=1.0))
    status = ended(executor, "limit", until)
    assert (status.exit_codes, status.timed_out) == ((-signal.SIGTERM,), True)
    assert status.detail == "the task hit its time limit and was killed by signal 15 (SIGTERM)"
    assert "time limit of 1 s reached" in read_log(executor, "limit", 0)


def test_the_time_limit_escalates_to_sigkill_after_the_grace_period(
    executor: LocalExecutor, run: RunBuilder, until: Until
) -> None:
    script = 'trap "" TERM; while true; do sleep 0.05; done'
    executor.launch(run("limit9", script, time_limit=0.5))
    status = ended(executor, "limit9", until)
    assert (status.exit_codes, status.timed_out) == ((-signal.SIGKILL,), True)


def test_launching_a_run_again_never_runs_a_task_twice(
    executor: LocalExecutor, run: RunBuilder, until: Until, tmp_path: Path
) -> None:
    counter = tmp_path / "counter"
    tasks = run("twice", f"echo $ALLOT_TASK_INDEX >> {counter}", num_tasks=2)
    executor.launch(tasks)
    executor.launch(tasks)
    ended(executor, "twice", until, num_tasks=2)
    executor.launch(tasks)  # after the run ended, too
    LocalExecutor(executor.data_dir).launch(tasks)  # and from a restarted server
    assert ended(executor, "twice", until, num_tasks=2).exit_codes == (0, 0)
    assert sorted(counter.read_text().split()) == ["0", "1"]


def test_a_restarted_server_adopts_a_running_run(
    executor: LocalExecutor, run: RunBuilder, until: Until, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    executor.launch(run("adopt", f"while [ ! -e {gate} ]; do sleep 0.05; done; exit 4"))
    started(executor, "adopt", until)
    restarted = LocalExecutor(executor.data_dir)
    assert restarted.status("adopt", 1).state is RunState.RUNNING
    gate.touch()
    status = ended(restarted, "adopt", until)
    assert (status.state, status.exit_codes) == (RunState.EXITED, (4,))


def test_a_task_killed_from_outside_is_lost(
    executor: LocalExecutor, run: RunBuilder, until: Until
) -> None:
    executor.launch(run("gone", "sleep 30"))
    procs = started(executor, "gone", until)
    assert procs.task_pid is not None
    os.killpg(procs.runner_pid, signal.SIGKILL)
    os.killpg(procs.task_pid, signal.SIGKILL)
    status = ended(executor, "gone", until)
    assert (status.state, status.exit_codes) == (RunState.LOST, (None,))
    assert f"runner (pid {procs.runner_pid}) ended without reporting" in status.detail


def test_a_task_whose_runner_died_still_counts_and_can_be_stopped(
    executor: LocalExecutor, run: RunBuilder, until: Until
) -> None:
    executor.launch(run("orphan", "sleep 30"))
    procs = started(executor, "orphan", until)
    os.kill(procs.runner_pid, signal.SIGKILL)
    until(lambda: not procs.runner_alive, "the runner to die")
    status = executor.status("orphan", 1)
    assert status.state is RunState.RUNNING  # it still holds its devices
    assert "runs without its runner" in status.detail
    executor.signal("orphan", kill=False)
    assert ended(executor, "orphan", until).state is RunState.LOST


def test_runners_are_reaped(executor: LocalExecutor, run: RunBuilder, until: Until) -> None:
    executor.launch(run("reap", "exit 0"))
    procs = started(executor, "reap", until)
    ended(executor, "reap", until)

    def reaped() -> bool:  # gone, not a zombie (its pid may be someone else's by now)
        found = runner.process_start(procs.runner_pid)
        return found is None or found[0] != procs.runner_start

    until(reaped, "the runner to be reaped")


def test_a_program_that_cannot_start_reports_why(
    executor: LocalExecutor, until: Until, run: RunBuilder, tmp_path: Path
) -> None:
    missing = [replace(t, launch=Launch(("no-such-program",))) for t in run("nocmd", "")]
    executor.launch(missing)
    status = ended(executor, "nocmd", until)
    assert status.exit_codes == (127,)
    assert status.detail == (
        "the task could not start: cannot start 'no-such-program': not found in the task's PATH"
    )
    executor.launch(run("nodir", "true", workdir=str(tmp_path / "absent")))
    status = ended(executor, "nodir", until)
    assert status.exit_codes == (127,)
    assert "workdir" in status.detail
    assert "is not usable" in status.detail


def test_read_log_pages_through_the_output(
    executor: LocalExecutor, run: RunBuilder, until: Until
) -> None:
    assert executor.read_log("logs", 0, 0, 10) == (b"", 0)  # not launched yet
    executor.launch(run("logs", "printf 'hello\\nworld\\n'"))
    ended(executor, "logs", until)
    assert executor.read_log("logs", 0, 0, 5) == (b"hello", 5)
    assert executor.read_log("logs", 0, 5, 100) == (b"\nworld\n", 12)
    assert executor.read_log("logs", 0, 12, 100) == (b"", 12)
    with pytest.raises(ValueError, match="offset"):
        executor.read_log("logs", 0, -1, 10)


def test_a_run_never_launched_is_unknown(executor: LocalExecutor) -> None:
    status = executor.status("nothing", 2)
    assert (status.state, status.exit_codes) == (RunState.UNKNOWN, ())


def test_run_ids_and_tasks_are_checked(executor: LocalExecutor, run: RunBuilder) -> None:
    with pytest.raises(ValueError, match="run_id"):
        executor.status("../escape", 1)
    with pytest.raises(ValueError, match="run_id: one launch takes one run"):
        executor.launch(run("a", "true") + run("b", "true"))
    with pytest.raises(ValueError, match="lists a task twice"):
        executor.launch(run("dup", "true", num_tasks=2)[:1] * 2)


def test_a_task_outlives_the_server_that_launched_it(
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
launch = Launch(("/bin/sh", "-c", script))
task = TaskLaunch("orphaned-server", 1, 0, 1, TaskPlacement("n"), launch, None)
LocalExecutor(Path({str(executor.data_dir)!r})).launch([task])
"""
    subprocess.run([sys.executable, "-c", server], check=True, timeout=60)  # then it is gone
    started(executor, "orphaned-server", until)
    assert executor.status("orphaned-server", 1).state is RunState.RUNNING
    gate.touch()
    status = ended(executor, "orphaned-server", until)
    assert (status.state, status.exit_codes) == (RunState.EXITED, (0,))
    assert executor.read_log("orphaned-server", 0, 0, 100)[0] == b"survived\n"
