"""kill -9 the real server while a job runs; the job ends while no server is up; after the
restart the usage ledger closes the run's interval from what the executor reports, once: the
job's cost, the ledger record and the usage report all hold the whole run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from allot.client import Client
from allot.store import SqlStore, default_database_url
from allot.wire.schemas import JobSubmission


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ALLOT_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "allot", "up", "--gpus", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            assert proc.poll() is None, "allot up exited while starting"
            assert time.monotonic() < deadline, "allot up did not come up"
            time.sleep(0.05)


def _wait(client: Client, job_id: int, states: tuple[str, ...]) -> str:
    deadline = time.monotonic() + 60
    while True:
        state = client.job(job_id).state
        if state in states:
            return state
        assert time.monotonic() < deadline, f"job {job_id} stayed {state}"
        time.sleep(0.1)


def test_a_run_that_ends_while_the_server_is_down_is_metered_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = _free_port()
    proc = _start(data_dir, port)
    try:
        token = (data_dir / "admin-token").read_text().strip()
        with Client(f"http://127.0.0.1:{port}", token, timeout=10) as client:
            job = client.submit(
                JobSubmission(
                    command=["sleep", "2"], resources={"gpus": 1, "cpus": 0.1, "memory_mib": 64}
                )
            )
            _wait(client, job.id, ("running",))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(3.0)  # the task ends while nothing watches it
        proc = _start(data_dir, port)
        with Client(f"http://127.0.0.1:{port}", token, timeout=10) as client:
            assert _wait(client, job.id, ("succeeded", "failed")) == "succeeded"
            cost = client.job_cost(job.id)
            report = client.usage(by="user", since="1h")
        assert len(cost.runs) == 1
        run = cost.runs[0]
        assert run.ended_at is not None
        assert run.gpu_hours == pytest.approx((run.ended_at - run.started_at) / 3600)
        assert [r.used.gpu_hours for r in report.rows] == [pytest.approx(run.gpu_hours)]
        store = SqlStore(default_database_url(data_dir))
        try:
            records = [u for u in store.usage() if u.job_id == job.id]
        finally:
            store.close()
        assert [(u.run_id, u.started_at, u.ended_at) for u in records] == [
            (run.run_id, run.started_at, run.ended_at)
        ]
        assert records[0].ended_at - records[0].started_at >= 1.5
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if sys.platform != "linux":  # pragma: no cover - the executor is Linux-only
    pytestmark = pytest.mark.skip(reason="needs Linux (/proc) for the local executor")
