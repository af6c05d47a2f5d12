"""Store tests, in two groups:
- ``contract/``: what every ``Store`` must do, as the protocol's docstrings state it; each test
  runs on SQLite, on PostgreSQL (when ``ALLOT_TEST_POSTGRES_URL`` names a server) and on the
  in-memory ``MemoryStore`` the tests of the layers above use, so the fake cannot drift from
  the real store;
- ``sql/``: what only ``SqlStore`` has (migrations, SQLite settings, the rows it writes, rows
  written by hand, group commit over a connection pool), on SQLite and PostgreSQL.
This folder is on ``sys.path`` (pytest puts a conftest's folder there), so both groups import
``store_builders`` from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from store_builders import SQL_BACKENDS, empty_database


@pytest.fixture(params=SQL_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a new PostgreSQL schema dropped afterwards."""
    with empty_database(request.param, tmp_path) as url:
        yield url
