"""One server per address and per data directory: what ``allot up`` claims before it touches
anything else.

- The listening address: bound first (``bind_address``), and the bound socket is handed to
  uvicorn, so no other process can take the port between the check and the serving.
- The data directory: an exclusive ``flock`` on ``<data dir>/server.lock`` (``lock_data_dir``),
  with the holder's pid, host and port written in it. The kernel drops the lock when the
  process dies, however it dies, so a stale file never blocks a restart.

Invariants: a refused claim changes nothing (no database is opened, nothing is migrated or
reconciled) and says in one sentence who holds what. The lock's file descriptor is not
inherited by the tasks the server starts (Python opens files non-inheritable), so a task
that outlives its server does not keep the data directory locked.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = "server.lock"


class ClaimError(Exception):
    """The address or the data directory is taken; the message says by whom."""


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a data directory's lock, as written in its lock file."""

    pid: int | None
    host: str | None
    port: int | None

    def describe(self) -> str:
        pid = "unknown pid" if self.pid is None else f"pid {self.pid}"
        if self.port is None:
            return pid
        return f"{pid}, serving on http://{self.host or '127.0.0.1'}:{self.port}"


def _read_holder(handle: int) -> Holder:
    os.lseek(handle, 0, os.SEEK_SET)
    try:
        data = json.loads(os.read(handle, 4096) or b"{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}

    def number(key: str) -> int | None:
        value = data.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    host = data.get("host")
    return Holder(number("pid"), host if isinstance(host, str) else None, number("port"))


@dataclass(slots=True)
class DataDirLock:
    """A held lock on a data directory; ``release`` (or the process's end) lets it go."""

    path: Path
    handle: int | None

    def release(self) -> None:
        if self.handle is not None:
            os.close(self.handle)  # closing the descriptor drops the flock
            self.handle = None


def lock_data_dir(data_dir: Path, *, host: str, port: int) -> DataDirLock:
    """Create the data directory if needed (mode 0700) and lock it for this process; raises
    ClaimError naming the holder when another process has it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    path = data_dir / LOCK_FILE
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(handle)
        os.close(handle)
        raise ClaimError(
            f"allot is already running on the data directory {data_dir} ({holder.describe()});"
            " stop it first, or give this server another --data-dir"
        ) from None
    except BaseException:
        os.close(handle)
        raise
    record = json.dumps({"pid": os.getpid(), "host": host, "port": port}) + "\n"
    os.ftruncate(handle, 0)
    os.pwrite(handle, record.encode(), 0)
    return DataDirLock(path, handle)


def data_dir_holder(data_dir: Path) -> Holder | None:
    """Who holds the data directory's lock now, without taking it for long; None when no
    process does (or there is no lock file)."""
    try:
        handle = os.open(data_dir / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(handle)
    finally:
        os.close(handle)
    return None


def bind_address(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening: clients are refused, not kept
    waiting, until the server is ready); raises ClaimError when the address is taken."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as err:
        raise ClaimError(f"--host: cannot listen on {host!r}: {err.strerror}") from None
    sock = socket.socket(family, kind, proto)
    # As uvicorn does: a restart may reuse the port while old connections linger in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise ClaimError(
                f"--port: {host}:{port} is already in use by another process;"
                " stop it, or choose another port with --port"
            ) from None
        raise ClaimError(f"--host/--port: cannot listen on {host}:{port}: {err.strerror}") from None
    return sock
