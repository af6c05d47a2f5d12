"""``allot up --executor slurm`` as a real server: killed with SIGKILL while jobs run and while
it launches them, then started again, it adopts the Slurm jobs still running, records those
that ended while it was down, and launches no run twice; and it refuses to start, naming the
command that failed, when Slurm is not there."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from slurm_plant import slurm

from allot.client import Client
from allot.wire.schemas import JobSubmission

JOBS = 12
TERMINAL = ("succeeded", "failed", "cancelled")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``allot up --executor slurm`` in a subprocess that can be killed -9 and started again."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "ALLOT_DATA_DIR": str(self.data_dir)}
        argv = [
            sys.executable,
            "-m",
            "allot",
            "up",
            "--executor",
            "slurm",
            "--port",
            str(self.port),
        ]
        self.proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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


def states(client: Client, ids: list[int]) -> dict[int, str]:
    return {i: client.job(i).state for i in ids}


def wait_for(client: Client, ids: list[int], wanted: tuple[str, ...], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        now = states(client, ids)
        if all(s in wanted for s in now.values()):
            return
        assert time.monotonic() < deadline, f"jobs not {wanted}: {now}"
        time.sleep(0.1)


def test_sigkill_mid_run_adopts_running_jobs_records_ended_ones_and_runs_nothing_twice(
    tmp_path: Path, slurm_nodes: list[str]
) -> None:
    data_dir = tmp_path / "data"
    ledger = tmp_path / "ledger"
    ledger.touch()
    server = Server(data_dir)
    server.start()
    client = Client(server.url, (data_dir / "admin-token").read_text().strip(), timeout=10)

    def submit(seconds: float) -> int:
        body = JobSubmission(
            command=[
                "/bin/sh",
                "-c",
                f'echo "$ALLOT_JOB_ID $ALLOT_RUN_ID" >> {ledger}; sleep {seconds}',
            ],
            resources={"gpus": 1, "cpus": 1, "memory_mib": 64},
        )
        return client.submit(body).id

    try:
        short, long = submit(1), submit(10)
        wait_for(client, [short, long], ("running",))
        deadline = time.monotonic() + 30
        while len(ledger.read_text().split()) < 4:  # both tasks have started
            assert time.monotonic() < deadline, "the tasks did not start"
            time.sleep(0.05)
        run_of = dict(zip(*[iter(ledger.read_text().split())] * 2, strict=True))
        server.kill9()
        # The short job ends while allot is down; the long one runs on.
        deadline = time.monotonic() + 30
        while (
            slurm(
                "squeue", "-h", "-t", "all", "-n", f"allot-{run_of[str(short)]}", "-o", "%T"
            ).strip()
            != "COMPLETED"
        ):
            assert time.monotonic() < deadline, "the short job did not end in Slurm"
            time.sleep(0.1)
        server.start()
        client.close()
        client = Client(server.url, (data_dir / "admin-token").read_text().strip(), timeout=10)
        assert client.job(short).state == "succeeded"
        assert client.job(long).state == "running"
        wait_for(client, [short, long], ("succeeded",))

        # Kill it again while it launches a burst (some runs recorded, not yet submitted).
        burst = [submit(0.5) for _ in range(JOBS)]
        time.sleep(0.3)
        server.kill9()
        server.start()
        client.close()
        client = Client(server.url, (data_dir / "admin-token").read_text().strip(), timeout=10)
        ids = [short, long, *burst]
        wait_for(client, ids, TERMINAL, timeout=120)
        assert set(states(client, ids).values()) == {"succeeded"}
        assert all(client.job(i).run_count == 1 for i in ids)
        lines = ledger.read_text().split()
        assert Counter(int(j) for j in lines[0::2]) == Counter(dict.fromkeys(ids, 1))
        runs = {f"allot-{r}" for r in lines[1::2]}
        names = Counter(
            j.split()[0] for j in slurm("squeue", "-h", "-t", "all", "-o", "%j %i").splitlines()
        )
        assert all(names[name] == 1 for name in runs), "a run was submitted to Slurm twice"
    finally:
        client.close()
        server.stop()
        names = ",".join(f"allot-{p.name}" for p in (data_dir / "slurm").glob("*"))
        if names:
            subprocess.run(["scancel", f"--name={names}"], check=False, timeout=30)


def up_fails(tmp_path: Path, env: dict[str, str]) -> str:
    argv = [sys.executable, "-m", "allot", "up", "--executor", "slurm", "--port", str(free_port())]
    done = subprocess.run(
        argv,
        env={**env, "ALLOT_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    return " ".join(done.stderr.split())


def test_up_refuses_without_sinfo_and_says_so(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    assert (
        "error: sinfo: command not found on PATH; is Slurm installed on this machine?"
        in up_fails(tmp_path, env)
    )


def test_up_refuses_when_the_controller_does_not_answer(
    tmp_path: Path, slurm_nodes: list[str]
) -> None:
    conf = Path(os.environ["SLURM_CONF"]).read_text()
    dead = tmp_path / "slurm.conf"
    lines = [
        line
        for line in conf.splitlines()
        if not line.startswith(("SlurmctldPort=", "MessageTimeout="))
    ]
    dead.write_text("\n".join([*lines, f"SlurmctldPort={free_port()}", "MessageTimeout=1"]) + "\n")
    message = up_fails(tmp_path, {**os.environ, "SLURM_CONF": str(dead)})
    assert "error: sinfo --noheader --format=%P failed (exit 1):" in message
    assert "Unable to contact slurm controller" in message


def test_up_refuses_a_partition_without_the_slurm_executor(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "allot", "up", "--partition", "gpu", "--port", str(free_port())]
    done = subprocess.run(
        argv,
        env={**os.environ, "ALLOT_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "error: --partition: only with --executor slurm" in " ".join(done.stderr.split())
