"""Every API call as a value: method, path, query, body, headers and how to decode the answer.
The sync and async clients send these ``Call``s through their own httpx client and read the
answers with ``decoded``, so what each endpoint means is written once. ``LogFollower`` is the
loop of ``follow_logs`` as a state machine, and ``settings`` the client configuration, for the
same reason (where the server is and which token to send come from ``allot.client._endpoint``).
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from allot.client._endpoint import find_endpoint
from allot.client._errors import ApiError, error_from_response
from allot.wire.metering import BudgetOut, JobCostOut, UsageReportOut
from allot.wire.profiling import (
    FlavorSpeedOut,
    NodeCheckIn,
    NodeCheckOut,
    ProfileOut,
    RecommendationOut,
    RecommendRequest,
)
from allot.wire.schemas import (
    EventOut,
    ExplainOut,
    Health,
    JobOut,
    JobPage,
    JobSubmission,
    LogChunkOut,
    NodeOut,
    QueueOut,
)

T = TypeVar("T")
QueryValue = str | int | float | bool | None

M = TypeVar("M", bound=BaseModel)


@functools.cache
def _list_adapter(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def list_of(model: type[M]) -> Callable[[bytes], list[M]]:
    """A decoder of a JSON list of ``model``; its validator is built on first use, so a
    command pays only for the answers it reads."""

    def decode(raw: bytes) -> list[M]:
        return _list_adapter(model).validate_json(raw)

    return decode


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request and the decoder of its successful answer."""

    method: str
    path: str
    decode: Callable[[bytes], T]
    params: httpx.QueryParams = field(default_factory=httpx.QueryParams)
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # True when sending it twice cannot do anything twice, so a lost answer may be retried.
    retry_safe: bool = False


@dataclass(frozen=True, slots=True)
class Settings:
    """How a client reaches the server: its URL, the headers of every request, and the TLS
    verification httpx is to use."""

    url: str
    headers: dict[str, str]
    verify: ssl.SSLContext | bool


def settings(url: str | None, token: str | None) -> Settings:
    """The client configuration, with the server and token found as ``find_endpoint`` says.

    For an ``http://`` server, TLS verification gets a context that trusts no certificate
    instead of the CA bundle: loading the bundle is most of the cost of making a client (a
    command line feels it), and nothing this client sends uses TLS; were something to, it
    would fail rather than go unverified."""
    endpoint = find_endpoint(url, token)
    headers = {"Accept": "application/json"}
    if endpoint.token:
        headers["Authorization"] = f"Bearer {endpoint.token}"
    verify: ssl.SSLContext | bool = True
    if endpoint.url.startswith("http://"):
        verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, with no CA to trust
    return Settings(endpoint.url, headers, verify)


def decoded(call: Call[T], response: httpx.Response) -> T:
    """The answer to ``call``; raises the ApiError for an error response, or for an answer
    this client cannot read."""
    if response.is_error:
        raise error_from_response(response)
    try:
        return call.decode(response.content)
    except ValidationError as exc:
        raise ApiError(
            f"the server's answer to {call.method} {call.path} is not what this client expects "
            f"({exc.error_count()} problems); is the server a different version?",
            status=response.status_code,
        ) from exc


def submit(submission: JobSubmission, idempotency_key: str) -> Call[JobOut]:
    """POST /v1/jobs; safe to retry because the key makes the server create the job once."""
    return Call(
        "POST",
        "/v1/jobs",
        JobOut.model_validate_json,
        # Only what the caller set, so a newer client's defaults never reach an older server.
        body=submission.model_dump(mode="json", exclude_unset=True),
        headers={"Idempotency-Key": idempotency_key},
        retry_safe=True,
    )


def submit_many(
    submissions: Sequence[JobSubmission],
    idempotency_key: str,
    array: bool = False,
    array_id: int | None = None,
) -> Call[list[JobOut]]:
    """POST /v1/jobs/batch; safe to retry: job i is keyed '<key>:<i>' on the server. ``array``
    and ``array_id`` are sent only when given, so a plain batch reaches older servers too."""
    body: dict[str, Any] = {
        "jobs": [s.model_dump(mode="json", exclude_unset=True) for s in submissions]
    }
    if array:
        body["array"] = True
    if array_id is not None:
        body["array_id"] = array_id
    return Call(
        "POST",
        "/v1/jobs/batch",
        list_of(JobOut),
        body=body,
        headers={"Idempotency-Key": idempotency_key},
        retry_safe=True,
    )


def jobs(
    state: str | Sequence[str] | None,
    queue: str | None,
    user: str | None,
    tenant: str | None,
    limit: int,
    before: str | None,
) -> Call[JobPage]:
    """GET /v1/jobs with its filters."""
    states = [state] if isinstance(state, str) else list(state or ())
    params: list[tuple[str, QueryValue]] = [("state", s) for s in states]
    for name, value in (("queue", queue), ("user", user), ("tenant", tenant), ("before", before)):
        if value is not None:
            params.append((name, value))
    params.append(("limit", limit))
    return Call("GET", "/v1/jobs", JobPage.model_validate_json, params=httpx.QueryParams(params))


def job(job_id: int) -> Call[JobOut]:
    """GET /v1/jobs/{id}."""
    return Call("GET", f"/v1/jobs/{int(job_id)}", JobOut.model_validate_json)


