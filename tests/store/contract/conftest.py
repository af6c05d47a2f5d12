"""The store under contract: every test here runs on each ``Store`` implementation, typed
against the protocol."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from allot.control.ports import Store
from allot.core.quota.config import QuotaConfig
from memory_store import MemoryStore
from store_builders import SQL_BACKENDS, empty_database, migrated_store


@pytest.fixture(params=[*SQL_BACKENDS, "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A new, empty store: ``SqlStore`` migrated on an empty SQLite or PostgreSQL database, or
    a ``MemoryStore`` (without the quotas it otherwise starts with, as a new database)."""
    if request.param == "memory":
        yield MemoryStore(QuotaConfig())
        return
    with empty_database(request.param, tmp_path) as url, migrated_store(url) as opened:
        yield opened
