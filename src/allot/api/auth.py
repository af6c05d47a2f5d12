"""Authentication: who is asking, decided before anything reads the request's body.

``Authentication`` is ASGI middleware in front of every ``/v1`` route (except the API's own
description, ``/v1/openapi.json`` and ``/v1/docs``): it turns ``Authorization: Bearer <credential>``
into the caller's ``Principal`` and puts it in the request's state, or answers 401 at once,
without receiving the body. Routes get the principal through the ``Caller`` dependency, which
also documents the bearer scheme in the OpenAPI description.

Credentials:
- an API token (``allot admin token create``): looked up by its SHA-256 in the store; refused
  when unknown, revoked or expired; its user's memberships make the principal. A verified
  token is remembered for ``CACHE_SECONDS``; any change to users, roles or tokens through this
  server empties that memory at once, and a change made elsewhere (another server on a shared
  database) is seen within ``CACHE_SECONDS``. Its use is noted for ``last_used_at`` (written
  at most once a minute, off the request's path).
- a JWT from the site's identity provider, when OIDC is configured (``allot.api.oidc``): any
  credential of three dot-separated parts goes there.

Then ``RateLimit`` (per token, a token bucket) answers 429 with ``Retry-After`` to a caller
that sends too much; cluster admins are not limited, so an operator can always act.
Tokens never reach the log, an error message or the audit log.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from allot.api.problems import TOO_MANY, UNAUTHORIZED, ProblemError, problem_response
from allot.control.credentials import hash_token
from allot.control.principal import Principal
from allot.control.services import ControlPlane

# Longer credentials are refused without hashing; tokens are 49 characters, JWTs a few KiB.
MAX_CREDENTIAL_CHARS = 16 * 1024
CACHE_SECONDS = 30.0
PRINCIPAL = "allot_principal"  # where the request's state keeps the caller
OPEN_PATHS = ("/v1/openapi.json", "/v1/docs")

# auto_error=False: the middleware has already refused a request without a token.
_bearer = HTTPBearer(auto_error=False, description="An allot API token, or an OIDC JWT.")


class CredentialError(Exception):
    """A credential that is not valid; the message says why without repeating it."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a credential speaks for: the principal, the API token's id (None for a JWT) and
    the key its requests are rate-limited under."""

    principal: Principal
    token_id: int | None
    limit_key: str


Verifier = Callable[[str], Identity]  # raises CredentialError


class TokenVerifier:
    """API tokens in the store, remembered for ``CACHE_SECONDS`` (see the module docstring)."""

    def __init__(self, control: ControlPlane) -> None:
        self.control = control
        self._known: dict[str, tuple[Identity, float, float | None]] = {}
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Drop every remembered token (users, roles or tokens changed)."""
        with self._lock:
            self._known.clear()

    def cached(self, token: str) -> Identity | None:
        """The identity of a token verified in the last ``CACHE_SECONDS``, or None (no I/O)."""
        digest = hash_token(token)
        with self._lock:
            found = self._known.get(digest)
        if found is None or found[1] <= time.monotonic():
            return None
        identity, _, expires_at = found
        if expires_at is not None and self.control.clock.now() >= expires_at:
            return None
        return identity

    def __call__(self, token: str) -> Identity:
        """Verify ``token`` against the store; raises CredentialError."""
        digest = hash_token(token)
        record = self.control.store.find_token(digest)
        if record is None:
            raise CredentialError("the API token is not valid (unknown or revoked)")
        if not record.live_at(self.control.clock.now()):
            raise CredentialError("the API token has expired; create a new one")
        user = self.control.store.get_user(record.user)
        identity = Identity(user.principal(), record.id, f"token:{record.id}")
        with self._lock:
            self._known[digest] = (identity, time.monotonic() + CACHE_SECONDS, record.expires_at)
        return identity


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401, UNAUTHORIZED, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"}
    )


def _credential(scope: Scope) -> str | None:
    header = Headers(scope=scope).get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return None
    return value


class Authentication:
    """ASGI middleware: the caller of each ``/v1`` request, or a 401 before its body is read;
    then the caller's rate limit."""

    def __init__(
        self,
        app: ASGIApp,
        tokens: TokenVerifier,
        jwt: Verifier | None = None,
        limits: RateLimits | None = None,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.jwt = jwt
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/v1/") or path.startswith(OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        try:
            identity = await self._identify(_credential(scope))
        except CredentialError as err:
            detail = str(err)
            response = problem_response(
                401, UNAUTHORIZED, "Unauthorized", detail, path,
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
            await response(scope, receive, send)
            return
        if self.limits is not None and not identity.principal.is_cluster_admin:
            wait = self.limits.take(identity.limit_key)
            if wait > 0:
                seconds = str(max(1, math.ceil(wait)))
                response = problem_response(
                    429, TOO_MANY, "Too many requests",
                    f"this token sends more than {self.limits.rate:g} requests per second;"
                    f" retry after {seconds} s", path, headers={"Retry-After": seconds},
                )  # fmt: skip
                await response(scope, receive, send)
                return
        scope.setdefault("state", {})[PRINCIPAL] = identity.principal
        if identity.token_id is not None:
            self.tokens.control.audit.token_used(identity.token_id, self.tokens.control.clock.now())
        await self.app(scope, receive, send)

    async def _identify(self, credential: str | None) -> Identity:
        if not credential:
            raise CredentialError("send an API token as 'Authorization: Bearer <token>'")
        if len(credential) > MAX_CREDENTIAL_CHARS:
            raise CredentialError("the API token is not valid (unknown or revoked)")
        if credential.count(".") == 2:
            if self.jwt is None:
                raise CredentialError("this server accepts no JWTs (OIDC is not configured)")
            return await run_in_threadpool(self.jwt, credential)
        cached = self.tokens.cached(credential)
        if cached is not None:
            return cached
        return await run_in_threadpool(self.tokens, credential)


class RateLimits:
    """A token bucket per key: ``rate`` requests per second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take one request from ``key``'s bucket: 0 when allowed, else seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller ``Authentication`` found (a 401 problem without one)."""
    principal = getattr(request.state, PRINCIPAL, None)
    if not isinstance(principal, Principal):
        raise _unauthorized("send an API token as 'Authorization: Bearer <token>'")
    return principal


Caller = Annotated[Principal, Depends(authenticate)]

__all__ = ["Caller", "Identity", "TokenVerifier", "authenticate", "hash_token"]
