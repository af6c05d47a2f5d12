"""Scheduling-cycle time with thousands of pending jobs that wait for dependencies, on the real
store (SQLite; PostgreSQL too with ``--postgres`` or ``$ALLOT_TEST_POSTGRES_URL``).

Each scenario stores ``--pending`` jobs (default 10,000) and times ``SchedulingLoop.run_once``
(median of 5) and, inside it, the dependency step alone: the one read of what the pending jobs'
dependencies have done (``Store.dependency_progress``) plus judging every job (the read of the
pending jobs themselves, which every cycle makes anyway, is not part of it). The jobs waited
for are held, so nothing starts and every cycle sees the same queue:

- ``no dependencies``: the baseline, every pending job reaches the core (none fits: the
  cluster has no GPU);
- ``one job``: every pending job waits for the same job;
- ``1,000 jobs``: each waits for one of 1,000 jobs;
- ``array of 1,000``: every pending job waits for one array of 1,000 jobs.

Run: ``.venv/bin/python benchmarks/dependencies.py [--pending 10000] [--postgres URL]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from allot.control.clock import SystemClock
from allot.control.dependencies import judge_job
from allot.control.records import NEW_ARRAY, Dependency, Launch, NewJob
from allot.control.system import SystemConfig, build
from allot.core.model import Resources
from allot.executors.local import LocalExecutor
from allot.quota_source import default_quotas
from allot.store import SqlStore, default_database_url

BATCH = 1000
JOB = NewJob(
    "step",
    "default",
    "bench",
    "default",
    (Resources.of(gpus=1, cpus=0.1, memory_mib=64),),
    Launch(("true",)),
)


def _store_many(store: SqlStore, jobs: list[NewJob], array: int | None = None) -> list[int]:
    ids: list[int] = []
    for first in range(0, len(jobs), BATCH):
        chunk = jobs[first : first + BATCH]
        results = store.submit_many(
            chunk,
            at=time.time(),
            actor="bench",
            idempotency_keys=[None] * len(chunk),
            request_hashes=[None] * len(chunk),
            array=array if not ids or array is None else ids[0],
        )
        ids += [record.id for record, _ in results]
    return ids


Scenario = Callable[[SqlStore, int], None]


def no_dependencies(store: SqlStore, pending: int) -> None:
    _store_many(store, [JOB] * pending)


def one_job(store: SqlStore, pending: int) -> None:
    (target,) = _store_many(store, [replace(JOB, held=True)])
    _store_many(store, [replace(JOB, after=(Dependency(target),))] * pending)


def many_jobs(store: SqlStore, pending: int) -> None:
    targets = _store_many(store, [replace(JOB, held=True)] * 1000)
    jobs = [replace(JOB, after=(Dependency(targets[i % 1000]),)) for i in range(pending)]
    _store_many(store, jobs)


def an_array(store: SqlStore, pending: int) -> None:
    members = _store_many(store, [replace(JOB, held=True)] * 1000, array=NEW_ARRAY)
    _store_many(store, [replace(JOB, after=(Dependency(members[0]),))] * pending)


SCENARIOS: dict[str, Scenario] = {
    "no dependencies": no_dependencies,
    "one job": one_job,
    "1,000 jobs": many_jobs,
    "array of 1,000": an_array,
}


def measure(url: str, scenario: Scenario, pending: int) -> tuple[float, float, int]:
    """Median cycle seconds, median dependency-step seconds, jobs the core saw."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(url)
        store.migrate()
        try:
            executor = LocalExecutor(Path(tmp), gpus=0)
            clock = SystemClock()
            store.save_quotas(default_quotas(), at=clock.now())
            loop = build(SystemConfig(), store=store, executors=executor, clock=clock).loop
            scenario(store, pending)
            cycles, steps = [], []
            for _ in range(5):
                started = time.perf_counter()
                report = loop.run_once()
                cycles.append(time.perf_counter() - started)
                jobs = store.pending_jobs(include_held=False)
                started = time.perf_counter()
                progress = store.dependency_progress({d.job_id for r in jobs for d in r.job.after})
                for record in jobs:
                    judge_job(record.job.after, progress)
                steps.append(time.perf_counter() - started)
            seen = report.pending
        finally:
            store.close()
    return statistics.median(cycles), statistics.median(steps), seen


@contextmanager
def databases(postgres: str | None) -> Iterator[list[tuple[str, Callable[[], str]]]]:
    """Name and a factory of a fresh database URL, for each backend."""
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(1_000))

        def sqlite() -> str:
            folder = Path(tmp) / str(next(counter))
            folder.mkdir()
            return default_database_url(folder)

        backends: list[tuple[str, Callable[[], str]]] = [("SQLite", sqlite)]
        schemas: list[str] = []
        admin = create_engine(postgres, poolclass=NullPool) if postgres else None
        if postgres and admin is not None:

            def pg() -> str:
                schema = f"bench_{uuid.uuid4().hex[:12]}"
                with admin.begin() as conn:
                    conn.execute(text(f'CREATE SCHEMA "{schema}"'))
                schemas.append(schema)
                url = make_url(postgres).update_query_dict({"options": f"-csearch_path={schema}"})
                return url.render_as_string(hide_password=False)

            backends.append(("PostgreSQL", pg))
        try:
            yield backends
        finally:
            if admin is not None:
                with admin.begin() as conn:
                    for schema in schemas:
                        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--postgres", default=os.environ.get("ALLOT_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    table = Table(title=f"Scheduling cycle with {args.pending:,} pending jobs (median of 5)")
    for column in ("store", "dependencies", "core sees", "cycle ms", "dependency step ms"):
        table.add_column(column, justify="right" if column.endswith(("ms", "sees")) else "left")
    with databases(args.postgres) as backends:
        for backend, fresh in backends:
            for name, scenario in SCENARIOS.items():
                cycle, step, seen = measure(fresh(), scenario, args.pending)
                table.add_row(backend, name, f"{seen:,}", f"{cycle * 1e3:.0f}", f"{step * 1e3:.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
