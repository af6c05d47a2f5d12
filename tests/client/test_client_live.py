"""``Client()`` and ``AsyncClient()`` with no arguments against a real ``allot up`` in a
subprocess: they find its admin token in its data directory, as the ``allot`` command does.
(``ALLOT_URL`` names the server's port: the tests cannot count on 8765 being free.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from allot.client import (
    AsyncClient,
    Client,
    JobSubmission,
    TaskResources,
    Unauthorized,
    find_endpoint,
)
from live_server import LiveServer, allot_up

HELD = JobSubmission(command=["true"], resources=TaskResources(gpus=0), hold=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with allot_up(tmp_path_factory.mktemp("server")) as live:
        yield live


@pytest.fixture
def local(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    """A shell on the server's machine: its data directory, its URL, no token."""
    monkeypatch.setenv("ALLOT_DATA_DIR", str(server.data_dir))
    monkeypatch.setenv("ALLOT_URL", server.url)
    monkeypatch.delenv("ALLOT_TOKEN", raising=False)
    return server


def test_client_with_no_arguments(local: LiveServer) -> None:
    assert find_endpoint().token_source == f"the admin token in {local.data_dir}"
    with Client() as allot:
        job = allot.submit(HELD)
        assert allot.job(job.id).held
        assert [n.name for n in allot.nodes()]


@pytest.mark.anyio
async def test_async_client_with_no_arguments(local: LiveServer) -> None:
    async with AsyncClient() as allot:
        job = await allot.submit(HELD)
        assert (await allot.job(job.id)).held
        assert [n.name for n in await allot.nodes()]


def test_the_token_of_another_data_directory_is_refused(
    local: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "admin-token").write_text("tok-of-another-server\n")
    monkeypatch.setenv("ALLOT_DATA_DIR", str(tmp_path))
    with Client() as allot, pytest.raises(Unauthorized):
        allot.nodes()
