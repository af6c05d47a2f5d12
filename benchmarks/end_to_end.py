"""End to end: N one-GPU ``true`` jobs on G declared GPUs, through allot and through Slurm,
in the same run on the same machine.

1. allot: a real ``allot up --gpus G`` (SQLite in a fresh data directory, the local executor)
   on a free port; the N jobs are submitted at once, as one job array through the SDK
   (``POST /v1/jobs/batch``, up to 1,000 jobs a request). Wall time runs from just before the
   first submission to the last job's end as the server recorded it (its ``ended_at``; the
   client polls the API every 100 ms to learn that every job has ended).
   Per-phase breakdown, medians over the jobs, from the event log and the task directories:
   launch (the ``starting`` event -> the runner has started the task, ``pid.json``), task
   (that -> the runner saw it exit, ``exit.json``), exit noticed (that -> the run ended in the
   store), and refill (a run's end -> the next run's ``starting`` event).
2. Slurm 22.05 (when ``scripts/services/slurm`` can start it: root, Debian packages
   ``slurm-wlm`` and ``munge``, see ``scripts/services/slurm install``): N sequential
   ``sbatch --gres=gpu:1 --wrap true``, wall time from just before the first ``sbatch`` to
   the moment ``squeue`` (polled every 100 ms) shows none of them left; once with the service's
   default configuration, once with its throughput profile (``start --throughput``). The
   service's state lives under ``$ALLOT_SERVICES_DIR`` (default ``/tmp/allot-services-e2e``,
   apart from the test suite's) and is stopped at the end. When Slurm cannot start, the table
   says why and allot's figures still print.

Target: 200 jobs on 4 GPUs in at most 2.2 s (20x Slurm with its default configuration).

Run: ``.venv/bin/python benchmarks/end_to_end.py [--jobs 200] [--gpus 4] [--no-slurm]``.
"""

from __future__ import annotations

