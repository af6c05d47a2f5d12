"""The Slurm executor: N one-GPU ``true`` jobs on the private Slurm of
``scripts/services/slurm`` (one node with 4 GPU GRES here, ``ALLOT_SLURM_NODES=1``), through
allot (``allot up --executor slurm``) and through plain ``sbatch``, in the same run, once with
the service's default settings and once with its throughput profile (``start --throughput``).

- allot: the N jobs are submitted at once as one job array through the SDK; wall time from
  just before the first submission to the last job's end as the server recorded it.
  Decision-to-running latency: the run's ``starting`` event (allot decided and recorded the
  placement) -> the runner started the task on the node (its ``pid.json``); launches/s: what
  one ``sbatch`` costs (the ``submitted`` marker -> the recorded job id), inverted.
- plain Slurm: N sequential ``sbatch --gres=gpu:1 --wrap true``; wall time from just before
  the first ``sbatch`` until ``squeue`` (polled every 100 ms) shows none of them left.

What the figures show (docs/slurm.md, Limits): Slurm 22.05 starts a batch job only on a
scheduling pass of slurmctld (its background pass, about once a second, and with the
throughput profile its backfill cycle), never inside ``sbatch`` (the submit handler only
tests a batch job; allocation at submission is for ``salloc``/``srun``), and without an
``Epilog`` a job's end waits for that pass too. Plain ``sbatch`` keeps all N jobs queued, so
each pass starts a full wave; allot queues a run when it decides it, after the run before
it ended, so each run waits for the next pass. Of allot's decision -> running (p50 about
0.8-0.9 s), allot's own share is about 30 ms (decision -> ``sbatch`` returned), the wait for
the pass about 0.64 s, Slurm's launch of the batch step about 0.2 s; submitting only once
Slurm has let the previous job go changes nothing, as nothing is allocated at submission.

The service's state lives under ``$ALLOT_SERVICES_DIR`` (default ``/tmp/allot-services-bench``,
apart from the test suite's) and is stopped at the end. Needs root (the service does).

Run: ``.venv/bin/python benchmarks/slurm_executor.py [--jobs 200]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from allot.client import Client
from allot.wire.schemas import JobOut, JobSubmission

ROOT = Path(__file__).resolve().parent.parent
SLURM_SCRIPT = ROOT / "scripts" / "services" / "slurm"
POLL = 0.1


@dataclass
class Outcome:
    """One system's run: its wall time, or why it was not measured."""

    system: str
    wall: float | None = None
    note: str = ""
    latencies: list[float] = field(default_factory=list)  # decision -> running, s
    launches: list[float] = field(default_factory=list)  # one sbatch, s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def slurm_service(services_dir: str, throughput: bool) -> Iterator[dict[str, str]]:
    """The private Slurm in the wanted profile (restarted); yields its environment."""
    if os.geteuid() != 0:
        raise SystemExit("needs root: scripts/services/slurm runs the daemons as root")
    env = {**os.environ, "ALLOT_SERVICES_DIR": services_dir, "ALLOT_SLURM_NODES": "1"}
    subprocess.run([str(SLURM_SCRIPT), "stop"], env=env, capture_output=True, check=False)
    cmd = [str(SLURM_SCRIPT), "start", *(["--throughput"] if throughput else [])]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"scripts/services/slurm start failed:\n{out.stderr}")
    for line in out.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name and value:
            env[name] = value
    try:
        yield env
    finally:
        subprocess.run([str(SLURM_SCRIPT), "stop"], env=env, capture_output=True, check=False)


