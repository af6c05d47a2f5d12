"""What observability costs the control plane: metrics, tracing and start-time estimates.

1. Scheduling-cycle time with 10,000 pending jobs that cannot start (the cluster held by one
   job), on SQLite, in this process: median of ``--cycles`` ``SchedulingLoop.run_once`` with
   the observers ``allot up`` subscribes (the audit trail) only, then with Prometheus metrics,
   then also with tracing (the SDK with an in-memory exporter) and the start-time estimator's
   cycle hook; the observers alone on the latest cycle's report (the cycle-to-cycle noise of
   a loaded machine is larger than what they add); and the time of one estimate refresh (the
   forward run) over that queue, which runs on its own thread, never in the cycle.
2. A scrape of ``/metrics`` rendering with that state (the store read at scrape time).
3. Submissions per second through the REST API, one client submitting held jobs, against a
   real ``allot up`` with metrics (the default) and with ``--no-metrics``; best of ``--rounds``
   (0 skips this part).

Run: ``.venv/bin/python benchmarks/observe_overhead.py [--pending 10000] [--submissions 1000]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from allot.client import Client
from allot.control.clock import SystemClock
from allot.control.ports import RunState
from allot.control.records import Launch, NewJob
from allot.control.system import SystemConfig, build
from allot.core.model import Resources
from allot.executors.local import LocalExecutor
from allot.observe.eta import StartTimeEstimator
from allot.observe.metrics import ControlMetrics
from allot.observe.tracing import JobTracing
from allot.quota_source import default_quotas
from allot.store import SqlStore, default_database_url
from allot.wire.schemas import JobSubmission


def median_time(action: Callable[[], object], times: int) -> float:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        action()
        spent.append(time.perf_counter() - started)
    return statistics.median(spent)


def cycle_costs(pending: int, cycles: int) -> dict[str, float]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    found: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(default_database_url(Path(tmp)))
        store.migrate()
        executor = LocalExecutor(Path(tmp), gpus=8)
        clock = SystemClock()
        store.save_quotas(default_quotas(), at=clock.now())
        loop = build(SystemConfig(), store=store, executors=executor, clock=clock).loop
        launch = Launch(("sleep", "600"))

        def job(gpus: int) -> NewJob:
            tasks = (Resources.of(gpus=gpus, cpus=0.1, memory_mib=64),)
            return NewJob("j", "default", "bench", "default", tasks, launch,
                          runtime_estimate=600.0)  # fmt: skip

        store.submit(job(8), at=clock.now(), actor="bench")
        loop.run_once()  # the blocker takes every GPU
        for _ in range(pending):
            store.submit(job(1), at=clock.now(), actor="bench")
        loop.run_once()
        found["cycle: audit only"] = median_time(loop.run_once, cycles)
        metrics = ControlMetrics(store, clock)
        loop.subscribe(metrics)
        found["cycle: + metrics"] = median_time(loop.run_once, cycles)
        report = loop.last
        assert report is not None
        found["metrics observer alone, per cycle"] = median_time(
            lambda: metrics.cycle_done(report), 50
        )
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        loop.subscribe(JobTracing(provider, clock))
        estimator = StartTimeEstimator(loop)
        loop.subscribe(estimator)
        found["cycle: + metrics, tracing, estimates"] = median_time(loop.run_once, cycles)
        tracing = JobTracing(provider, clock)
        found["tracing and estimate observers alone, per cycle"] = median_time(
            lambda: (tracing.cycle_done(report), estimator.cycle_done(report)), 50
        )
        found["estimate refresh (own thread, 2 s budget)"] = median_time(estimator.refresh, 3)
        metrics.add(estimator)
        metrics.state.cache_seconds = 0
        found["/metrics render (store read)"] = median_time(metrics.exposition, 5)
        for record in store.active_jobs():
            if record.run is not None:
                executor.signal(record.run.run_id, kill=True)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    status = executor.status(record.run.run_id, len(record.job.tasks))
                    if status.state in (RunState.EXITED, RunState.LOST):
                        break
                    time.sleep(0.05)
        store.close()
        provider.shutdown()
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def submit_rate(extra: list[str], count: int) -> float:
    """Held submissions per second from one client against a fresh ``allot up``."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        port = free_port()
        env = {**os.environ, "ALLOT_DATA_DIR": str(data)}
        server = subprocess.Popen(
            [sys.executable, "-m", "allot", "up", "--gpus", "2", "--port", str(port), *extra],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while not (data / "admin-token").exists() or not _up(url):
                assert time.monotonic() < deadline, "allot up did not start"
                time.sleep(0.1)
            token = (data / "admin-token").read_text().strip()
            with Client(url, token) as client:
                job = JobSubmission(command=["true"], hold=True)
                for _ in range(50):
                    client.submit(job)  # warm-up
                started = time.perf_counter()
                for _ in range(count):
                    client.submit(job)
                return count / (time.perf_counter() - started)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(30)


def _up(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--cycles", type=int, default=7)
    parser.add_argument("--submissions", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    console = Console(width=120)
    costs = cycle_costs(args.pending, args.cycles)
    table = Table(title=f"Observability in the cycle: {args.pending:,} pending jobs, SQLite")
    table.add_column("what")
    table.add_column("median", justify="right")
    for what, seconds in costs.items():
        table.add_row(what, f"{seconds * 1000:.2f} ms")
    console.print(table)
    if args.rounds < 1:
        return
    rates = Table(title=f"Held submissions per second, one client, {args.submissions:,} jobs")
    rates.add_column("allot up")
    rates.add_column("best of rounds", justify="right")
    rates.add_column("all rounds", justify="right")
    for label, extra in (("with metrics (default)", []), ("--no-metrics", ["--no-metrics"])):
        found = [submit_rate(extra, args.submissions) for _ in range(args.rounds)]
        rates.add_row(label, f"{max(found):,.0f}/s", ", ".join(f"{r:,.0f}" for r in found))
    console.print(rates)


if __name__ == "__main__":
    main()
