"""Inputs that once got a 500 (found by fuzzing the API) get a 4xx naming the field, and store
nothing: ids and cursors past 64 bits, log offsets past what a file offset holds, lone
surrogates in a command or the environment; job specs within documented size limits; pages
bounded in bytes; working directories kept out of the server's data directory; secrets never
in an error, an event or the audit log; a token over its rate limit gets 429."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI
from test_api_auth import TOKEN

from allot.api.app import create_app
from allot.api.auth import RateLimits
from allot.control.records import AuditFilter
from allot.control.workdirs import WorkdirRule
from harness import Harness, InProcessTransport, make_harness

BIG = str(1 << 63)


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/jobs/{BIG}",
        f"/v1/jobs/{BIG}/events",
        f"/v1/jobs/{BIG}/explain",
        f"/v1/jobs/{BIG}/logs",
        f"/v1/jobs?before={BIG}",
        "/v1/jobs/1/logs?offset=17592186044416",
        f"/v1/audit?before={BIG}",
    ],
)
def test_numbers_past_what_the_server_holds_are_a_422_naming_the_field(
    api: httpx.Client, path: str
) -> None:
    api.post("/v1/jobs", json={"command": "true"}).raise_for_status()
    response = api.get(path)
    assert response.status_code == 422, response.text
    field = response.json()["errors"][0]["field"]
    assert field in ("job_id", "before", "offset")


@pytest.mark.parametrize("method", ["cancel", "hold", "release"])
def test_actions_on_a_job_id_past_64_bits_are_a_422(api: httpx.Client, method: str) -> None:
    response = api.post(f"/v1/jobs/{BIG}/{method}")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "job_id"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"command": ["echo", "\\udfff"]}', "command"),
        ('{"command": "echo \\udfff"}', "command"),
        ('{"command": "true", "env": {"A": "\\udfff"}}', "env.A"),
        ('{"command": "true", "name": "\\ud800"}', "name"),
        ('{"command": "true", "workdir": "/tmp/\\udfff"}', "workdir"),
        ('{"command": "true", "queue": "\\udfff"}', "queue"),
    ],
)
def test_lone_surrogates_are_refused_and_nothing_is_stored(
    api: httpx.Client, harness: Harness, body: str, field: str
) -> None:
    response = api.post(
        "/v1/jobs", content=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field
    assert harness.store.pending_jobs() == []
    assert api.get("/v1/jobs").status_code == 200


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"command": ["x"] * 1025}, "command"),
        ({"command": "x" * 65_537}, "command"),
        ({"env": {f"V{i}": "1" for i in range(257)}}, "env"),
        ({"env": {"BIG": "x" * 32_769}}, "env.BIG"),
        ({"tasks": 4097}, "tasks"),
        ({"time_limit_seconds": 366 * 86_400 + 1}, "time_limit_seconds"),
    ],
)
def test_job_specs_are_bounded_as_the_openapi_says(
    api: httpx.Client, change: dict[str, object], field: str
) -> None:
    response = api.post("/v1/jobs", json={"command": "true", **change})
    assert response.status_code in (413, 422), response.text
    if response.status_code == 422:
        assert response.json()["errors"][0]["field"] == field
    schema = api.get("/v1/openapi.json").json()["components"]["schemas"]["JobSubmission"]
    props = schema["properties"]
    assert props["env"]["maxProperties"] == 256
    assert props["time_limit_seconds"]["anyOf"][0]["maximum"] == 366 * 86_400
    assert props["tasks"]["maximum"] == 4096


def test_a_page_of_large_jobs_is_bounded_in_bytes(api: httpx.Client) -> None:
    big = ["x" * 60_000] * 15  # 900 kB of argv per job, just under the body limit
    for _ in range(8):
        api.post("/v1/jobs", json={"command": big}).raise_for_status()
    page = api.get("/v1/jobs?limit=20")
    assert len(page.content) < 6 << 20
    body = page.json()
    assert 0 < len(body["items"]) < 8
    assert body["next"] is not None
    rest = api.get(f"/v1/jobs?limit=20&before={body['next']}").json()
    assert len(body["items"]) + len(rest["items"]) <= 8


def test_secrets_never_reach_errors_events_or_the_audit_log(
    api: httpx.Client, harness: Harness
) -> None:
    secret = "hunter2-s3cr3t"
    refused = api.post(
        "/v1/jobs",
        json={"command": "true", "env": {"TOKEN": secret, "BAD-NAME": secret}},
    )
    assert refused.status_code == 422
    assert secret not in refused.text
    job = api.post("/v1/jobs", json={"command": "true", "env": {"TOKEN": secret}}).json()
    assert secret not in json.dumps(job)
    assert secret not in api.get(f"/v1/jobs/{job['id']}/events").text
    harness.control.audit.flush()
    entries = harness.store.audit(AuditFilter())
    assert {e.action for e in entries} >= {"submit_job"}
    assert secret not in repr(entries)
    created = api.post("/v1/tokens", json={"name": "ci"}).json()
    harness.control.audit.flush()
    assert created["secret"] not in repr(harness.store.audit(AuditFilter()))
    assert created["secret"] not in repr(harness.store.events())
    assert TOKEN not in repr(harness.store.audit(AuditFilter()))


def test_a_workdir_inside_the_data_directory_is_refused(harness: Harness, tmp_path: object) -> None:
    harness.control.workdirs = WorkdirRule.of(["/srv/allot"], ["/home", "/scratch"])
    app = create_app(harness.control)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    transport = InProcessTransport(app)
    with httpx.Client(transport=transport, base_url="http://t", headers=headers) as client:
        for workdir, rule in (
            ("/srv/allot/work", "must not be inside the server's data directory"),
            ("/srv/allot", "must not be inside the server's data directory"),
            ("/home/../srv/allot", "must not be inside the server's data directory"),
            ("/etc", "must be inside one of the allowed roots: /home, /scratch"),
        ):
            response = client.post("/v1/jobs", json={"command": "true", "workdir": workdir})
            assert response.status_code == 422, workdir
            assert response.json()["errors"] == [{"field": "workdir", "rule": rule}]
        ok = client.post("/v1/jobs", json={"command": "true", "workdir": "/scratch/run"})
        assert ok.status_code == 201
    assert len(harness.store.pending_jobs()) == 1


def test_a_token_over_its_rate_limit_gets_429_and_admins_are_not_limited() -> None:
    from allot.control.principal import Role
    from harness import add_token

    harness = make_harness(tokens={TOKEN: "root"})
    add_token(harness.store, "member-token", "max", cluster_admin=False,
              roles={"default": Role.MEMBER})  # fmt: skip
    app: FastAPI = create_app(harness.control, rate_limits=RateLimits(1.0, 3.0))
    with httpx.Client(transport=InProcessTransport(app), base_url="http://t") as client:
        member = {"Authorization": "Bearer member-token"}
        statuses = [client.get("/v1/me", headers=member).status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200]
        assert statuses[3:] == [429, 429]
        limited = client.get("/v1/me", headers=member)
        assert limited.headers["Retry-After"] == "1"
        assert limited.json()["type"] == "https://allot.dev/problems/too-many-requests"
        admin = {"Authorization": f"Bearer {TOKEN}"}
        assert {client.get("/v1/me", headers=admin).status_code for _ in range(10)} == {200}
