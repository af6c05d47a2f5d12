"""Store fixtures: every test runs on SQLite (a file in a temporary folder) and on PostgreSQL
(a fresh schema per test, when ``ALLOT_TEST_POSTGRES_URL`` names a server)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from allot.store import SqlStore, default_database_url

POSTGRES_URL = os.environ.get("ALLOT_TEST_POSTGRES_URL", "")
NEEDS_POSTGRES = "needs PostgreSQL (ALLOT_TEST_POSTGRES_URL, started by scripts/test)"


def postgres_schema_url(schema: str) -> str:
    """The test server's URL with ``schema`` first on the search path."""
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a new PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
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


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    """A migrated store on the empty database."""
    opened = SqlStore(database_url)
    opened.migrate()
    try:
        yield opened
    finally:
        opened.close()
