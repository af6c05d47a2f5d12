"""``GET /metrics``: the Prometheus exposition, and the middleware that counts API requests.

Who may scrape: the metrics name queues, tenants and nodes and count each tenant's jobs, so
``/metrics`` is never open. It takes a bearer token that is either the server's scrape token
(``<data dir>/metrics-token``, written once with mode 0600 by ``allot up``; it grants nothing
else, so a Prometheus server can hold it without holding an API token) or the API token of a
cluster admin. Anything else is a 401 (no or unknown token) or a 403 (a valid token of
someone else), and the exposition is not read. The route is not part of the ``/v1`` REST API
(it is not in the OpenAPI document): Prometheus's text format is its contract.
"""

from __future__ import annotations

import hmac
import time

from fastapi import FastAPI, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from allot.api.auth import CredentialError, TokenVerifier
from allot.api.problems import FORBIDDEN, UNAUTHORIZED, ProblemError
from allot.control.credentials import hash_token
from allot.observe.metrics import CONTENT_TYPE, UNROUTED, ControlMetrics

METRICS_PATH = "/metrics"


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def install_metrics(app: FastAPI, metrics: ControlMetrics, scrape_token_hash: str | None) -> None:
    """Serve ``metrics`` at ``/metrics`` for the scrape token (its SHA-256 hex digest; None:
    cluster admins' API tokens only) and count every request of ``app``."""

    def unauthorized(detail: str) -> ProblemError:
        return ProblemError(
            401, UNAUTHORIZED, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"}
        )

    @app.get(METRICS_PATH, include_in_schema=False)
    def scrape(request: Request) -> Response:
        credential = _bearer(request)
        if credential is None:
            raise unauthorized("send the scrape token as 'Authorization: Bearer <token>'")
        offered = hash_token(credential)
        if scrape_token_hash is None or not hmac.compare_digest(offered, scrape_token_hash):
            tokens: TokenVerifier = request.app.state.token_verifier
            try:
                identity = tokens.cached(credential) or tokens(credential)
            except CredentialError:
                detail = "the token is neither the scrape token nor an API token"
                raise unauthorized(detail) from None
            if not identity.principal.is_cluster_admin:
                raise ProblemError(
                    403, FORBIDDEN, "Forbidden",
                    "metrics are for the scrape token and cluster admins",
                )  # fmt: skip
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    app.add_middleware(RequestMetrics, metrics=metrics)


class RequestMetrics:
    """ASGI middleware: counts each HTTP request by method, handler (the matched route's
    name, the OpenAPI operation id for ``/v1``: ``get_job``, never a path with an id in it)
    and status, and times it to the end of its response."""

    def __init__(self, app: ASGIApp, metrics: ControlMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before responding

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            # The router writes the matched route into the scope it was given (this one).
            handler = getattr(scope.get("route"), "name", None) or UNROUTED
            seconds = time.perf_counter() - started
            self.metrics.observe_request(scope.get("method", ""), handler, status, seconds)
