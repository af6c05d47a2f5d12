"""The SDK's public surface: a checked ``__all__``, the same methods sync and async, docstrings
that say what each call returns and raises, and no server code pulled in by importing it."""

from __future__ import annotations

import inspect
import subprocess
import sys
import types

import pytest

import allot.client
from allot.client import AsyncClient, Client

METHODS = [
    "submit",
    "submit_many", "jobs", "iter_jobs", "job", "cancel", "hold", "release", "events", "explain",
    "logs", "follow_logs", "nodes", "drain", "undrain", "queues", "health", "close",
    "profile", "recommend", "record_node_check", "flavor_speeds", "usage", "job_cost", "budgets",
]  # fmt: skip


def test_all_is_sorted_and_names_exactly_the_public_names() -> None:
    exported = allot.client.__all__
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n))
    # dir(): the names are loaded on first use, so vars() holds only those used so far.
    public = {
        name
        for name in dir(allot.client)
        if not name.startswith("_")
        and not isinstance(getattr(allot.client, name), types.ModuleType)
        and name != "annotations"
    }
    assert public == set(exported)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = allot.client.Nope  # type: ignore[attr-defined]


def test_the_clients_have_the_same_methods() -> None:
    def public(cls: type) -> set[str]:
        return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}

    assert public(Client) == public(AsyncClient) == set(METHODS)
    for name in METHODS:
        sync_params = list(inspect.signature(getattr(Client, name)).parameters)
        async_params = list(inspect.signature(getattr(AsyncClient, name)).parameters)
        assert sync_params == async_params, name


def test_every_call_says_what_it_returns_and_raises() -> None:
    for cls in (Client, AsyncClient):
        for name in METHODS:
            doc = inspect.getdoc(getattr(cls, name)) or ""
            assert doc, f"{cls.__name__}.{name} has no docstring"
            if name != "close":
                assert "Raises" in doc, f"{cls.__name__}.{name} does not say what it raises"


def test_importing_the_sdk_imports_no_server_code() -> None:
    probe = (
        "import sys, allot.client\n"
        "loaded = [m for m in ('fastapi', 'starlette', 'allot.control', 'allot.api.app')"
        " if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_names_load_on_first_use() -> None:
    """``import allot.client`` is cheap; a sync client never loads asyncio."""
    probe = (
        "import sys, allot.client\n"
        "before = sorted(m for m in ('httpx', 'pydantic') if m in sys.modules)\n"
        "from allot.client import Client\n"
        "after = sorted(m for m in ('httpx', 'pydantic', 'asyncio') if m in sys.modules)\n"
        "print(before, after)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[] ['httpx', 'pydantic']"
