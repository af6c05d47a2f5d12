"""The cluster commands (nodes, queues, drain, undrain) driven in-process against the real API
over the in-memory harness, in table and JSON form, and their failures; what every command
shares (an unreachable server, a bad URL). A real ``allot up`` is in test_cli_live.py."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner, Result

from allot.api.app import create_app
from allot.cli import output
from allot.cli.main import app
from allot.client import Client, NodeOut, QueueOut
from allot.config.quotas import parse_quotas
from harness import Harness, InProcessTransport, make_harness

TOKEN = "tok-cli-cluster-0123456789"
URL = "http://allot.test"
QUOTAS = """
tenants:
  - name: vision
  - name: nlp
cohorts:
  - name: org
queues:
  - name: vision-train
    tenant: vision
    cohort: org
    quotas:
      H100-80G: {gpu: 8}
      A100-40G: {gpu: 2}
  - name: nlp-eval
    tenant: nlp
"""


class KeptOpen(httpx.BaseTransport):
    """The in-process transport, left open when a command closes its client."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.inner.handle_request(request)


@pytest.fixture
def harness() -> Harness:
    return make_harness(quotas=parse_quotas(QUOTAS, "quotas.yaml"), tokens={TOKEN: "admin"})


@pytest.fixture
def server(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every command's client talks to the harness in-process; ``--token`` still counts."""
    for name in ("ALLOT_URL", "ALLOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    inner = InProcessTransport(create_app(harness.control))
    kept = KeptOpen(inner)

    def make_client(url: str | None, token: str | None) -> Client:
        return Client(URL, token if token is not None else TOKEN, transport=kept)

    monkeypatch.setattr(output, "make_client", make_client)
    yield
    inner.close()


def allot(*args: str | int) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout


def rows(text: str) -> list[list[str]]:
    """The cells of a table: columns are at least two spaces apart."""
    return [re.split(r" {2,}", line.strip()) for line in text.splitlines()]


def failed(result: Result, status: int) -> str:
    assert result.exit_code == status, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.usefixtures("server")
def test_nodes_like_sinfo() -> None:
    assert rows(ok(allot("nodes"))) == [
        ["NAME", "FLAVOR", "GPUS", "CPUS", "MEMORY", "STATE", "CHECK"],
        # The harness's executor declares its GPUs, so the table says so; no node check yet.
        ["gpu-1", "H100-80G", "8 (declared)", "64", "512 GiB", "up", "-"],
        ["gpu-2", "A100-40G", "4 (declared)", "32", "256 GiB", "up", "-"],
    ]
    listed = [NodeOut.model_validate(n) for n in json.loads(ok(allot("nodes", "-o", "json")))]
    assert [(n.name, n.gpus, n.topology[-1]) for n in listed] == [
        ("gpu-1", 8, "gpu-1"),
        ("gpu-2", 4, "gpu-2"),
    ]


@pytest.mark.usefixtures("server")
def test_queues_show_quota_use_and_counts(harness: Harness) -> None:
    for _ in range(2):
        ok(allot("submit", "--queue", "vision-train", "--gpus", "2", "--", "x"))
    harness.start(1)
    assert rows(ok(allot("queues"))) == [
        ["NAME", "TENANT", "COHORT", "NOMINAL", "USED", "PENDING", "RUNNING"],
        ["vision-train", "vision", "org", "A100-40G: 2, H100-80G: 8", "H100-80G: 2", "1", "1"],
        ["nlp-eval", "nlp", "-", "unlimited", "0", "0", "0"],
    ]
    listed = [QueueOut.model_validate(q) for q in json.loads(ok(allot("queues", "-o", "json")))]
    assert listed[0].nominal_gpus == {"H100-80G": 8, "A100-40G": 2}
    assert (listed[0].used_gpus, listed[0].pending, listed[0].running) == ({"H100-80G": 2}, 1, 1)


@pytest.mark.usefixtures("server")
def test_drain_and_undrain(harness: Harness) -> None:
    assert ok(allot("drain", "gpu-2")) == (
        "Draining node gpu-2: running work continues, nothing new starts\n"
    )
    assert rows(ok(allot("nodes")))[2][-2] == "draining"
    assert NodeOut.model_validate_json(ok(allot("undrain", "gpu-2", "-o", "json"))).state == "up"
    assert NodeOut.model_validate_json(ok(allot("drain", "gpu-1", "-o", "json"))).state == (
        "draining"
    )
    assert ok(allot("undrain", "gpu-1")) == "Node gpu-1 is up\n"
    assert [n.state for n in harness.store.nodes()] == ["up", "up"]


@pytest.mark.usefixtures("server")
def test_failures() -> None:
    assert "nope" in failed(allot("drain", "nope"), 1)
    result = allot("undrain", "nope", "-o", "json")
    assert (result.exit_code, result.stdout) == (1, "")
    problem = json.loads(result.stderr)  # with --output json, the problem document itself
    assert (problem["status"], problem["detail"]) == (404, "node nope does not exist")
    assert problem["instance"] == "/v1/nodes/nope/undrain"
    line = failed(allot("queues", "--token", "tok-not-valid"), 1)
    assert "API token is not valid" in line
    assert "tok-not-valid" not in line


# ---------------------------------------------------------------------------- shared options


def test_an_unreachable_server_is_named_with_a_hint() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for command, *args in (
        ("nodes",),
        ("drain", "n"),
        ("undrain", "n"),
        ("jobs",),
        ("show", "1"),
        ("submit", "--", "true"),
        ("logs", "1", "-f"),
    ):
        line = failed(allot(command, "--url", url, *args), 1)
        assert url in line
        assert "allot up" in line
    result = allot("queues", "--url", url, "-o", "json")
    assert (result.exit_code, result.stdout) == (1, "")
    problem = json.loads(result.stderr)  # no answer: a problem document without a status
    assert problem["title"] == "Unreachable"
    assert url in problem["detail"]
    assert "status" not in problem
    assert "--url: must be an http(s) URL" in failed(allot("nodes", "--url", "ftp://x"), 2)


@pytest.mark.usefixtures("server")
def test_nodes_say_when_gpu_sharing_is_unenforced(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "unenforced" not in ok(allot("nodes"))
    monkeypatch.setattr(harness.executor, "gpu_sharing", lambda: "unenforced", raising=False)
    text = ok(allot("nodes"))
    assert "GPU sharing is unenforced" in text
    listed = json.loads(ok(allot("nodes", "-o", "json")))
    assert {n["gpu_sharing"] for n in listed} == {"unenforced"}
