"""Small builders for store tests: a valid submission, a run for a job, a node; and the
databases they run on: an empty SQLite file in the test's temporary folder, or an empty
PostgreSQL schema (dropped afterwards) when ``ALLOT_TEST_POSTGRES_URL`` names a server, and a
migrated ``SqlStore`` on one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from allot.control.records import Launch, NewJob, RunPhase, RunRecord
from allot.core.model import Node, Resources, TaskPlacement
from allot.store import SqlStore, default_database_url


def new_job(
    name: str = "train",
    *,
    tenant: str = "vision",
    user: str = "ada",
    queue: str = "research",
    gpus: int = 1,
    tasks: int = 1,
    held: bool = False,
    **fields: object,
) -> NewJob:
    """A pending-job submission asking for ``tasks`` x ``gpus`` whole GPUs."""
    shape = Resources(gpus * 1000, 4000, 16384)
    return NewJob(
        name=name,
        tenant=tenant,
        user=user,
        queue=queue,
        tasks=(shape,) * tasks,
        launch=Launch(("python", "train.py", "--epochs", "3"), "/work", {"SEED": "7"}),
        held=held,
        **fields,  # type: ignore[arg-type]
    )


def run_for(
    job_id: int,
    run_id: str = "run-1",
    *,
    at: float = 100.0,
    nodes: tuple[str, ...] = ("node-1",),
    gpus: int = 1,
    flavor: str = "H100-80G",
) -> RunRecord:
    """A starting run placing one task on each of ``nodes`` with ``gpus`` devices each."""
    placement = tuple(
        TaskPlacement(node, tuple(range(gpus)), 1000 if gpus else 0) for node in nodes
    )
    return RunRecord(run_id, job_id, RunPhase.STARTING, flavor, placement, at)


def node(name: str, *, gpus: int = 8, flavor: str = "H100-80G") -> Node:
    """An up node with ``gpus`` GPUs, 64 cores and 512 GiB."""
    return Node(name, flavor, gpus, 64_000, 524_288, ("zone-a", "rack-1", name))


# -- databases

SQL_BACKENDS = ("sqlite", "postgresql")
POSTGRES_URL = os.environ.get("ALLOT_TEST_POSTGRES_URL", "")
NEEDS_POSTGRES = "needs PostgreSQL (ALLOT_TEST_POSTGRES_URL, started by scripts/test)"


def postgres_schema_url(schema: str) -> str:
    """The test server's URL with ``schema`` first on the search path."""
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@contextmanager
def empty_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of ``backend`` (one of ``SQL_BACKENDS``); skips the test
    for PostgreSQL when no server is named."""
    if backend == "sqlite":
        yield default_database_url(tmp_path)
        return
    if not POSTGRES_URL:
        pytest.skip(NEEDS_POSTGRES)
    schema = f"store_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(POSTGRES_URL, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield postgres_schema_url(schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def migrated_store(url: str) -> Iterator[SqlStore]:
    """A ``SqlStore`` on ``url``, migrated to the newest revision, closed afterwards."""
    opened = SqlStore(url)
    opened.migrate()
    try:
        yield opened
    finally:
        opened.close()
