"""Errors are RFC 9457 problem documents; unexpected failures are 500s that reveal nothing;
secrets never leave the server; the OpenAPI document describes a /v1 API."""

from __future__ import annotations

import logging

import httpx
import pytest

from allot.api import wire
from allot.api.problems import field_name
from allot.control.records import RunPhase
from allot.core.model import JobState, NodeState
from harness import Harness

MEMBERS = {"type", "title", "status", "detail", "instance"}
SECRET = "hunter2-do-not-echo"


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, object] = response.json()
    assert problem.keys() >= MEMBERS
    assert problem["status"] == status
    assert isinstance(problem["type"], str)
    assert problem["type"].startswith("https://allot.dev/problems/") or status == 405
    assert problem["instance"] == response.request.url.path
    return problem


def test_known_failures_are_problem_documents(api: httpx.Client, anon: httpx.Client) -> None:
    assert_problem(anon.get("/v1/nodes"), 401)
    assert_problem(api.get("/v1/jobs/42"), 404)
    assert_problem(api.get("/v1/no-such-thing"), 404)
    assert_problem(api.post("/v1/jobs", json={"command": 1}), 422)
    assert_problem(api.post("/v1/jobs", json={"command": "x", "queue": "nope"}), 422)
    assert_problem(api.post("/v1/jobs", content=b"x" * (2 << 20)), 413)
    job = api.post("/v1/jobs", json={"command": "true"}).json()
    api.post(f"/v1/jobs/{job['id']}/cancel")
    assert_problem(api.post(f"/v1/jobs/{job['id']}/cancel"), 409)
    not_allowed = assert_problem(api.delete("/v1/jobs"), 405)
    assert not_allowed["type"] == "about:blank"


def test_an_unexpected_error_is_a_generic_500_and_the_traceback_is_logged(
    api: httpx.Client,
    harness: Harness,
    token: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> list[object]:
        raise RuntimeError("database exploded at /var/lib/allot")

    monkeypatch.setattr(harness.control, "nodes", broken)
    with caplog.at_level(logging.ERROR, logger="allot.api"):
        response = api.get("/v1/nodes", headers={"X-Note": SECRET})
    problem = assert_problem(response, 500)
    assert problem["type"] == "https://allot.dev/problems/internal"
    assert "exploded" not in response.text
    assert "database exploded" in caplog.text  # the traceback, for the operator
    assert "GET /v1/nodes" in caplog.text
    assert token not in caplog.text
    assert SECRET not in caplog.text


def test_env_values_never_appear_in_responses_or_logs(
    api: httpx.Client, harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    env = {"API_KEY": SECRET}
    with caplog.at_level(logging.DEBUG):
        job = api.post("/v1/jobs", json={"command": "true", "env": env}).json()
        harness.start(job["id"])
        texts = [
            api.get(f"/v1/jobs/{job['id']}").text,
            api.get("/v1/jobs").text,
            api.get(f"/v1/jobs/{job['id']}/events").text,
            api.get(f"/v1/jobs/{job['id']}/explain").text,
            api.post("/v1/jobs", json={"command": "true", "env": {"bad-name": SECRET}}).text,
            api.post("/v1/jobs", json={"command": "true", "env": {"X": SECRET}, "tasks": 0}).text,
            api.post("/v1/jobs", json={"command": "true", "env": env, "queue": "nope"}).text,
        ]
    assert job["env_keys"] == ["API_KEY"]
    for text in texts:
        assert SECRET not in text
    assert SECRET not in caplog.text


def test_openapi_is_served_and_every_route_is_under_v1(anon: httpx.Client) -> None:
    response = anon.get("/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    paths = set(document["paths"])
    assert {p for p in paths if not p.startswith("/v1/")} == {"/healthz"}
    assert "/v1/jobs/{job_id}/logs" in paths
    submit = document["paths"]["/v1/jobs"]["post"]
    assert submit["operationId"] == "submit_job"
    assert "application/problem+json" in submit["responses"]["422"]["content"]
    assert {"401", "409", "413", "422"} <= set(submit["responses"])
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert anon.get("/v1/docs").status_code == 200


@pytest.mark.parametrize(
    ("loc", "name"),
    [
        (("body", "resources", "gpus"), "resources.gpus"),
        (("body", "command", 2), "command[2]"),
        (("query", "state", 0), "state[0]"),
        (("body",), "body"),
        (("header", "idempotency-key"), "idempotency-key"),
    ],
)
def test_field_names_drop_the_location_and_index_lists(
    loc: tuple[str | int, ...], name: str
) -> None:
    assert field_name(loc) == name


def test_every_core_state_has_a_wire_name() -> None:
    assert set(wire.JOB_STATES) == set(JobState)
    assert set(wire.RUN_PHASES) == set(RunPhase)
    assert set(wire.NODE_STATES) == set(NodeState)
    assert all(wire.JOB_STATES[s] == s.value for s in JobState)
