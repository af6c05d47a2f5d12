"""What POST /v1/jobs refuses: malformed submissions (422 naming the field and the rule),
requests the cluster can never run (422, nothing stored), and oversize bodies (413)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from allot.wire.schemas import MAX_BODY_BYTES
from harness import Harness

VALID: dict[str, Any] = {"command": ["python", "train.py"], "resources": {"gpus": 1}}


def errors_of(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors: list[dict[str, str]] = response.json()["errors"]
    return errors


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"colour": "blue"}, "colour", "Extra inputs are not permitted"),
        ({"resources": {"vram": 80}}, "resources.vram", "Extra inputs are not permitted"),
        ({"tasks": 0}, "tasks", "greater than or equal to 1"),
        ({"tasks": "2"}, "tasks", "valid integer"),
        ({"resources": {"gpus": -1}}, "resources.gpus", "greater than or equal to 0"),
        ({"resources": {"gpus": 0.0005}}, "resources.gpus", "whole number of milli-GPU"),
        ({"resources": {"gpus": 1.5}}, "resources.gpus", "whole number of GPUs"),
        ({"resources": {"cpus": 0}}, "resources.cpus", "greater than 0"),
        ({"resources": {"memory_mib": 0}}, "resources.memory_mib", "greater than 0"),
        ({"resources": {"memory_mib": 1.5}}, "resources.memory_mib", "valid integer"),
        ({"command": []}, "command", "at least the program"),
        ({"command": ""}, "command", "must not be empty"),
        ({"command": 5}, "command", "list of strings (argv) or a string"),
        ({"command": ["run", 1]}, "command", "argument 1 must be a string"),
        ({"workdir": "relative/dir"}, "workdir", "absolute path"),
        ({"env": {"1BAD": "x"}}, "env", "not a valid environment variable name"),
        ({"env": {"OK": 1}}, "env.OK", "valid string"),
        ({"flavors": ["H100-80G", "H100-80G"]}, "flavors", "lists a flavor twice"),
        ({"priority": True}, "priority", "integer or the name of a priority class"),
        ({"runtime_estimate_seconds": 0}, "runtime_estimate_seconds", "greater than 0"),
        ({"time_limit_seconds": -5}, "time_limit_seconds", "greater than 0"),
        ({"checkpointable": "yes"}, "checkpointable", "valid boolean"),
        ({"queue": ""}, "queue", "at least 1 character"),
    ],
)
def test_a_bad_value_is_422_naming_the_field_and_rule(
    api: httpx.Client, harness: Harness, changes: dict[str, Any], field: str, rule: str
) -> None:
    errors = errors_of(api.post("/v1/jobs", json={**VALID, **changes}))
    assert [e["field"] for e in errors] == [field]
    assert rule in errors[0]["rule"]
    assert harness.store.pending_jobs() == []


def test_a_missing_command_is_named(api: httpx.Client) -> None:
    errors = errors_of(api.post("/v1/jobs", json={"resources": {"gpus": 1}}))
    assert errors == [{"field": "command", "rule": "Field required"}]


def test_every_bad_field_is_listed(api: httpx.Client) -> None:
    body = {**VALID, "tasks": 0, "resources": {"gpus": 2.5}, "extra": 1}
    fields = {e["field"] for e in errors_of(api.post("/v1/jobs", json=body))}
    assert fields == {"tasks", "resources.gpus", "extra"}


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b""])
def test_a_body_that_is_not_a_json_object_is_refused(api: httpx.Client, content: bytes) -> None:
    response = api.post("/v1/jobs", content=content, headers={"Content-Type": "application/json"})
    assert [e["field"] for e in errors_of(response)] == ["body"]


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"queue": "research"}, "queue", "unknown queue 'research'; known queues: default"),
        (
            {"flavors": ["TPUv5"]},
            "flavors",
            "unknown flavor 'TPUv5'; the cluster has: A100-40G, H100-80G",
        ),
        ({"resources": {"gpus": 16}}, "resources.gpus", "16 GPUs"),
        ({"resources": {"gpus": 1, "memory_mib": 1 << 30}}, "resources.memory_mib", "memory"),
        (
            {"resources": {"gpus": 8}, "flavors": ["A100-40G"]},
            "resources.gpus",
            "needs 8 GPUs per task on one A100-40G node; the largest has 4 GPUs",
        ),
        (
            {"resources": {"gpus": 1, "cpus": 100}, "flavors": ["H100-80G"]},
            "resources.cpus",
            "needs 100 CPUs per task on one H100-80G node; the largest has 64 CPUs",
        ),
        (
            {"resources": {"gpus": 8}, "tasks": 3, "flavors": ["H100-80G"]},
            "tasks",
            "needs 3 tasks of 8 GPUs each at once on H100-80G nodes; all of them together hold"
            " only 1",
        ),
        (
            {"resources": {"gpus": 6}, "tasks": 2},
            "resources.gpus",  # what the preferred flavor lacks: the cluster's first, A100-40G
            "needs 2 tasks of 6 GPUs each at once on A100-40G or H100-80G nodes; the largest"
            " A100-40G node has 4 GPUs; all H100-80G nodes together hold only 1",
        ),
    ],
)
def test_a_request_the_cluster_can_never_run_is_422_and_nothing_is_stored(
    api: httpx.Client, harness: Harness, changes: dict[str, Any], field: str, rule: str
) -> None:
    response = api.post("/v1/jobs", json={**VALID, **changes})
    errors = errors_of(response)
    assert response.json()["type"] == "https://allot.dev/problems/rejected"
    assert [e["field"] for e in errors] == [field]
    assert rule in errors[0]["rule"]
    assert harness.store.pending_jobs() == []
    assert harness.loop.wakes == 0


def test_a_declared_oversize_body_is_413_before_parsing(api: httpx.Client) -> None:
    padding = "x" * MAX_BODY_BYTES
    response = api.post("/v1/jobs", json={**VALID, "name": padding})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "https://allot.dev/problems/too-large"
    assert problem["status"] == 413


def test_a_body_just_under_the_limit_is_parsed(api: httpx.Client) -> None:
    # Parsed (and refused by the name's length rule), not cut off by the size limit.
    body = {**VALID, "name": "x" * (MAX_BODY_BYTES - 200)}
    assert [e["field"] for e in errors_of(api.post("/v1/jobs", json=body))] == ["name"]


@pytest.mark.anyio
async def test_a_streamed_oversize_body_is_413(app: FastAPI, token: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(transport=transport, base_url="http://allot.test") as client:
        response = await client.post("/v1/jobs", content=chunks(), headers=headers)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["type"] == "https://allot.dev/problems/too-large"
