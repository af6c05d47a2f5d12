"""OIDC bearer mode with tokens signed by a key the test makes: the JWKS comes from a file or
from a URL this test serves on loopback; signature, issuer, audience and expiry are checked;
the groups claim maps to tenants and roles as the OIDC file says."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from allot.api.app import create_app
from allot.api.oidc import JwtVerifier
from allot.config.errors import ConfigError
from allot.config.oidc import load_oidc
from allot.core.quota.config import QueueSpec, QuotaConfig, TenantSpec
from harness import InProcessTransport, make_harness

ISSUER = "https://idp.example.test/realms/lab"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwks() -> dict[str, Any]:
    public = json.loads(RSAAlgorithm.to_jwk(KEY.public_key()))
    return {"keys": [{**public, "kid": "k1", "alg": "RS256", "use": "sig"}]}


def _token(key: Any = KEY, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": "allot", "sub": "ada", "exp": now + 300, "iat": now,
            "groups": ["vision-team"], **claims}  # fmt: skip
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


def _config(folder: Path, jwks: str) -> Path:
    path = folder / "oidc.yaml"
    path.write_text(
        f"issuer: {ISSUER}\naudience: allot\njwks: {jwks}\n"
        "cluster_admin_groups: [gpu-admins]\n"
        "tenants:\n  vision-team: {tenant: vision, role: member}\n"
        "  vision-leads: {tenant: vision, role: tenant_admin}\n"
        "  nlp-readers: {tenant: nlp, role: viewer}\n"
    )
    return path


@pytest.fixture
def jwks_url() -> Iterator[str]:
    body = json.dumps(_jwks()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/certs"
    finally:
        server.shutdown()
        server.server_close()


def _client(config: Path) -> httpx.Client:
    quotas = QuotaConfig(
        (TenantSpec("vision"), TenantSpec("nlp")),
        (QueueSpec("see", "vision"), QueueSpec("read", "nlp")),
    )
    harness = make_harness(quotas=quotas)
    app = create_app(harness.control, jwt=JwtVerifier(load_oidc(config)))
    return httpx.Client(transport=InProcessTransport(app), base_url="http://allot.test")


def _me(client: httpx.Client, token: str) -> httpx.Response:
    return client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("source", ["file", "url"])
def test_a_signed_token_maps_its_groups_to_tenants_and_roles(
    tmp_path: Path, jwks_url: str, source: str
) -> None:
    if source == "file":
        (tmp_path / "jwks.json").write_text(json.dumps(_jwks()))
        config = _config(tmp_path, "jwks.json")
    else:
        config = _config(tmp_path, jwks_url)
    with _client(config) as client:
        me = _me(client, _token(groups=["vision-team", "vision-leads", "nlp-readers", "x"]))
        assert me.json() == {
            "user": "ada",
            "cluster_admin": False,
            "tenants": {"nlp": "viewer", "vision": "tenant_admin"},
        }
        admin = _me(client, _token(sub="root", groups=["gpu-admins"])).json()
        assert admin["cluster_admin"] is True
        token = _token()
        job = client.post(
            "/v1/jobs",
            json={"command": "true", "queue": "see"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert job.status_code == 201
        assert (job.json()["user"], job.json()["tenant"]) == ("ada", "vision")
        refused = client.post(
            "/v1/jobs",
            json={"command": "true", "queue": "read"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert refused.status_code == 403


def _hs256() -> str:
    # A shared-secret token: whoever holds the public JWKS must not be able to mint one.
    claims = {"iss": ISSUER, "aud": "allot", "sub": "x", "exp": 2**40}
    return jwt.encode(claims, "k" * 64, algorithm="HS256", headers={"kid": "k1"})


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        (lambda: _token(exp=int(time.time()) - 120), "the JWT has expired"),
        (lambda: _token(iss="https://evil.example"), "the JWT is not valid: Invalid issuer"),
        (lambda: _token(aud="someone-else"), "the JWT is not valid: Audience doesn't match"),
        (lambda: _token(key=OTHER_KEY), "the JWT is not valid: Signature verification failed"),
        (lambda: _token(sub=""), "the JWT has no 'sub' claim naming the user"),
        (_hs256, "the JWT is not valid: The specified alg value is not allowed"),
    ],
)
def test_bad_tokens_are_refused(tmp_path: Path, token: Any, detail: str) -> None:
    (tmp_path / "jwks.json").write_text(json.dumps(_jwks()))
    with _client(_config(tmp_path, "jwks.json")) as client:
        response = _me(client, token())
        assert response.status_code == 401
        assert response.json()["detail"] == detail


def test_without_oidc_a_jwt_is_refused_and_api_tokens_still_work(tmp_path: Path) -> None:
    harness = make_harness(tokens={"tok-1": "root"})
    app = create_app(harness.control)
    with httpx.Client(transport=InProcessTransport(app), base_url="http://t") as client:
        assert _me(client, _token()).json()["detail"] == (
            "this server accepts no JWTs (OIDC is not configured)"
        )
        assert _me(client, "tok-1").status_code == 200


def test_oidc_files_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "oidc.yaml"
    path.write_text(f"issuer: {ISSUER}\naudience: allot\njwks: missing.json\n")
    with pytest.raises(ConfigError, match="field 'jwks': no such file"):
        load_oidc(path)
    (tmp_path / "k.json").write_text("{}")
    path.write_text(f"issuer: {ISSUER}\naudience: allot\njwks: k.json\nalgorithms: [HS256]\n")
    with pytest.raises(ConfigError, match="must be one of RS256"):
        load_oidc(path)
    mapping = "tenants:\n  g: {tenant: a, role: boss}\n"
    path.write_text(f"issuer: {ISSUER}\naudience: allot\njwks: k.json\n{mapping}")
    with pytest.raises(ConfigError, match="role"):
        load_oidc(path)
