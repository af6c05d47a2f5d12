"""Shares of one GPU under CUDA MPS limits, and saying plainly when nothing enforces them.

No machine here runs an MPS daemon: the enforced path is exercised with a pipe directory that
holds a ``control`` FIFO where the daemon would put its own, so the environment a task gets is
real, but no CUDA client connects."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from allot.core.model import TaskPlacement
from allot.executors.local import LocalExecutor
from allot.executors.sharing import (
    MEMORY_LIMIT,
    PIPE_DIRECTORY,
    THREAD_PERCENTAGE,
    mps_pipe_directory,
    sharing_mode,
    with_gpu_share,
)

RunBuilder = Callable[..., list[object]]
Until = Callable[..., object]
ReadLog = Callable[[LocalExecutor, str, int], str]


def _daemon_pipe(tmp_path: Path) -> str:
    pipe = tmp_path / "mps"
    pipe.mkdir()
    os.mkfifo(pipe / "control")
    return str(pipe)


def test_without_a_daemon_sharing_is_unenforced_and_no_limit_is_set(tmp_path: Path) -> None:
    env = {PIPE_DIRECTORY: str(tmp_path), THREAD_PERCENTAGE: "100"}
    assert mps_pipe_directory(env) is None
    assert sharing_mode(env) == "unenforced"
    out = with_gpu_share(dict(env), TaskPlacement("n", (0,), 250), 4096, None)
    assert THREAD_PERCENTAGE not in out
    assert MEMORY_LIMIT not in out


def test_a_share_gets_thread_and_memory_limits_when_a_daemon_runs(tmp_path: Path) -> None:
    pipe = _daemon_pipe(tmp_path)
    assert sharing_mode({PIPE_DIRECTORY: pipe}) == "mps"
    out = with_gpu_share({}, TaskPlacement("n", (3,), 333), 4096, pipe)
    assert out[THREAD_PERCENTAGE] == "34"
    assert out[MEMORY_LIMIT] == "0=4096M"
    assert out[PIPE_DIRECTORY] == pipe


def test_whole_gpus_get_no_mps_limit(tmp_path: Path) -> None:
    pipe = _daemon_pipe(tmp_path)
    out = with_gpu_share({THREAD_PERCENTAGE: "10"}, TaskPlacement("n", (0, 1), 1000), 0, pipe)
    assert THREAD_PERCENTAGE not in out


def test_the_local_executor_sets_limits_for_a_share(
    executor: LocalExecutor,
    run: RunBuilder,
    until: Until,
    read_log: ReadLog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PIPE_DIRECTORY, str(tmp_path / "absent"))
    assert executor.gpu_sharing() == "unenforced"
    monkeypatch.setenv(PIPE_DIRECTORY, _daemon_pipe(tmp_path))
    assert executor.gpu_sharing() == "mps"
    executor.launch(run("share", "env", devices=[(0,)], gpu_milli=500))

    def done() -> str | None:
        log = read_log(executor, "share", 0)
        return log if THREAD_PERCENTAGE in log else None

    log = until(done, "the task's environment")
    assert isinstance(log, str)
    assert f"{THREAD_PERCENTAGE}=50" in log.splitlines()
