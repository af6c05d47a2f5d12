"""Bearer-token authentication: who is asking. Every ``/v1`` route depends on ``authenticate``,
which turns ``Authorization: Bearer <token>`` into the caller's ``Principal`` (user, tenants,
roles): the one identity the use cases act for and record; nothing in a request body is
trusted to say who is asking.

Tokens are stored only as their SHA-256; the default verifier hashes what is presented and
looks the hash up, so no stored secret is ever compared byte by byte (and a lookup's timing
can only reveal something about a hash, never about a token). Tokens never reach the log.
A verified token is remembered for ``CACHE_SECONDS`` (by hash), so a revocation takes effect
within that time and the hot path does not read the store on every request.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from allot.api.problems import UNAUTHORIZED, ProblemError
from allot.control.principal import Principal
from allot.control.records import TokenRecord
from allot.control.services import ControlPlane

TokenVerifier = Callable[[str], TokenRecord | None]

# Longer credentials are refused without hashing; real tokens are about 43 characters.
MAX_TOKEN_CHARS = 1024
CACHE_SECONDS = 30.0

# auto_error=False: a missing token is answered with our own 401 problem, not FastAPI's.
_bearer = HTTPBearer(auto_error=False, description="An allot API token.")


def hash_token(token: str) -> str:
    """How tokens are stored: the hex SHA-256 of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def store_verifier(control: ControlPlane) -> TokenVerifier:
    """The default verifier: the live token in the control plane's store with this hash,
    remembered for ``CACHE_SECONDS`` once found (unknown tokens are always looked up)."""
    known: dict[str, tuple[TokenRecord, float]] = {}
    lock = threading.Lock()

    def verify(token: str) -> TokenRecord | None:
        digest = hash_token(token)
        now = time.monotonic()
        with lock:
            cached = known.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        record = control.store.find_token(digest)
        with lock:
            if record is None:
                known.pop(digest, None)
            else:
                known[digest] = (record, now + CACHE_SECONDS)
        return record

    return verify


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401,
        UNAUTHORIZED,
        "Unauthorized",
        detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The principal the presented token speaks for; raises a 401 problem without one.
    ``async`` to avoid a worker-thread hop per request; the verifier's store read happens only
    when a token is not in its short-lived cache."""
    if credentials is None or not credentials.credentials:
        raise _unauthorized("send an API token as 'Authorization: Bearer <token>'")
    token = credentials.credentials
    verify: TokenVerifier = request.app.state.token_verifier
    record = verify(token) if len(token) <= MAX_TOKEN_CHARS else None
    if record is None or record.revoked_at is not None:
        raise _unauthorized("the API token is not valid (unknown or revoked)")
    return principal_of(record)


def principal_of(record: TokenRecord) -> Principal:
    """Who a token speaks for. Every token is a cluster admin's until tenants and roles are
    configured; the user is the token's name."""
    return Principal.admin(record.name)


Caller = Annotated[Principal, Depends(authenticate)]
