"""Errors as RFC 9457 problem details: every failure the API answers is an
``application/problem+json`` document with ``type``, ``title``, ``status``, ``detail`` and
``instance`` (the request path), plus ``errors`` (field and rule) for invalid requests.

This module owns the mapping from exceptions to problems:
- request validation (Pydantic) and ``SpecError`` -> 422 ``validation``
- ``RejectedError`` (well formed, but never satisfiable here: unknown queue, flavor, task,
  more than any node has) -> 422 ``rejected``
- ``NotFoundError`` -> 404 ``not-found``; ``ConflictError`` -> 409 ``conflict``;
  ``ForbiddenError`` (the caller may not do this) -> 403 ``forbidden``
- ``ProblemError`` raised by the API itself; authentication answers 401 ``unauthorized``
  and 429 ``too-many-requests`` itself, the body size limit 413 ``too-large``; Starlette's
  own 404 and 405 keep their status
- anything else -> 500 ``internal`` with a generic detail; the traceback goes to the log, the
  request's body and headers never do (they may hold tokens and environment values).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from allot.control.ports import ConflictError, NotFoundError
from allot.control.principal import ForbiddenError
from allot.control.services import RejectedError
from allot.core.model import SpecError
from allot.wire.schemas import FieldProblem, Problem

log = logging.getLogger("allot.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://allot.dev/problems/"

VALIDATION = PROBLEM_BASE + "validation"
REJECTED = PROBLEM_BASE + "rejected"
NOT_FOUND = PROBLEM_BASE + "not-found"
CONFLICT = PROBLEM_BASE + "conflict"
FORBIDDEN = PROBLEM_BASE + "forbidden"
UNAUTHORIZED = PROBLEM_BASE + "unauthorized"
TOO_LARGE = PROBLEM_BASE + "too-large"
TOO_MANY = PROBLEM_BASE + "too-many-requests"
INTERNAL = PROBLEM_BASE + "internal"

# Where a request parameter came from; the field names in ``errors`` leave it out.
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries saying that these statuses answer with a problem."""
    return {
        status: {
            "model": Problem,
            "content": {PROBLEM_MEDIA_TYPE: {}},
            "description": HTTPStatus(status).phrase,
        }
        for status in statuses
    }


class ProblemError(Exception):
    """A failure the API itself detects, answered as the given problem."""

    def __init__(
        self,
        status: int,
        type_: str,
        title: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.type = type_
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})


def problem_response(
    status: int,
    type_: str,
    title: str,
    detail: str,
    instance: str | None,
    *,
    errors: Sequence[FieldProblem] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A problem document as a response."""
    problem = Problem(
        type=type_,
        title=title,
        status=status,
        detail=detail,
        instance=instance,
        errors=list(errors) if errors is not None else None,
    )
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=status,
        headers=dict(headers or {}),
        media_type=PROBLEM_MEDIA_TYPE,
    )


def field_name(loc: Sequence[int | str]) -> str:
    """A Pydantic error location as a dotted field name: ``("body", "resources", "gpus")``
    gives ``resources.gpus``, list indices become ``[i]``."""
    parts = list(loc)
    if parts and parts[0] in _LOCATIONS and len(parts) > 1:
        parts = parts[1:]
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name


def _rule(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "is invalid"))
    if error.get("type") == "json_invalid":
        ctx = error.get("ctx") or {}
        return f"must be valid JSON ({ctx.get('error', 'decode error')})"
    # Pydantic prefixes messages of our own validators; the rule reads better without it.
    return message.removeprefix("Value error, ")


def validation_problems(errors: Sequence[Mapping[str, Any]]) -> list[FieldProblem]:
    """Field and rule of each Pydantic error (never the offending input: it may be a secret)."""
    found: list[FieldProblem] = []
    for error in errors:
        loc = error.get("loc", ())
        field = "body" if error.get("type") == "json_invalid" else field_name(loc)
        found.append(FieldProblem(field=field, rule=_rule(error)))
    return found


def _invalid(
    request: Request, problems: list[FieldProblem], title: str, type_: str
) -> JSONResponse:
    detail = "; ".join(f"{p.field}: {p.rule}" for p in problems) or "the request is invalid"
    return problem_response(422, type_, title, detail, request.url.path, errors=problems)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _invalid(request, validation_problems(exc.errors()), "Invalid request", VALIDATION)


async def _on_spec_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SpecError)
    problems = [FieldProblem(field=exc.field, rule=exc.rule)]
    return _invalid(request, problems, "Invalid request", VALIDATION)


async def _on_rejected(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RejectedError)
    problems = [FieldProblem(field=exc.field, rule=exc.rule)]
    return _invalid(request, problems, "Request rejected", REJECTED)


async def _on_not_found(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(404, NOT_FOUND, "Not found", str(exc), request.url.path)


async def _on_conflict(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(409, CONFLICT, "Conflict", str(exc), request.url.path)


async def _on_forbidden(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(403, FORBIDDEN, "Forbidden", str(exc), request.url.path)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        exc.status, exc.type, exc.title, exc.detail, request.url.path, headers=exc.headers
    )


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette's own errors: unknown routes (404), wrong methods (405, with Allow).
    assert isinstance(exc, StarletteHTTPException)
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": ", ".join(_allowed(request))}
    if exc.status_code == 404:
        detail = f"no such resource: {request.url.path}"
        return problem_response(404, NOT_FOUND, "Not found", detail, request.url.path)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "Error"
    return problem_response(
        exc.status_code,
        "about:blank",
        phrase,
        str(exc.detail),
        request.url.path,
        headers=headers,
    )


def _allowed(request: Request) -> list[str]:
    """Every method some route serves at the request's path (Starlette's own 405 names only
    the first route that matches the path, though several may: ``GET`` and ``POST``)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every known failure of ``app`` with a problem document."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(SpecError, _on_spec_error)
    app.add_exception_handler(RejectedError, _on_rejected)
    app.add_exception_handler(NotFoundError, _on_not_found)
    app.add_exception_handler(ConflictError, _on_conflict)
    app.add_exception_handler(ForbiddenError, _on_forbidden)
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)


class UnexpectedErrors:
    """ASGI middleware: a bug becomes a 500 problem with a generic detail and a logged
    traceback, instead of a plain-text page (or nothing) for the client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            # Method and path only: headers and body may carry tokens and environment values.
            log.exception("unexpected error answering %s %s", scope["method"], scope["path"])
            if started:
                raise
            response = problem_response(
                500,
                INTERNAL,
                "Internal server error",
                "the server failed to answer this request; the error is in its log",
                scope["path"],
            )
            await response(scope, receive, send)
