"""kill -9 the real server while it accepts, launches and finishes jobs under load; restart it;
check that every accepted job is present exactly once and that no task ran twice.

Each job appends "<job id> <run id>" to a shared ledger when its task starts. Submissions
retry with the same idempotency key until the server accepts them, across restarts, so each
logical submission must end up as exactly one job; each job must run exactly once (one run,
one ledger line) and succeed.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from allot.client import ApiError, Client, Unreachable
from allot.wire.schemas import JobSubmission

JOBS = 120
KILLS = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``allot up`` in a subprocess that can be killed -9 and started again."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        env = {**os.environ, "ALLOT_DATA_DIR": str(self.data_dir)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "allot", "up", "--gpus", "4", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                assert self.proc.poll() is None, "allot up exited while starting"
                assert time.monotonic() < deadline, "allot up did not come up"
                time.sleep(0.05)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _token(data_dir: Path) -> str:
    return (data_dir / "admin-token").read_text().strip()


def test_kill_9_under_load_loses_nothing_and_runs_nothing_twice(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ledger = tmp_path / "ledger"
    ledger.touch()
    server = Server(data_dir, _free_port())
    server.start()
    token = _token(data_dir)
    accepted: dict[int, int] = {}  # submission number -> job id
    failures: list[str] = []

    def submit_all(worker: int) -> None:
        client = Client(server.url, token, timeout=5)
        for n in range(worker, JOBS, 4):
            body = JobSubmission(
                name=f"crash-{n}",
                command=[
                    "/bin/sh",
                    "-c",
                    f'echo "$ALLOT_JOB_ID $ALLOT_RUN_ID" >> {ledger}; sleep 0.{n % 7}',
                ],
                resources={"gpus": 1, "cpus": 0.1, "memory_mib": 64},
            )
            deadline = time.monotonic() + 120
            while True:
                try:
                    job = client.submit(body, idempotency_key=f"crash-test-{n}")
                    accepted[n] = job.id
                    break
                except ApiError as err:
                    # No answer, or the server died mid-request: retry with the same key.
                    retry = isinstance(err, Unreachable) or (err.status or 500) >= 500
                    if not retry:
                        failures.append(f"{n}: {err}")
                        return
                    if time.monotonic() > deadline:
                        failures.append(f"{n}: gave up: {err}")
                        return
                    time.sleep(0.1)
        client.close()

    workers = [threading.Thread(target=submit_all, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    rng = random.Random(7)
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.3, 1.2))
            server.kill9()
            time.sleep(rng.uniform(0.0, 0.3))
            server.start()
        for w in workers:
            w.join(180)
        assert not failures, failures
        assert sorted(accepted) == list(range(JOBS))
        client = Client(server.url, token, timeout=10)
        ids = set(accepted.values())
        assert len(ids) == JOBS, "one submission became two jobs"
        deadline = time.monotonic() + 120
        while True:
            jobs = {j.id: j for j in client.iter_jobs(page_size=500)}
            unfinished = [
                i for i in ids if jobs[i].state not in ("succeeded", "failed", "cancelled")
            ]
            if not unfinished:
                break
            assert time.monotonic() < deadline, f"jobs never finished: {unfinished[:5]}"
            time.sleep(0.25)
        assert set(jobs) == ids, "the server has jobs nobody submitted, or lost some"
        assert all(jobs[i].state == "succeeded" for i in ids), [
            (i, jobs[i].state, jobs[i].reason) for i in ids if jobs[i].state != "succeeded"
        ]
        assert all(jobs[i].run_count == 1 for i in ids)
        lines = ledger.read_text().split()
        runs_per_job = Counter(int(job) for job in lines[0::2])
        assert runs_per_job == Counter(dict.fromkeys(ids, 1)), "a task ran twice, or never"
        client.close()
    finally:
        server.stop()


if sys.platform != "linux":  # pragma: no cover - the executor is Linux-only
    pytestmark = pytest.mark.skip(reason="needs Linux (/proc) for the local executor")
