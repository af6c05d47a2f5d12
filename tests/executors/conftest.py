"""Fixtures for the executor tests: a local executor over a temporary data directory, a
builder for the tasks of a run, and a deadline helper that polls instead of timing.

Every test runs real processes; on teardown every runner and task still alive is killed, so
no test leaves a `sleep 30` behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from allot.control.ports import TaskLaunch
from allot.control.records import Launch
from allot.core.model import TaskPlacement
from allot.executors.local import LocalExecutor
from allot.executors.task_state import Processes

T = TypeVar("T")
NODE = "testnode"


def wait_until(check: Callable[[], T], what: str, timeout: float = 15.0) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last value: {value!r})")
        time.sleep(0.02)


class RunBuilder(Protocol):
    def __call__(
        self,
        run_id: str,
        script: str,
        *,
        num_tasks: int = 1,
        devices: Sequence[tuple[int, ...]] = ...,
        gpu_milli: int = 1000,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        time_limit: float | None = None,
    ) -> list[TaskLaunch]: ...


def _run(
    run_id: str,
    script: str,
    *,
    num_tasks: int = 1,
    devices: Sequence[tuple[int, ...]] = (),
    gpu_milli: int = 1000,
    env: Mapping[str, str] | None = None,
    workdir: str | None = None,
    time_limit: float | None = None,
) -> list[TaskLaunch]:
    launch = Launch(("/bin/sh", "-c", script), workdir, dict(env or {}))
    tasks = []
    for index in range(num_tasks):
        held = devices[index] if index < len(devices) else ()
        where = TaskPlacement(NODE, held, gpu_milli if held else 0)
        tasks.append(TaskLaunch(run_id, 7, index, num_tasks, where, launch, time_limit))
    return tasks


@pytest.fixture
def run() -> RunBuilder:
    """Builds the tasks of a run whose every task runs ``/bin/sh -c script``."""
    return _run


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    yield path
    for pid_file in path.glob("runs/*/task-*/pid.json"):
        procs = Processes.read(pid_file.parent)
        if procs is None:
            continue
        if procs.task_pid is not None and procs.task_alive:
            _quietly(os.killpg, procs.task_pid, signal.SIGKILL)
        if procs.runner_alive:
            _quietly(os.kill, procs.runner_pid, signal.SIGKILL)


def _quietly(send: Callable[[int, int], None], pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        send(pid, signum)


@pytest.fixture
def executor(data_dir: Path) -> LocalExecutor:
    return LocalExecutor(data_dir, node_name=NODE, grace_seconds=0.5)


def log_of(executor: LocalExecutor, run_id: str, task: int = 0) -> str:
    data, _ = executor.read_log(run_id, task, 0, 1 << 20)
    return data.decode()


@pytest.fixture
def read_log() -> Callable[[LocalExecutor, str, int], str]:
    return log_of


@pytest.fixture
def until() -> Callable[..., object]:
    return wait_until
