"""The SDK's exceptions, built from the server's RFC 9457 problem documents.

``ApiError`` is the base of everything the SDK raises for a failed call. Its subclasses say
what went wrong in terms a caller can act on: ``Invalid`` (fix the request; ``errors`` lists
each field and rule), ``NotFound``, ``Conflict``, ``Unauthorized``, ``ServerError`` and
``Unreachable`` (no answer at all). The message is the problem's ``detail``; tokens are never
part of a message.
"""

from __future__ import annotations

import json

import httpx
from pydantic import ValidationError

from allot.wire.schemas import FieldProblem, Problem


class ApiError(Exception):
    """A call to the allot server failed. ``status`` is the HTTP status (None when no answer
    came), ``type``, ``title``, ``detail`` and ``instance`` are the problem document's members,
    and ``errors`` lists invalid fields (empty unless the request was invalid)."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        type: str = "about:blank",  # the RFC 9457 member's name
        title: str = "",
        instance: str | None = None,
        errors: list[FieldProblem] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.type = type
        self.title = title
        self.instance = instance
        self.errors = list(errors or [])

    def __str__(self) -> str:
        return self.detail or self.title or f"HTTP {self.status}"


class Invalid(ApiError):  # noqa: N818 - the SDK's public names
    """The server refused the request as invalid (422, 413 or 400); ``errors`` names each
    field and the rule it broke."""

    def __str__(self) -> str:
        if not self.errors:
            return super().__str__()
        return "; ".join(f"{e.field}: {e.rule}" for e in self.errors)


class NotFound(ApiError):  # noqa: N818 - the SDK's public names
    """No such job, node or route (404)."""


class Conflict(ApiError):  # noqa: N818 - the SDK's public names
    """The request conflicts with the job's state, or reuses an idempotency key (409)."""


class Unauthorized(ApiError):  # noqa: N818 - the SDK's public names
    """The API token is missing, unknown or revoked (401 or 403)."""


class Forbidden(Unauthorized):
    """The caller's role does not allow this (403); another tenant's job is a NotFound."""


class RateLimited(ApiError):  # noqa: N818 - the SDK's public names
    """The token sent too many requests (429); the detail says how long to wait."""


class ServerError(ApiError):
    """The server failed (5xx); the details are in its log."""


class Unreachable(ApiError):  # noqa: N818 - the SDK's public names
    """No answer from the server: it is not running, not at this URL, or the connection broke."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: Invalid,
    401: Unauthorized,
    403: Forbidden,
    429: RateLimited,
    404: NotFound,
    409: Conflict,
    413: Invalid,
    422: Invalid,
}


def error_from_response(response: httpx.Response) -> ApiError:
    """The exception for an error response, from its problem document when it has one."""
    status = response.status_code
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    try:
        problem = Problem.model_validate_json(response.content)
    except (ValidationError, json.JSONDecodeError, UnicodeDecodeError):
        # Not a problem document (a proxy's error page, say): keep the start of the text.
        text = response.text.strip()[:200]
        return kind(text or response.reason_phrase or f"HTTP {status}", status=status)
    return kind(
        problem.detail or problem.title,
        status=status,
        type=problem.type,
        title=problem.title,
        instance=problem.instance,
        errors=problem.errors,
    )


def unreachable(url: str, exc: httpx.TransportError) -> Unreachable:
    """The exception for a call that got no answer from ``url``."""
    reason = str(exc) or type(exc).__name__
    return Unreachable(
        f"cannot reach the allot server at {url} ({reason}); is it running? "
        "Start one with `allot up`, or point ALLOT_URL at a running server"
    )
