"""The SQL store alone: ``store`` is a migrated ``SqlStore`` on an empty SQLite or PostgreSQL
database (``database_url``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from allot.store import SqlStore
from store_builders import migrated_store


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    """A migrated store on the empty database."""
    with migrated_store(database_url) as opened:
        yield opened
