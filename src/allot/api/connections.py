"""Connections of the HTTP server: a request's headers must arrive within ``HEADER_SECONDS``
of the connection opening (or of the previous response, on a kept-alive connection, where
uvicorn's own keep-alive timeout also applies), or the connection is closed. So idle or
half-open connections, and clients that send headers a byte at a time, cannot pile up.

``protocol_with_header_timeout()`` is uvicorn's httptools protocol with that timer; uvicorn
(``uvicorn[standard]``) brings httptools, and without it the server runs uvicorn's default
protocol without the timer (and says so in its log).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("allot.server")

HEADER_SECONDS = 10.0


def protocol_with_header_timeout(seconds: float = HEADER_SECONDS) -> Any:
    """uvicorn's ``http`` setting: a protocol class that enforces the header timeout, or
    ``"auto"`` when httptools is not installed."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        log.warning("httptools is not installed: no header-read timeout on connections")
        return "auto"

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        """Closes a connection whose request headers do not arrive in time."""

        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

    return HeaderTimeoutProtocol
