"""Control-plane throughput and latency, against a real ``allot up`` on SQLite and PostgreSQL.

1. Submissions per second through the REST API: with the Python SDK, one client submitting
   one job per request, 8 client processes doing the same at once, and one client submitting
   arrays of 1,000 jobs per request (``POST /v1/jobs/batch``, what ``allot submit --array``
   uses); and with ``wrk`` (a C load generator, Debian package ``wrk``; the columns say when
   it is missing) over 1 and 8 keep-alive connections, which measures the server rather than
   a Python client. Jobs are submitted held (``hold: true``), so this measures accepting a job
   durably, as ``sbatch -H`` does for Slurm; beside it, the same number of ``sbatch -H``
   submissions in a loop when a Slurm controller answers (``scontrol ping``); otherwise the
   table says why it is missing.
2. Submit -> running latency on an idle cluster, one job at a time: server-side (the job's
   start time minus its submit time) and as a client sees it (polling every 5 ms).
3. Scheduling-cycle time with 10,000 pending jobs (the cluster held by one job, so none can
   start): one ``SchedulingLoop.run_once`` on the real store, in this process.

Run: ``.venv/bin/python benchmarks/control_plane.py [--submissions 2000] [--postgres URL]``;
``--budgets FILE`` runs the server and the cycle with money budgets checked at admission.
PostgreSQL: ``--postgres`` or ``$ALLOT_TEST_POSTGRES_URL`` (``scripts/services/postgres start``
prints one); a fresh database is created for each run. Slurm: ``scripts/services/slurm start``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from allot.client import Client
from allot.wire.schemas import JobSubmission

CLIENTS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(
    data_dir: Path, database: str | None, gpus: int, budgets: Path | None = None
) -> Iterator[Client]:
    """``allot up`` in a subprocess; yields a client; stops it afterwards."""
    port = free_port()
    cmd = [sys.executable, "-m", "allot", "up", "--gpus", str(gpus), "--port", str(port)]
    if database:
        cmd += ["--database", database]
    if budgets:
        cmd += ["--budgets", str(budgets)]
    env = {**os.environ, "ALLOT_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("allot up did not start") from None
                time.sleep(0.05)
        token = (data_dir / "admin-token").read_text().strip()
        with Client(f"http://127.0.0.1:{port}", token) as client:
            yield client
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


HELD = JobSubmission(
    command=["true"], resources={"gpus": 1, "cpus": 0.1, "memory_mib": 64}, hold=True
)


def submit_rate(client: Client, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        client.submit(HELD)
    return count / (time.perf_counter() - started)


def batch_rate(client: Client, count: int, size: int = 1000) -> float:
    """Jobs per second when submitted ``size`` to a request."""
    started = time.perf_counter()
    for first in range(0, count, size):
        client.submit_many([HELD] * min(size, count - first))
    return count / (time.perf_counter() - started)


def _client_process(url: str, token: str, count: int, go: float) -> None:
    with Client(url, token) as own:
        while time.time() < go:  # start together
            time.sleep(0.001)
        for _ in range(count):
            own.submit(HELD)


def concurrent_rate(url: str, token: str, count: int) -> float:
    """Submissions per second from ``CLIENTS`` client processes at once (processes, not
    threads: threads of one Python process would measure the client's GIL, not the server)."""
    per_client = count // CLIENTS
    go = time.time() + 1.0
    with ProcessPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(_client_process, url, token, per_client, go) for _ in range(CLIENTS)]
        for future in futures:
            future.result()
    return per_client * CLIENTS / (time.time() - go)


WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = '{"command": ["true"], "resources": {"gpus": 1, "cpus": 0.1, "memory_mib": 64}, \\
"hold": true}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ALLOT_TOKEN")
"""


def wrk_rate(url: str, token: str, connections: int, seconds: int) -> float | None:
    """Submissions per second from ``wrk`` over ``connections`` connections, or None without
    wrk. Raises when any response was not a success."""
    if shutil.which("wrk") is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        threads = min(connections, 2)
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", script.name]
        out = subprocess.run(
            [*command, f"{url}/v1/jobs"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "ALLOT_TOKEN": token},
        ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw failed submissions:\n{out}")
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise SystemExit(f"wrk printed no rate:\n{out}")


def latencies(client: Client, count: int) -> tuple[list[float], list[float]]:
    """(server-side start - submit, client-observed submit -> running), seconds."""
    server, seen = [], []
    body = JobSubmission(
        command=["sleep", "0.2"], resources={"gpus": 1, "cpus": 0.1, "memory_mib": 64}
    )
    for _ in range(count):
        t0 = time.perf_counter()
        job = client.submit(body)
        while job.state == "pending":
            time.sleep(0.005)
            job = client.job(job.id)
        seen.append(time.perf_counter() - t0)
        assert job.started_at is not None
        server.append((job.started_at - job.submitted_at).total_seconds())
        while job.state == "running":  # one job at a time: the cluster is idle for the next
            time.sleep(0.02)
            job = client.job(job.id)
    return server, seen


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def sbatch_rate(count: int) -> tuple[float | None, str]:
    """``sbatch -H`` submissions per second, or None and why not."""
    if shutil.which("sbatch") is None:
        return None, "no sbatch on PATH"
    if subprocess.run(["scontrol", "ping"], capture_output=True, check=False).returncode != 0:
        return None, "no Slurm controller answers (scripts/services/slurm start)"
    ids = []
    started = time.perf_counter()
    for _ in range(count):
        out = subprocess.run(
            ["sbatch", "-H", "--parsable", "--wrap", "true"],
            capture_output=True,
            text=True,
            check=True,
        )
        ids.append(out.stdout.strip().split(";")[0])
    rate = count / (time.perf_counter() - started)
    for start in range(0, len(ids), 500):
        subprocess.run(["scancel", *ids[start : start + 500]], check=False)
    return rate, f"{count} x sbatch -H --wrap true, sequential"


def cycle_time(database: str, pending: int, budgets: Path | None = None) -> float:
    """Median of 5 ``run_once`` with ``pending`` jobs that cannot start (with the budget
    check of ``budgets`` too, when given)."""
    from allot.control.clock import SystemClock
    from allot.control.metering import MeteringConfig
    from allot.control.ports import RunState
    from allot.control.records import Launch, NewJob
    from allot.control.system import SystemConfig, build
    from allot.core.model import Resources
    from allot.executors.local import LocalExecutor
    from allot.metering.budgets import BudgetBook, load_budgets
    from allot.quota_source import default_quotas
    from allot.store import SqlStore

    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(database)
        store.migrate()
        executor = LocalExecutor(Path(tmp), gpus=8)
        clock = SystemClock()
        store.save_quotas(default_quotas(), at=clock.now())
        book = BudgetBook() if budgets is None else load_budgets(budgets)
        metering = MeteringConfig(budgets=book)
        system = build(
            SystemConfig(), store=store, executors=executor, clock=clock, metering=metering
        )
        loop = system.loop
        launch = Launch(("sleep", "600"))
        whole = NewJob(
            "blocker",
            "default",
            "bench",
            "default",
            (Resources.of(gpus=8, cpus=1, memory_mib=64),),
            launch,
        )
        store.submit(whole, at=clock.now(), actor="bench")
        loop.run_once()  # the blocker takes every GPU
        small = NewJob(
            "small",
            "default",
            "bench",
            "default",
            (Resources.of(gpus=1, cpus=0.1, memory_mib=64),),
            launch,
        )
        for _ in range(pending):
            store.submit(small, at=clock.now(), actor="bench")
        times = []
        for _ in range(5):
            started = time.perf_counter()
            report = loop.run_once()
            times.append(time.perf_counter() - started)
            assert report.pending == pending
        for record in store.active_jobs():
            if record.run is not None:
                executor.signal(record.run.run_id, kill=True)
                # Wait for its runner to record the exit before the directory goes.
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    status = executor.status(record.run.run_id, len(record.job.tasks))
                    if status.state in (RunState.EXITED, RunState.LOST):
                        break
                    time.sleep(0.05)
        store.close()
        return statistics.median(times)


@dataclass
class Row:
    database: str
    single: float
    concurrent: float
    batched: float
    wrk_single: float | None
    wrk_concurrent: float | None
    server_p50: float
    server_p99: float
    client_p50: float
    client_p99: float
    cycle: float


def postgres_database(admin_url: str) -> str:
    """A new, empty database on the server behind ``admin_url``; returns its URL."""
    import psycopg

    name = f"allot_bench_{uuid.uuid4().hex[:8]}"
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def measure(label: str, database: str | None, args: argparse.Namespace) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        db = database or f"sqlite:///{data_dir / 'allot.db'}"
        with running_server(data_dir, db, gpus=8, budgets=args.budgets) as client:
            client.submit(HELD)  # warm up connections and code paths
            single = submit_rate(client, args.submissions)
            token = (data_dir / "admin-token").read_text().strip()
            concurrent = concurrent_rate(client.url, token, args.submissions)
            batched = batch_rate(client, args.batched)
            wrk_single = wrk_rate(client.url, token, 1, args.wrk_seconds)
            wrk_concurrent = wrk_rate(client.url, token, CLIENTS, args.wrk_seconds)
            server, seen = latencies(client, args.latency_jobs)
        cycle = cycle_time(
            database or f"sqlite:///{data_dir / 'cycle.db'}", args.pending, args.budgets
        )
    return Row(
        label,
        single,
        concurrent,
        batched,
        wrk_single,
        wrk_concurrent,
        percentile(server, 0.5),
        percentile(server, 0.99),
        percentile(seen, 0.5),
        percentile(seen, 0.99),
        cycle,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--submissions", type=int, default=2000)
    parser.add_argument("--latency-jobs", type=int, default=100)
    parser.add_argument("--batched", type=int, default=10_000, help="jobs to submit in arrays")
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--wrk-seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--sbatch", type=int, default=300, help="sbatch -H submissions to time")
    parser.add_argument("--postgres", default=os.environ.get("ALLOT_TEST_POSTGRES_URL"))
    parser.add_argument(
        "--budgets", type=Path, default=None, help="a budgets file for the server and the cycle"
    )
    args = parser.parse_args()

    rows = [measure("SQLite", None, args)]
    if args.postgres:
        rows.append(measure("PostgreSQL", postgres_database(args.postgres), args))
    sbatch, note = sbatch_rate(args.sbatch)

    def rate(value: float | None) -> str:
        return "no wrk" if value is None else f"{value:,.0f}"

    def times(value: float | None) -> str:
        return "-" if value is None or not sbatch else f"{value / sbatch:.1f}x"

    submit = Table(title="Submissions per second: held jobs accepted durably (vs sbatch -H loop)")
    for column in (
        "store",
        "SDK, 1 client",
        f"SDK, {CLIENTS} clients",
        "HTTP, 1 conn. (wrk)",
        f"HTTP, {CLIENTS} conn. (wrk)",
        "SDK, arrays of 1,000",
    ):
        submit.add_column(column, justify="left" if column == "store" else "right")
    for row in rows:
        submit.add_row(
            row.database,
            f"{row.single:,.0f} ({times(row.single)})",
            f"{row.concurrent:,.0f} ({times(row.concurrent)})",
            f"{rate(row.wrk_single)} ({times(row.wrk_single)})",
            f"{rate(row.wrk_concurrent)} ({times(row.wrk_concurrent)})",
            f"{row.batched:,.0f} ({times(row.batched)})",
        )
    timing = Table(title="Latency on an idle cluster, and one scheduling cycle")
    for column in (
        "store",
        "submit->running p50 / p99 (server)",
        "p50 / p99 (client sees)",
        f"cycle, {args.pending:,} pending",
    ):
        timing.add_column(column, justify="left" if column == "store" else "right")
    for row in rows:
        timing.add_row(
            row.database,
            f"{row.server_p50 * 1000:.0f} / {row.server_p99 * 1000:.0f} ms",
            f"{row.client_p50 * 1000:.0f} / {row.client_p99 * 1000:.0f} ms",
            f"{row.cycle * 1000:,.0f} ms",
        )
    console = Console(width=160)
    console.print(submit)
    console.print(timing)
    console.print(f"sbatch -H: {f'{sbatch:,.1f}/s' if sbatch else 'not measured'} ({note})")
    console.print(
        f"{os.cpu_count()} CPU cores shared by the server and every client; "
        f"SDK clients are Python processes (httpx), wrk is C."
    )
    if not args.postgres:
        console.print("PostgreSQL: not measured (pass --postgres or set ALLOT_TEST_POSTGRES_URL)")


if __name__ == "__main__":
    main()
