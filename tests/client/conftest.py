"""Fixtures for the SDK tests: the API app over a harness control plane, and sync and async
SDK clients that call it in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI

from allot.api.app import create_app
from allot.client import AsyncClient, Client
from harness import Harness, InProcessTransport, make_harness

TOKEN = "tok-sdk-0123456789"
URL = "http://allot.test"


@pytest.fixture
def token() -> str:
    return TOKEN


@pytest.fixture
def harness() -> Harness:
    """A control plane over in-memory fakes, with a token for ``sdk``."""
    return make_harness(tokens={TOKEN: "sdk"})


@pytest.fixture
def app(harness: Harness) -> FastAPI:
    return create_app(harness.control)


@pytest.fixture
def transport(app: FastAPI) -> Iterator[InProcessTransport]:
    inner = InProcessTransport(app)
    yield inner
    inner.close()


@pytest.fixture
def client(transport: httpx.BaseTransport) -> Iterator[Client]:
    with Client(URL, TOKEN, transport=transport) as sdk:
        yield sdk


@pytest.fixture
async def aclient(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(URL, TOKEN, transport=httpx.ASGITransport(app=app)) as sdk:
        yield sdk