def job_action(job_id: int, action: str) -> Call[JobOut]:
    """POST /v1/jobs/{id}/{cancel|hold|release}."""
    return Call("POST", f"/v1/jobs/{int(job_id)}/{action}", JobOut.model_validate_json)


def events(job_id: int) -> Call[list[EventOut]]:
    """GET /v1/jobs/{id}/events."""
    return Call("GET", f"/v1/jobs/{int(job_id)}/events", list_of(EventOut))


def explain(job_id: int) -> Call[ExplainOut]:
    """GET /v1/jobs/{id}/explain."""
    return Call("GET", f"/v1/jobs/{int(job_id)}/explain", ExplainOut.model_validate_json)


def logs(job_id: int, task: int, offset: int, limit: int | None) -> Call[LogChunkOut]:
    """GET /v1/jobs/{id}/logs from ``offset``."""
    params: list[tuple[str, QueryValue]] = [("task", task), ("offset", offset)]
    if limit is not None:
        params.append(("limit", limit))
    path = f"/v1/jobs/{int(job_id)}/logs"
    return Call("GET", path, LogChunkOut.model_validate_json, params=httpx.QueryParams(params))


def nodes() -> Call[list[NodeOut]]:
    """GET /v1/nodes."""
    return Call("GET", "/v1/nodes", list_of(NodeOut))


def node_action(name: str, action: str) -> Call[NodeOut]:
    """POST /v1/nodes/{name}/{drain|undrain}."""
    path = f"/v1/nodes/{quote(name, safe='')}/{action}"
    return Call("POST", path, NodeOut.model_validate_json)


def queues() -> Call[list[QueueOut]]:
    """GET /v1/queues."""
    return Call("GET", "/v1/queues", list_of(QueueOut))


def profile(
    job_id: int, flops_per_step: float | None, bytes_per_step: float | None
) -> Call[ProfileOut]:
    """GET /v1/jobs/{id}/profile, with the overrides given."""
    params: list[tuple[str, QueryValue]] = []
    if flops_per_step is not None:
        params.append(("flops_per_step", flops_per_step))
    if bytes_per_step is not None:
        params.append(("bytes_per_step", bytes_per_step))
    path = f"/v1/jobs/{int(job_id)}/profile"
    return Call("GET", path, ProfileOut.model_validate_json, params=httpx.QueryParams(params))


def recommend(job_id: int, request: RecommendRequest) -> Call[RecommendationOut]:
    """POST /v1/jobs/{id}/recommendation; safe to retry (it records the same speeds again)."""
    return Call(
        "POST",
        f"/v1/jobs/{int(job_id)}/recommendation",
        RecommendationOut.model_validate_json,
        body=request.model_dump(mode="json", exclude_none=True),
        retry_safe=True,
    )


def node_check(name: str, check: NodeCheckIn) -> Call[NodeCheckOut]:
    """POST /v1/nodes/{name}/checks."""
    path = f"/v1/nodes/{quote(name, safe='')}/checks"
    return Call("POST", path, NodeCheckOut.model_validate_json, body=check.model_dump(mode="json"))


def flavor_speeds(job_class: str | None) -> Call[list[FlavorSpeedOut]]:
    """GET /v1/flavor-speeds."""
    params = httpx.QueryParams({} if job_class is None else {"job_class": job_class})
    return Call("GET", "/v1/flavor-speeds", list_of(FlavorSpeedOut), params=params)


def usage(
    by: str, since: str, until: str | None, bucket: str | None, tenant: str | None
) -> Call[UsageReportOut]:
    """GET /v1/usage."""
    params: dict[str, str] = {"by": by, "since": since}
    for name, value in (("until", until), ("bucket", bucket), ("tenant", tenant)):
        if value is not None:
            params[name] = value
    return Call(
        "GET", "/v1/usage", UsageReportOut.model_validate_json, params=httpx.QueryParams(params)
    )


def job_cost(job_id: int) -> Call[JobCostOut]:
    """GET /v1/jobs/{id}/cost."""
    return Call("GET", f"/v1/jobs/{job_id}/cost", JobCostOut.model_validate_json)


def budgets() -> Call[list[BudgetOut]]:
    """GET /v1/budgets."""
    return Call("GET", "/v1/budgets", list_of(BudgetOut))


def health() -> Call[Health]:
    """GET /healthz."""
    return Call("GET", "/healthz", Health.model_validate_json)


@dataclass(slots=True)
class LogFollower:
    """Where ``follow_logs`` is in a job's output: ask with ``call()``, hand the answer to
    ``take()``, stop once ``done``. Follows the job's latest run; if a new run replaces the
    one being read (the job was requeued), reading starts again at its beginning."""

    job_id: int
    task: int
    offset: int = 0
    run_id: str | None = None
    done: bool = False

    def call(self) -> Call[LogChunkOut]:
        """The next request to send."""
        return logs(self.job_id, self.task, self.offset, None)

    def take(self, chunk: LogChunkOut) -> tuple[str, bool]:
        """The text to hand on, and whether to wait before asking again (nothing new yet)."""
        if self.run_id is not None and chunk.run_id not in (None, self.run_id):
            # This chunk was read at the old run's offset; read the new run from its start.
            self.run_id, self.offset = chunk.run_id, 0
            return "", False
        self.run_id = chunk.run_id
        moved = chunk.next_offset != self.offset
        self.offset = chunk.next_offset
        if chunk.finished and not moved:
            self.done = True
        return chunk.data, not moved and not self.done
