"""Bearer-token authentication: every /v1 route needs a live token, /healthz does not, and the
token's name is the actor the control plane records."""

from __future__ import annotations

import httpx
import pytest

from allot.api.app import create_app
from allot.control.records import TokenRecord
from harness import Harness, InProcessTransport

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
]


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


def test_a_custom_verifier_decides_and_revoked_tokens_are_refused(
    harness: Harness, token: str
) -> None:
    records = {
        "live": TokenRecord(1, "bob", "admin", 0.0),
        "revoked": TokenRecord(2, "carol", "admin", 0.0, revoked_at=1.0),
    }
    app = create_app(harness.control, token_verifier=records.get)
    with httpx.Client(transport=InProcessTransport(app), base_url="http://allot.test") as client:
        live = client.post(
            "/v1/jobs", json={"command": "true"}, headers={"Authorization": "Bearer live"}
        )
        assert live.status_code == 201
        assert live.json()["user"] == "bob"
        revoked = client.get("/v1/jobs", headers={"Authorization": "Bearer revoked"})
        assert_unauthorized(revoked)
        # The store's tokens are not consulted when a verifier is given.
        store_token = client.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"})
        assert_unauthorized(store_token)
