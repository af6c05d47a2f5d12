"""The request body size limit: bodies over ``MAX_BODY_BYTES`` are refused with a 413 problem
before anything parses them.

A declared ``Content-Length`` over the limit is refused at once; otherwise the body is read
into memory (at most the limit) while counting, so a chunked or lying client is stopped as soon
as it sends one byte too many. The application then sees the buffered body.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from allot.api.problems import TOO_LARGE, problem_response


class BodySizeLimit:
    """ASGI middleware that refuses request bodies larger than ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away before sending its body; let the app see that.
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        first: Message = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replay([first], receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is larger than the limit of {self.max_bytes} bytes"
        response = problem_response(413, TOO_LARGE, "Request body too large", detail, scope["path"])
        await response(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands out ``messages`` before reading further."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
