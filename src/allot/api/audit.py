"""The audit log of requests: ``AuditRequests`` records every state-changing request (``POST``,
``PUT``, ``PATCH``, ``DELETE`` under ``/v1``) of an authenticated caller, whatever its outcome,
as one ``AuditEntry``: the caller, the operation (its OpenAPI operation id), the target, the
tenant, the time, the outcome (from the status: ``ok``, ``denied``, ``not_found``,
``invalid``, ``conflict``, ``too_large``, ``error``) and the reason.

A route says what it acted on with ``note`` (``job 12`` of tenant ``vision``, why); without a
note the target is the request's path. A refused request's reason is its problem's detail,
which never echoes a token or an environment value. Requests refused before the caller is
known (401) and those over the rate limit (429) are not recorded, so nobody can fill the log
without a valid token. Entries go to the control plane's ``AuditTrail``, which writes them in
batches off the request's path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from allot.api.auth import PRINCIPAL
from allot.api.problems import PROBLEM_MEDIA_TYPE
from allot.control.principal import Principal
from allot.control.records import AuditEntry
from allot.control.services import ControlPlane

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOTE = "allot_audit"
MAX_REASON = 1000
_PROBLEM_BYTES = 64 * 1024
OUTCOMES = {
    400: "invalid",
    403: "denied",
    404: "not_found",
    405: "invalid",
    409: "conflict",
    413: "too_large",
    422: "invalid",
}


@dataclass(frozen=True, slots=True)
class AuditNote:
    """What a request acted on, as its route says."""

    target: str
    tenant: str = ""
    job_id: int | None = None
    reason: str = ""


def note(
    request: Request, target: str, *, tenant: str = "", job_id: int | None = None, reason: str = ""
) -> None:
    """Say what this request acted on, for its audit entry."""
    setattr(request.state, NOTE, AuditNote(target, tenant, job_id, reason))


def outcome_of(status: int) -> str:
    """The audit outcome of an HTTP status."""
    if 200 <= status < 300:
        return "ok"
    if status >= 500 or status == 0:
        return "error"
    return OUTCOMES.get(status, "refused")


class AuditRequests:
    """ASGI middleware: one audit entry per state-changing ``/v1`` request."""

    def __init__(self, app: ASGIApp, control: ControlPlane) -> None:
        self.app = app
        self.control = control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in STATE_CHANGING
            or not scope["path"].startswith("/v1/")
        ):
            await self.app(scope, receive, send)
            return
        status = 0
        problem = bytearray()
        is_problem = False

        async def watching(message: Message) -> None:
            nonlocal status, is_problem
            if message["type"] == "http.response.start":
                status = message["status"]
                kind = Headers(raw=message.get("headers", [])).get("content-type", "")
                is_problem = kind.startswith(PROBLEM_MEDIA_TYPE)
            elif (
                message["type"] == "http.response.body"
                and is_problem
                and len(problem) < _PROBLEM_BYTES
            ):
                problem.extend(message.get("body", b"")[: _PROBLEM_BYTES - len(problem)])
            await send(message)

        try:
            await self.app(scope, receive, watching)
        finally:
            self._record(scope, status, bytes(problem))

    def _record(self, scope: Scope, status: int, problem: bytes) -> None:
        state: dict[str, Any] = scope.get("state") or {}
        principal = state.get(PRINCIPAL)
        if not isinstance(principal, Principal) or status in (401, 429):
            return
        noted = state.get(NOTE)
        route = scope.get("route")
        action = getattr(route, "name", None) or f"{scope['method']} {scope['path']}"
        if noted is None:
            noted = AuditNote(scope["path"], job_id=_job_id(scope))
        outcome = outcome_of(status)
        reason = noted.reason if outcome == "ok" else _detail(problem) or f"HTTP {status}"
        self.control.audit.record(
            AuditEntry(
                time=self.control.clock.now(),
                actor=principal.user,
                action=action,
                target=noted.target,
                outcome=outcome,
                reason=(reason or outcome)[:MAX_REASON],
                tenant=noted.tenant,
                job_id=noted.job_id,
            )
        )


def _job_id(scope: Scope) -> int | None:
    """The job a request's path names, if it names one that could exist."""
    raw = str(scope.get("path_params", {}).get("job_id", ""))
    if raw.isascii() and raw.isdigit() and 0 < int(raw) < 1 << 63:
        return int(raw)
    return None


def _detail(problem: bytes) -> str:
    try:
        detail = json.loads(problem).get("detail", "")
    except (ValueError, AttributeError):
        return ""
    return detail if isinstance(detail, str) else ""
