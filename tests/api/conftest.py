"""Fixtures for the API tests: the app over a harness control plane, and in-process HTTP
clients with and without a valid token."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from allot.api.app import create_app
from harness import Harness, InProcessTransport, make_harness

TOKEN = "tok-alice-0123456789"
BASE_URL = "http://allot.test"


@pytest.fixture
def token() -> str:
    """``alice``'s token."""
    return TOKEN


@pytest.fixture
def harness() -> Harness:
    """A control plane over in-memory fakes, with a token for ``alice``."""
    return make_harness(tokens={TOKEN: "alice"})


@pytest.fixture
def app(harness: Harness) -> FastAPI:
    return create_app(harness.control)


@pytest.fixture
def anon(app: FastAPI) -> Iterator[httpx.Client]:
    """A client that sends no token."""
    with httpx.Client(transport=InProcessTransport(app), base_url=BASE_URL) as client:
        yield client


@pytest.fixture
def api(app: FastAPI) -> Iterator[httpx.Client]:
    """A client that sends ``alice``'s token."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    transport = InProcessTransport(app)
    with httpx.Client(transport=transport, base_url=BASE_URL, headers=headers) as client:
        yield client