import argparse
import bisect
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
TARGET_SECONDS = 2.2
POLL = 0.1
BATCH = 1000  # jobs per request, the API's limit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Outcome:
    """One system's run: its wall time, or why it was not measured."""

    system: str
    wall: float | None = None
    note: str = ""
    phases: dict[str, list[float]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------- allot


@contextmanager
def allot_server(data_dir: Path, gpus: int) -> Iterator[tuple[Client, int]]:
    """``allot up --gpus`` in a subprocess on a free port; yields a client and the server's
    pid; stops it after."""
    port = free_port()
    cmd = [sys.executable, "-m", "allot", "up", "--gpus", str(gpus), "--port", str(port)]
    env = {**os.environ, "ALLOT_DATA_DIR": str(data_dir)}
    log = (data_dir.parent / "server.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
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
            yield client, proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_allot(jobs: int, gpus: int) -> Outcome:
    body = JobSubmission(command=["true"], resources={"gpus": 1})
    with tempfile.TemporaryDirectory(prefix="allot-e2e-") as tmp:
        data_dir = Path(tmp) / "data"
        with allot_server(data_dir, gpus) as (client, pid):
            cpu = cpu_seconds(pid)
            started = time.time()
            first: int | None = None
            for offset in range(0, jobs, BATCH):
                count = min(BATCH, jobs - offset)
                out = client.submit_many([body] * count, array=first is None, array_id=first)
                first = first if first is not None else out[0].id
            while client.jobs(state=["pending", "running"], limit=1).items:
                time.sleep(POLL)
            cpu = cpu_seconds(pid) - cpu
            done = list(client.iter_jobs(page_size=1000))
            ended = [j.ended_at.timestamp() for j in done if j.ended_at is not None]
            failed = [j.id for j in done if j.state != "succeeded"]
            if len(ended) != jobs or failed:
                return Outcome("allot", note=f"{len(failed)} of {jobs} jobs did not succeed")
            wall = max(ended) - started
            phases = allot_phases(client, done, data_dir)
        how = f"allot up, one array, SDK; server CPU {cpu:.2f} s"
        return Outcome("allot", wall, how, phases)


def allot_phases(client: Client, done: list[JobOut], data_dir: Path) -> dict[str, list[float]]:
    """Per-job phase durations (seconds) from the event log and the task directories."""
    launch, task, noticed = [], [], []
    starts: list[float] = []
    ends: list[float] = []
    for job in done:
        events = {e.kind: e for e in client.events(job.id)}
        if "starting" not in events or "succeeded" not in events:
            continue
        begun = events["starting"].time.timestamp()
        end = events["succeeded"].time.timestamp()
        starts.append(begun)
        ends.append(end)
        run_id = str(events["starting"].data["run_id"])
        task_dir = data_dir / "runs" / run_id / "task-0"
        pid = json.loads((task_dir / "pid.json").read_text())
        exited = json.loads((task_dir / "exit.json").read_text())
        launch.append(pid["started_at"] - begun)
        task.append(exited["finished_at"] - pid["started_at"])
        noticed.append(end - exited["finished_at"])
    starts.sort()
    refill = []
    for end in ends:
        at = bisect.bisect_left(starts, end)
        if at < len(starts):
            refill.append(starts[at] - end)
    return {
        "launch (starting -> task started)": launch,
        "task (started -> exit.json)": task,
        "exit noticed (exit.json -> run ended)": noticed,
        "refill (run ended -> next starting)": refill,
    }


# ---------------------------------------------------------------------------------- Slurm


def slurm_env(services_dir: str) -> dict[str, str]:
    return {**os.environ, "ALLOT_SERVICES_DIR": services_dir, "ALLOT_SLURM_NODES": "1"}


def start_slurm(services_dir: str, throughput: bool) -> tuple[dict[str, str] | None, str]:
    """Start the private Slurm (restarting it in the wanted profile); returns its environment,
    or None and why not."""
    if os.geteuid() != 0:
        return None, "not root (scripts/services/slurm runs the daemons as root)"
    env = slurm_env(services_dir)
    subprocess.run([str(SLURM_SCRIPT), "stop"], env=env, capture_output=True, check=False)
    cmd = [str(SLURM_SCRIPT), "start", *(["--throughput"] if throughput else [])]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["(no output)"])[0]
        return None, f"scripts/services/slurm start failed: {last}"
    for line in out.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name and value:
            env[name] = value
    return env, ""


def run_slurm(jobs: int, services_dir: str, throughput: bool) -> Outcome:
    label = "Slurm 22.05, throughput profile" if throughput else "Slurm 22.05, default config"
    env, why = start_slurm(services_dir, throughput)
    if env is None:
        return Outcome(label, note=why)
    try:
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
        wall = time.time() - started
        return Outcome(label, wall, f"{jobs} x sbatch --gres=gpu:1 --wrap true")
    finally:
        subprocess.run([str(SLURM_SCRIPT), "stop"], env=env, capture_output=True, check=False)


# ---------------------------------------------------------------------------------- report


def ms(values: list[float], q: float) -> str:
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200, help="jobs to run (default 200)")
    parser.add_argument("--gpus", type=int, default=4, help="GPUs allot declares (default 4)")
    parser.add_argument("--no-slurm", action="store_true", help="measure allot only")
    parser.add_argument(
        "--services-dir",
        default=os.environ.get("ALLOT_SERVICES_DIR", "/tmp/allot-services-e2e"),
        help="state directory of the private Slurm (default $ALLOT_SERVICES_DIR or "
        "/tmp/allot-services-e2e)",
    )
    args = parser.parse_args()
    if args.jobs < 1 or args.gpus < 1:
        parser.error("--jobs and --gpus: must be >= 1")

    allot = run_allot(args.jobs, args.gpus)
    rows = [allot]
    if args.no_slurm:
        rows.append(Outcome("Slurm", note="not measured (--no-slurm)"))
    elif args.gpus != 4:
        rows.append(Outcome("Slurm", note="not measured: the private Slurm has 4 GPUs"))
    else:
        rows.append(run_slurm(args.jobs, args.services_dir, throughput=False))
        rows.append(run_slurm(args.jobs, args.services_dir, throughput=True))

    table = Table(title=f"{args.jobs} one-GPU `true` jobs on {args.gpus} GPUs, end to end")
    for column in ("system", "wall s", "jobs/s", "x allot's time", "how"):
        table.add_column(column, justify="left" if column in ("system", "how") else "right")
    for row in rows:
        if row.wall is None:
            table.add_row(row.system, "-", "-", "-", row.note)
            continue
        ratio = f"{row.wall / allot.wall:.1f}x" if allot.wall else "-"
        table.add_row(
            row.system, f"{row.wall:.2f}", f"{args.jobs / row.wall:,.0f}", ratio, row.note
        )
    console = Console(width=160)
    console.print(table)
    if allot.phases:
        phases = Table(title="allot, per job (ms)")
        for column in ("phase", "p50", "p90", "max"):
            phases.add_column(column, justify="left" if column == "phase" else "right")
        for name, values in allot.phases.items():
            if values:
                phases.add_row(name, ms(values, 0.5), ms(values, 0.9), ms(values, 1.0))
        console.print(phases)
    if allot.wall is not None:
        verdict = "met" if allot.wall <= TARGET_SECONDS else "missed"
        console.print(
            f"target: {args.jobs} jobs in <= {TARGET_SECONDS} s: {verdict} ({allot.wall:.2f} s); "
            f"{os.cpu_count()} CPU cores"
        )


if __name__ == "__main__":
    main()
