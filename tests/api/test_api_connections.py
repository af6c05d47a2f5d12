"""The header-read timeout (``allot.api.connections``) on a real uvicorn server: a connection
that sends nothing, or a request's headers only in part, is closed once the timeout passes;
a complete request is answered, and its kept-alive connection gets the same timeout for the
next one."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI

from allot.api.connections import protocol_with_header_timeout

TIMEOUT = 0.3


@pytest.fixture
def port() -> Iterator[int]:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"ok": "yes"}

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = int(probe.getsockname()[1])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=free, log_level="error",
        http=protocol_with_header_timeout(TIMEOUT), timeout_keep_alive=60,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield free
    finally:
        server.should_exit = True
        thread.join(10)


def _closed(conn: socket.socket) -> bool:
    """True when the server closes the connection (within a generous bound)."""
    conn.settimeout(20)
    try:
        while True:
            data = conn.recv(4096)
            if not data:
                return True
    except TimeoutError:
        return False


def test_a_silent_connection_is_closed(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        assert _closed(conn)


def test_headers_sent_in_part_are_not_waited_for(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
        assert _closed(conn)


def test_a_whole_request_is_answered_and_the_next_one_is_timed_too(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.settimeout(20)
        answer = conn.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200")
        assert _closed(conn)  # kept alive for 60 s by uvicorn, closed by the header timeout
