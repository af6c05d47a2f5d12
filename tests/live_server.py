"""Real ``allot`` processes for integration tests: ``LiveServer`` runs ``allot up`` in the
background on a free port with its own data directory (its output kept in a file),
``allot_up`` does the same for the length of a ``with`` block, and ``allot_cli`` runs one CLI
command against it, as a user would in a second terminal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

START_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_env(data_dir: Path, url: str | None = None) -> dict[str, str]:
    """The environment of a user of this server: its data directory (where the CLI finds
    the admin token) and its URL."""
    env = {**os.environ, "ALLOT_DATA_DIR": str(data_dir)}
    env.pop("ALLOT_TOKEN", None)
    if url is not None:
        env["ALLOT_URL"] = url
    return env


def allot_command(cpus: Sequence[int] | None = None) -> list[str]:
    """``python -m allot``, pinned to ``cpus`` when given (the server then sees only those)."""
    if cpus is None:
        return [sys.executable, "-m", "allot"]
    pin = (
        f"import os, runpy, sys; os.sched_setaffinity(0, {set(cpus)!r});"
        " sys.argv[0] = 'allot'; runpy.run_module('allot', run_name='__main__')"
    )
    return [sys.executable, "-c", pin]


class LiveServer:
    """``allot up`` in a subprocess."""

    def __init__(self, data_dir: Path, log: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *args: str, cpus: Sequence[int] | None = None) -> str:
        """Start and wait until ``/healthz`` answers; returns what it printed (the banner)."""
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*allot_command(cpus), "up", "--port", str(self.port), *args],
                env=cli_env(self.data_dir),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.log.parent,
            )
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self.output()
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"allot up exited with {self.proc.returncode}:\n{self.output()}"
                )
            assert time.monotonic() < deadline, f"allot up did not come up:\n{self.output()}"
            time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """Ctrl-C, as a user stops it (running jobs keep running)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None


@contextmanager
def allot_up(folder: Path, *, gpus: int = 2) -> Iterator[LiveServer]:
    """``allot up --gpus N`` run from ``folder``, with its data directory and log there;
    yields once it answers ``/healthz`` and stops it after."""
    server = LiveServer(folder / "data", folder / "server.log")
    server.start("--gpus", str(gpus))
    try:
        yield server
    finally:
        server.stop()


def allot_cli(
    server: LiveServer, *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``allot ARGS`` against ``server``; never raises on a non-zero exit."""
    return subprocess.run(
        [*allot_command(), *args],
        env=cli_env(server.data_dir, server.url),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or server.log.parent,
        check=False,
    )


def banner_line(banner: str, label: str) -> str:
    """The text after ``label:`` in ``allot up``'s banner (these lines are never wrapped)."""
    for line in banner.splitlines():
        if line.strip().startswith(f"{label}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no '{label}:' line in:\n{banner}")
