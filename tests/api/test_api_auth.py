"""Bearer-token authentication: every /v1 route needs a live token, /healthz does not, and the
token's name is the actor the control plane records."""

from __future__ import annotations

import anyio
import httpx
import pytest
from fastapi import FastAPI

from harness import Harness, InProcessTransport, add_token

ROUTES = [
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/1"),
    ("POST", "/v1/jobs/1/cancel"),
    ("POST", "/v1/jobs/1/hold"),
    ("POST", "/v1/jobs/1/release"),
    ("GET", "/v1/jobs/1/events"),
    ("GET", "/v1/jobs/1/explain"),
    ("GET", "/v1/jobs/1/logs"),
    ("GET", "/v1/nodes"),
    ("POST", "/v1/nodes/gpu-1/drain"),
    ("POST", "/v1/nodes/gpu-1/undrain"),
    ("GET", "/v1/queues"),
    ("GET", "/v1/me"),
    ("POST", "/v1/tokens"),
    ("GET", "/v1/audit"),
]

TOKEN = "tok-alice-0123456789"


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "https://allot.dev/problems/unauthorized"


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_v1_route_refuses_a_request_without_a_token(
    anon: httpx.Client, method: str, path: str
) -> None:
    assert_unauthorized(anon.request(method, path, json={"command": "true"}))


@pytest.mark.parametrize(
    "authorization",
    ["Bearer {token}x", "Bearer ", "Basic {token}", "{token}", "Bearer " + "x" * 5000],
)
def test_a_wrong_token_is_refused(anon: httpx.Client, token: str, authorization: str) -> None:
    response = anon.get("/v1/jobs", headers={"Authorization": authorization.format(token=token)})
    assert_unauthorized(response)
    assert token not in response.text


def test_the_right_token_is_let_in(api: httpx.Client) -> None:
    assert api.get("/v1/jobs").status_code == 200


def test_the_scheme_is_case_insensitive(anon: httpx.Client, token: str) -> None:
    assert anon.get("/v1/jobs", headers={"Authorization": f"bearer {token}"}).status_code == 200


def test_the_token_name_is_the_actor_and_the_default_user(
    api: httpx.Client, harness: Harness
) -> None:
    job = api.post("/v1/jobs", json={"command": "true"}).json()
    assert job["user"] == "alice"
    api.post(f"/v1/jobs/{job['id']}/hold")
    actors = [e.actor for e in harness.store.events(job["id"])]
    assert actors == ["alice", "alice"]


def test_healthz_needs_no_token(anon: httpx.Client) -> None:
    response = anon.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_revoked_and_expired_tokens_are_refused_at_once(harness: Harness, app: FastAPI) -> None:
    add_token(harness.store, "live-token", "bob", expires_at=harness.clock.now() + 60)
    add_token(harness.store, "old-token", "carol", expires_at=harness.clock.now() + 60)
    with httpx.Client(transport=InProcessTransport(app), base_url="http://allot.test") as client:

        def status(token: str) -> int:
            return client.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"}).status_code

        assert (status("live-token"), status("old-token")) == (200, 200)
        old = next(t for t in harness.store.tokens("carol"))
        client.post(
            f"/v1/tokens/{old.id}/revoke", headers={"Authorization": f"Bearer {TOKEN}"}
        ).raise_for_status()
        # The revocation went through this server: no cached verdict outlives it.
        response = client.get("/v1/jobs", headers={"Authorization": "Bearer old-token"})
        assert_unauthorized(response)
        assert "old-token" not in response.text
        harness.clock.advance(61)
        expired = client.get("/v1/jobs", headers={"Authorization": "Bearer live-token"})
        assert_unauthorized(expired)
        assert expired.json()["detail"] == "the API token has expired; create a new one"


class _Unread:
    """An ASGI ``receive`` that fails the test if anything reads the body."""

    async def __call__(self) -> dict[str, object]:
        raise AssertionError("the body was read before the caller was authenticated")


def test_an_unauthenticated_request_is_refused_before_its_body_is_read(app: FastAPI) -> None:
    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/jobs",
        "raw_path": b"/v1/jobs",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100000")],
        "client": ("127.0.0.1", 1),
        "server": ("allot.test", 80),
        "state": {},
    }
    anyio.run(app, scope, _Unread(), send)
    assert sent[0]["status"] == 401
