"""The one lookup of server and token that ``Client()``, ``AsyncClient()`` and the ``allot``
command share: the argument, then ``ALLOT_URL``/``ALLOT_TOKEN``, then the default URL with the
admin token a local ``allot up`` wrote, which only ever goes to this machine."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from allot.client import DEFAULT_URL, Client, EndpointError, find_endpoint
from allot.client._endpoint import is_local
from allot.client._routes import settings


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory holding the admin token of a local `allot up`; no URL or token in
    the environment."""
    monkeypatch.setenv("ALLOT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ALLOT_URL", raising=False)
    monkeypatch.delenv("ALLOT_TOKEN", raising=False)
    (tmp_path / "admin-token").write_text("tok-local\n")
    return tmp_path


def test_without_arguments_the_local_server_and_its_token(data_dir: Path) -> None:
    found = find_endpoint()
    assert (found.url, found.token) == (DEFAULT_URL, "tok-local")
    assert str(data_dir) in found.token_source
    assert "tok-local" not in found.token_source


def test_the_argument_wins_then_the_environment(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOT_URL", "http://127.0.0.1:9000/")
    monkeypatch.setenv("ALLOT_TOKEN", "tok-env")
    assert (find_endpoint().url, find_endpoint().token) == ("http://127.0.0.1:9000", "tok-env")
    given = find_endpoint("http://localhost:1", "tok-given")
    assert (given.url, given.token) == ("http://localhost:1", "tok-given")
    # An empty value counts as not given, at every step.
    monkeypatch.setenv("ALLOT_TOKEN", "")
    assert find_endpoint(None, "").token == "tok-local"


def test_the_local_token_goes_only_to_this_machine(data_dir: Path) -> None:
    for url in (
        "http://127.0.0.1:8765",
        "http://localhost:1",
        "http://[::1]:8765",
        "http://127.0.0.2",
    ):
        assert find_endpoint(url).token == "tok-local", url
    for url in ("https://allot.example.com", "http://10.0.0.5:8765", "http://localhost.evil.com"):
        found = find_endpoint(url)
        assert (found.token, found.token_source) == (None, "no token"), url
    assert is_local("http://127.9.9.9:1")
    assert not is_local("http://192.168.1.2")


def test_the_data_directory_is_read_when_asked(
    data_dir: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "admin-token").write_text("tok-elsewhere\n")
    monkeypatch.setenv("ALLOT_DATA_DIR", str(elsewhere))
    assert find_endpoint().token == "tok-elsewhere"
    monkeypatch.setenv("ALLOT_DATA_DIR", str(elsewhere / "none"))
    assert find_endpoint().token is None


def test_a_url_that_is_not_http_names_where_it_came_from(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(EndpointError, match=r"^url: must be an http\(s\) URL"):
        find_endpoint("ftp://x")
    with pytest.raises(EndpointError, match=r"^--url: must be an http\(s\) URL"):
        find_endpoint("ftp://x", url_field="--url")
    monkeypatch.setenv("ALLOT_URL", "localhost:8765")
    with pytest.raises(EndpointError, match=r"^ALLOT_URL: .*got 'localhost:8765'"):
        find_endpoint()
    with pytest.raises(ValueError, match=r"^url:"):
        Client("ftp://x")


def test_the_clients_send_what_the_lookup_finds(data_dir: Path) -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "ok"})

    with Client(transport=httpx.MockTransport(record)) as client:
        client.health()
    assert client.url == DEFAULT_URL
    assert seen[-1].headers["Authorization"] == "Bearer tok-local"
    with Client("https://allot.example.com", transport=httpx.MockTransport(record)) as client:
        client.health()
    assert "Authorization" not in seen[-1].headers


def test_an_http_server_gets_a_context_that_trusts_no_certificate(data_dir: Path) -> None:
    plain = settings("http://127.0.0.1:8765", None)
    assert isinstance(plain.verify, ssl.SSLContext)
    # Verification stays on; with no CA loaded, anything over TLS would fail, never pass.
    assert (plain.verify.verify_mode, plain.verify.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert plain.verify.get_ca_certs() == []
    assert settings("https://allot.example.com", "t").verify is True