def run_sbatch(jobs: int, env: dict[str, str], label: str) -> Outcome:
    ids = []
    started = time.time()
    for _ in range(jobs):
        out = subprocess.run(
            ["sbatch", "--parsable", "--gres=gpu:1", "--output=/dev/null", "--wrap", "true"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        ids.append(out.stdout.strip().split(";")[0])
    wanted = set(ids)
    while True:
        out = subprocess.run(
            ["squeue", "-h", "-o", "%i", "-t", "pending,running,completing"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode == 0 and not wanted & set(out.stdout.split()):
            break
        time.sleep(POLL)
    return Outcome(label, time.time() - started, f"{jobs} x sbatch --gres=gpu:1 --wrap true")


@contextmanager
def allot_server(data_dir: Path, env: dict[str, str]) -> Iterator[Client]:
    """``allot up --executor slurm`` in a subprocess on a free port."""
    port = free_port()
    cmd = [sys.executable, "-m", "allot", "up", "--executor", "slurm", "--port", str(port)]
    log = (data_dir.parent / "server.log").open("wb")
    proc = subprocess.Popen(
        cmd, env={**env, "ALLOT_DATA_DIR": str(data_dir)}, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"allot up did not start (log: {log.name})") from None
                time.sleep(0.05)
        token = (data_dir / "admin-token").read_text().strip()
        with Client(f"http://127.0.0.1:{port}", token) as client:
            client.health()
            yield client
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def run_allot(jobs: int, env: dict[str, str], label: str) -> Outcome:
    body = JobSubmission(command=["true"], resources={"gpus": 1, "cpus": 1})
    with tempfile.TemporaryDirectory(prefix="allot-slurm-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        with allot_server(data_dir, env) as client:
            started = time.time()
            client.submit_many([body] * jobs, array=True)
            while client.jobs(state=["pending", "running"], limit=1).items:
                time.sleep(POLL)
            done = list(client.iter_jobs(page_size=1000))
            failed = [j for j in done if j.state != "succeeded"]
            if failed:
                return Outcome(label, note=f"{len(failed)} of {jobs} failed: {failed[0].reason}")
            ended = [j.ended_at.timestamp() for j in done if j.ended_at is not None]
            latencies, launches = measure(client, done, data_dir / "slurm")
        return Outcome(
            label, max(ended) - started, "allot up --executor slurm", latencies, launches
        )


def measure(client: Client, done: list[JobOut], runs: Path) -> tuple[list[float], list[float]]:
    """Decision -> running latencies and sbatch durations, from events and run folders."""
    latencies, launches = [], []
    for job in done:
        for event in client.events(job.id):
            if event.kind != "starting":
                continue
            run_dir = runs / str(event.data["run_id"])
            pid = json.loads((run_dir / "task-0" / "pid.json").read_text())
            latencies.append(pid["started_at"] - event.time.timestamp())
            launches.append(
                (run_dir / "job").stat().st_mtime - (run_dir / "submitted").stat().st_mtime
            )
    return latencies, launches


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200, help="jobs to run (default 200)")
    parser.add_argument(
        "--services-dir",
        default=os.environ.get("ALLOT_SERVICES_DIR", "/tmp/allot-services-bench"),
        help="state directory of the private Slurm (default /tmp/allot-services-bench)",
    )
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error("--jobs: must be >= 1")
    rows: list[Outcome] = []
    for throughput in (False, True):
        profile = "throughput profile" if throughput else "default settings"
        with slurm_service(args.services_dir, throughput) as env:
            rows.append(run_sbatch(args.jobs, env, f"plain sbatch, {profile}"))
            rows.append(run_allot(args.jobs, env, f"allot via Slurm, {profile}"))

    best_plain = min((r.wall for r in rows if r.wall and r.system.startswith("plain")), default=0)
    table = Table(title=f"{args.jobs} one-GPU `true` jobs on Slurm 22.05, one node, 4 GPUs")
    columns = ("system", "wall s", "jobs/s", "vs best plain", "start p50 ms", "p99 ms")
    for column in (*columns, "launches/s"):
        table.add_column(column, justify="left" if column == "system" else "right")
    for row in rows:
        if row.wall is None:
            table.add_row(row.system, "-", "-", "-", "-", "-", row.note)
            continue
        ratio = f"{best_plain / row.wall:.2f}x" if best_plain else "-"
        latency = ["-", "-"]
        if row.latencies:
            latency = [f"{quantile(row.latencies, q) * 1000:,.0f}" for q in (0.5, 0.99)]
        rate = f"{1 / quantile(row.launches, 0.5):,.0f}" if row.launches else "-"
        table.add_row(
            row.system, f"{row.wall:.2f}", f"{args.jobs / row.wall:,.1f}", ratio, *latency, rate
        )
    console = Console(width=160)
    console.print(table)
    console.print(
        "vs best plain: the fastest plain-sbatch wall time divided by this row's (>1: faster);"
        " start: allot's decision -> the task running on the node; launches/s: 1 / median"
        f" sbatch time; {os.cpu_count()} CPU cores"
    )


if __name__ == "__main__":
    main()
