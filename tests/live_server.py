"""A real ``allot up`` in a subprocess for the tests that need the whole product: the SQLite
store, the scheduling loop, the local executor running real processes, and the admin token
written to the data directory. ``allot_up`` starts one on a free port and stops it after."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass(frozen=True)
class LiveServer:
    """Where the server listens and keeps its data (the admin token included)."""

    url: str
    data_dir: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def allot_up(folder: Path, *, gpus: int = 2) -> Iterator[LiveServer]:
    """``allot up --gpus N`` with its data directory and log in ``folder``, run from there;
    yields once it answers ``/healthz`` (fails with its log if it dies or takes too long)."""
    port = free_port()
    server = LiveServer(f"http://127.0.0.1:{port}", folder / "data")
    env = {**os.environ, "ALLOT_DATA_DIR": str(server.data_dir)}
    env.pop("ALLOT_TOKEN", None)
    log_path = folder / "server.log"
    command = [sys.executable, "-m", "allot", "up", "--gpus", str(gpus), "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.1)
        yield server
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
