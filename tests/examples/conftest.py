"""Fixtures for running the shipped example scripts as real processes: the environment a task
of allot's local executor gets (the server's ``PATH``, with the Python running these tests
first, as when ``allot up`` runs in the activated virtualenv), and a way to wait for a line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

TIMEOUT_S = 120.0  # a guard against a hang, never a speed target

EnvFor = Callable[..., dict[str, str]]
ReadUntil = Callable[[subprocess.Popen[str], str], list[str]]


@pytest.fixture
def env_for() -> EnvFor:
    """``env_for(job_id=7, rank=None, world=1, port=None, extra={})``: a task's environment."""

    def make(
        *,
        job_id: int = 7,
        rank: int | None = None,
        world: int = 1,
        port: int | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.update(extra or {})
        env.update(
            ALLOT_JOB_ID=str(job_id), CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1",
            PYTHONUNBUFFERED="1",
        )  # fmt: skip
        if rank is not None:
            env.update(
                RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
            )  # fmt: skip
        return env

    return make


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def read_until() -> ReadUntil:
    """``read_until(proc, prefix)``: the process's output lines up to the first that starts
    with ``prefix`` (fails when the process ends first or the guard time passes)."""

    def read(proc: subprocess.Popen[str], prefix: str) -> list[str]:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"ended before a line starting {prefix!r}: {lines}")
            lines.append(line.rstrip("\n"))
            if line.startswith(prefix):
                return lines
        pytest.fail(f"no line starting {prefix!r} in time: {lines}")

    return read
