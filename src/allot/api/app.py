"""The application factory: ``create_app(control)`` builds the FastAPI app over a control plane.

Layout of the app: ``/healthz`` (no token) and ``/v1/...`` (every route needs a bearer token,
except the API's description: the OpenAPI document at ``/v1/openapi.json`` and its browsable
form at ``/v1/docs``, whose files this server serves itself, see ``allot.api.docs``).
Around the routes, from the outside in: unexpected errors become a 500 problem; the caller is
authenticated (401 before the body is read) and rate-limited (429); state-changing requests
are recorded in the audit log; bodies over ``MAX_BODY_BYTES`` are refused with 413; known
exceptions become problem documents. With metrics (``allot.api.metrics``), ``/metrics`` serves
them to the scrape token and cluster admins, and the outermost layer counts every request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute

from allot import __version__
from allot.api.audit import AuditRequests
from allot.api.auth import Authentication, RateLimits, TokenVerifier, Verifier, authenticate
from allot.api.body_limit import BodySizeLimit
from allot.api.context import close_intake
from allot.api.docs import install_docs
from allot.api.metrics import install_metrics
from allot.api.problems import UnexpectedErrors, documented, install_problem_handlers
from allot.api.routes import admin, cluster, jobs, profile, usage
from allot.control.profiling import Profiling
from allot.control.services import ControlPlane
from allot.control.tenancy import Tenancy
from allot.observe.metrics import ControlMetrics
from allot.wire.schemas import MAX_BODY_BYTES, Health

API_PREFIX = "/v1"


def _operation_id(route: APIRoute) -> str:
    # Stable, readable operation ids (``submit_job``) for generated clients.
    return route.name


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    close_intake(app)  # answer every submission already taken before the server stops


DEFAULT_RATE = 100.0  # requests per second per token, on average
DEFAULT_BURST = 1000.0


def create_app(
    control: ControlPlane,
    *,
    jwt: Verifier | None = None,
    rate_limits: RateLimits | None = None,
    metrics: ControlMetrics | None = None,
    scrape_token_hash: str | None = None,
) -> FastAPI:
    """The REST API over ``control``. ``jwt`` checks JWTs (OIDC mode; None: API tokens only);
    ``rate_limits`` limits each token (default: 100 requests per second, bursts of 1,000);
    ``metrics``, when given, are served at ``/metrics`` to the holder of the scrape token
    (its SHA-256 digest) and to cluster admins."""
    app = FastAPI(
        title="allot",
        summary="A compute platform for teams that share GPUs.",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served by install_docs, from local files instead of a CDN
        redoc_url=None,
        generate_unique_id_function=_operation_id,
        lifespan=_lifespan,
    )
    app.state.control = control
    app.state.profiling = Profiling(control)
    app.state.intake = None
    tokens = TokenVerifier(control)
    app.state.token_verifier = tokens

    def changed() -> None:
        tokens.forget()
        control.forget_cluster()

    app.state.tenancy = Tenancy(control.store, control.clock, changed)
    install_problem_handlers(app)

    v1 = APIRouter(
        prefix=API_PREFIX,
        dependencies=[Depends(authenticate)],
        responses=documented(400, 401, 422, 429, 500),
    )
    v1.include_router(jobs.router)
    v1.include_router(cluster.router)
    v1.include_router(profile.router)
    v1.include_router(admin.router)
    v1.include_router(usage.router)
    app.include_router(v1)
    install_docs(
        app, docs_url=f"{API_PREFIX}/docs", openapi_url=f"{API_PREFIX}/openapi.json", title="allot"
    )

    @app.get("/healthz", tags=["health"])
    def health() -> Health:
        """The server is up (no token needed)."""
        return Health()

    # Each one added wraps the ones before: the last added is outermost, so even a failure in
    # authentication becomes a problem, and nothing reads a body before the caller is known.
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(AuditRequests, control=control)
    limits = rate_limits or RateLimits(DEFAULT_RATE, DEFAULT_BURST)
    app.add_middleware(Authentication, tokens=tokens, jwt=jwt, limits=limits)
    app.add_middleware(UnexpectedErrors)
    if metrics is not None:
        install_metrics(app, metrics, scrape_token_hash)  # outermost: counts every answer
    return app
