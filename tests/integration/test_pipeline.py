"""A three-step pipeline through a real server: ``allot submit --after`` from the command line,
preprocess -> train -> evaluate as real processes, each starting only after the one before it
succeeded, with a kill -9 and restart of the server in between; a step waiting for a failure
is ended with the reason when the run it waits for succeeds instead."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_crash_recovery import Server, _free_port, _token

from allot.client import Client

STEPS = {
    # Each step logs its start and end, reads what the one before it wrote, and writes its own.
    "preprocess": "echo start preprocess >> ledger; sleep 1; echo rows > data.txt;"
    " echo end preprocess >> ledger",
    "train": "echo start train >> ledger; cat data.txt > model.txt; echo weights >> model.txt;"
    " echo end train >> ledger",
    "evaluate": "echo start evaluate >> ledger; cat model.txt > score.txt;"
    " echo end evaluate >> ledger",
}


def _allot(server: Server, token: str, *args: str) -> str:
    env = {**os.environ, "ALLOT_URL": server.url, "ALLOT_TOKEN": token}
    done = subprocess.run(
        [sys.executable, "-m", "allot", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_pipeline_runs_in_order_across_a_restart(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    server = Server(tmp_path / "data", _free_port())
    server.start()
    token = _token(tmp_path / "data")
    try:
        ids: dict[str, str] = {}
        previous = ["--hold"]  # the first step waits until everything is submitted
        for name, script in STEPS.items():
            flags = ["--parsable", "--name", name, "--workdir", str(work), "--cpus", "0.1"]
            ids[name] = _allot(server, token, "submit", *flags, *previous, "--", "sh", "-c", script)
            ids[name] = ids[name].strip()
            previous = ["--after", ids[name]]
        cleanup = _allot(
            server,
            token,
            "submit",
            "--parsable",
            "--after",
            f"{ids['train']}:failed",
            "--cpus",
            "0.1",
            "--",
            "true",
        ).strip()
        waiting = _allot(server, token, "explain", ids["evaluate"])
        assert f"waits for job {ids['train']} to succeed" in waiting
        _allot(server, token, "release", ids["preprocess"])
        with Client(server.url, token, timeout=10) as client:
            deadline = time.monotonic() + 30
            while client.job(int(ids["preprocess"])).state == "pending":
                assert time.monotonic() < deadline, "preprocess never started"
                time.sleep(0.05)
        # The dependencies are stored: a server killed mid-pipeline picks them up again.
        server.kill9()
        server.start()
        with Client(server.url, token, timeout=10) as client:
            deadline = time.monotonic() + 90
            while True:
                jobs = {str(j.id): j for j in client.iter_jobs()}
                states = [jobs[i].state for i in (*ids.values(), cleanup)]
                if all(s in ("succeeded", "failed", "cancelled") for s in states):
                    break
                assert time.monotonic() < deadline, f"the pipeline stalled: {states}"
                time.sleep(0.2)
        assert [jobs[ids[name]].state for name in STEPS] == ["succeeded"] * 3
        assert [jobs[ids[name]].run_count for name in STEPS] == [1, 1, 1]
        assert (work / "ledger").read_text().split("\n")[:-1] == [
            f"{edge} {name}" for name in STEPS for edge in ("start", "end")
        ]
        assert (work / "score.txt").read_text() == "rows\nweights\n"
        assert jobs[cleanup].state == "cancelled"
        assert jobs[cleanup].reason == f"dependency never satisfied: job {ids['train']} succeeded"
    finally:
        server.stop()


if sys.platform != "linux":  # pragma: no cover - the executor is Linux-only
    pytestmark = pytest.mark.skip(reason="needs Linux (/proc) for the local executor")
