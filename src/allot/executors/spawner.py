"""The spawner: a small long-lived process that forks task runners on request, so a runner
starts in about a millisecond instead of paying for a fresh interpreter (tens of ms) per task.

``Spawner`` (used by the local executor) starts ``python -I -S spawner.py`` once, detached in
a session of its own, with one end of a ``SOCK_SEQPACKET`` socket pair as its stdin, and waits
for it to say ``ready``. It then asks, one message per task, ``TASK_DIR``, without waiting
for the answer; the spawner forks, and the child becomes that task's runner
(``allot.executors.runner.Runner(TASK_DIR).run()``, exactly what ``python runner.py
TASK_DIR`` runs) in a new session of its own. The spawner answers, in order, ``ok PID`` with
a pidfd of the runner attached (``SCM_RIGHTS``), so the executor learns of its exit at once
without being its parent; ``ended PID`` when it has already gone; ``error MESSAGE`` when it
could not fork. A thread of the executor reads the answers. A request the spawner never
answered (it died, hung for ``timeout`` seconds, or could not fork) is handed back to the
executor, which starts that runner as a fresh interpreter: the runner's claim makes that safe
even if the spawner did fork it.

Invariants
- Nothing changes for a task: its runner claims it with ``O_EXCL`` first, writes ``pid.json``
  and ``exit.json``, and lives on whatever happens to the server or the spawner; a runner is
  only started this way, never run in the spawner itself.
- The spawner lives as long as its server: when the socket closes (the server exited or was
  killed), it exits, and the runners it forked go on (reparented, as a runner whose server
  died always was).
- The spawner reaps its runners (``SIGCHLD`` ignored: the kernel reaps them), so none stays a
  zombie; each runner gets the default ``SIGCHLD`` back before it does anything.
- Nothing of the spawner crosses into a runner but the runner's code: the socket is closed in
  the child, stdin/stdout/stderr are ``/dev/null``.
- Standard library only, like the runner: it runs under ``python -I -S``, and loads the
  runner from its own directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from allot.executors.runner import Runner

SPAWNER_PATH = os.path.abspath(__file__)
READY = b"ready"
MESSAGE_SIZE = 65536  # a task directory path, or an answer


class SpawnerError(OSError):
    """The spawner could not be started, or is gone."""


# What the executor is told about each request: a runner started (its pid, and a pidfd of it,
# or None when it has ended already), or a request the spawner never answered (it died or
# could not fork), whose runner must be started another way.
Started = Callable[[int, "int | None", str], None]
Unanswered = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class Request:
    task_dir: str
    run_id: str
    sent: float  # time.monotonic()


class Connection:
    """One spawner process and the socket to it. Requests are answered in order; a thread
    reads the answers and hands them to the executor's callbacks (held weakly, so the
    executor can be collected while its spawner lives)."""

    def __init__(
        self, sock: socket.socket, pid: int, started: Started, unanswered: Unanswered
    ) -> None:
        self.sock, self.pid = sock, pid
        self.lock = threading.Lock()
        self.waiting: deque[Request] = deque()
        self.open = True
        self._started = weakref.WeakMethod(started)
        self._unanswered = weakref.WeakMethod(unanswered)
        self.closing = False  # closed on purpose: what it was asked for is not its to retry

    def send(self, task_dir: str, run_id: str) -> None:
        """Ask for a runner; raises SpawnerError when the spawner is gone."""
        with self.lock:
            if not self.open:
                raise SpawnerError("the spawner is gone")
            try:
                self.sock.send(os.fsencode(task_dir))
            except OSError as err:
                self.open = False  # the reader hands on what it was still asked for
                raise SpawnerError(f"the spawner is gone: {err}") from err
            self.waiting.append(Request(task_dir, run_id, time.monotonic()))

    def read(self, timeout: float) -> None:
        """The answers, until the spawner exits (or stops answering for ``timeout`` s)."""
        while True:
            try:
                answer, fds, _, _ = socket.recv_fds(self.sock, MESSAGE_SIZE, 1)
            except TimeoutError:
                with self.lock:
                    late = bool(self.waiting) and (
                        time.monotonic() - self.waiting[0].sent > timeout
                    )
                if not late:
                    continue
                _kill(self.pid, reap=False)  # hung: its runners start another way
                answer, fds = b"", []
            except OSError:
                answer, fds = b"", []
            if not answer:
                self._lost()
                return
            with self.lock:
                request = self.waiting[0]  # left there until handed on: always counted
            kind, _, rest = answer.decode(errors="replace").partition(" ")
            started = self._started()
            if kind == "error":
                self._tell_unanswered([request])
            elif started is None:
                for fd in fds:
                    os.close(fd)
            else:
                started(int(rest), fds[0] if fds else None, request.run_id)
            with self.lock:
                self.waiting.popleft()

    def _lost(self) -> None:
        with self.lock:
            self.open = False
            lost = list(self.waiting)
        self.sock.close()
        if not self.closing:
            self._tell_unanswered(lost)
        with self.lock:
            self.waiting.clear()

    def _tell_unanswered(self, requests: list[Request]) -> None:
        unanswered = self._unanswered()
        if unanswered is not None:
            for request in requests:
                unanswered(request.task_dir, request.run_id)

    def close(self) -> None:
        """Let the spawner go: it exits once it has read what was sent."""
        self.closing = True
        with self.lock:
            if self.open:
                self.sock.shutdown(socket.SHUT_WR)


class Spawner:
    """The executor's side: starts the spawner process and asks it for runners without
    waiting for them (see the module docstring). ``started`` and ``unanswered`` are called
    from the spawner's reader thread."""

    def __init__(
        self,
        python: str,
        env: Mapping[str, str],
        started: Started,
        unanswered: Unanswered,
        *,
        timeout: float = 30.0,
    ) -> None:
        self.python = python
        self.env = dict(env)
        self.timeout = timeout
        self._started, self._unanswered = started, unanswered
        self._current: Connection | None = None

    @property
    def pid(self) -> int | None:
        """The current spawner process, if one runs."""
        current = self._current
        return current.pid if current is not None and current.open else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def start(self) -> int:
        """Start a spawner process and wait for it to be ready; returns its pid. Raises
        SpawnerError (having cleaned up) when it does not come up."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.posix_spawn(
                self.python,
                [self.python, "-I", "-S", SPAWNER_PATH],
                self.env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, theirs.fileno(), 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                ],
                setsid=True,  # its own session: a terminal's ^C to the server never reaches it
                setsigmask=(),
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.settimeout(self.timeout)
        try:
            hello = ours.recv(MESSAGE_SIZE)
        except OSError as err:
            hello = f"{err}".encode()
        if hello != READY:
            ours.close()
            _kill(pid, reap=True)
            raise SpawnerError(f"the spawner did not start ({self.python}): {hello!r}")
        ours.settimeout(min(self.timeout, 5.0))  # how often the reader looks for a hang
        connection = Connection(ours, pid, self._started, self._unanswered)
        threading.Thread(
            target=connection.read, args=(self.timeout,), name="allot-spawner", daemon=True
        ).start()
        self._current = connection
        weakref.finalize(self, connection.close)
        return pid

    def request(self, task_dir: str, run_id: str) -> None:
        """Ask for a runner for ``task_dir`` (of ``run_id``), without waiting for it. Raises
        SpawnerError when no spawner runs or it is gone (``start`` replaces it)."""
        current = self._current
        if current is None:
            raise SpawnerError("no spawner runs")
        current.send(task_dir, run_id)

    def waiting(self) -> int:
        """How many requests have not been answered (and handed on) yet."""
        current = self._current
        if current is None:
            return 0
        with current.lock:
            return len(current.waiting)

    def close(self) -> None:
        """Let the spawner go (runners it started go on)."""
        if self._current is not None:
            self._current.close()


def _kill(pid: int, *, reap: bool) -> None:
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        os.kill(pid, signal.SIGKILL)
        if reap:
            os.waitpid(pid, 0)


# ------------------------------------------------------------------ the spawner process


def _runner_class() -> type[Runner]:
    """The runner, from this package, or, under ``python -I -S`` (no site, no allot on the
    path), from the file beside this one."""
    if __package__:
        from allot.executors.runner import Runner

        return Runner
    import importlib.util

    path = os.path.join(os.path.dirname(SPAWNER_PATH), "runner.py")
    spec = importlib.util.spec_from_file_location("allot_runner", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the runner from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    runner: type[Runner] = module.Runner
    return runner


def _become_runner(sock: socket.socket, runner: type[Runner], task_dir: str) -> None:
    """In the forked child: drop what is the spawner's, then run the task's runner; never
    returns."""
    code = 1
    try:
        sock.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the runner waits for its task
        os.setsid()  # its own session, as a runner always has: it outlives the server
        code = runner(task_dir).run()
    finally:
        os._exit(code)


def serve(sock: socket.socket) -> int:
    """Answer requests on ``sock`` until the server closes it."""
    runner = _runner_class()
    # Children are reaped by the kernel; pidfds still tell the server when they end.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    sock.send(READY)
    while True:
        try:
            request = sock.recv(MESSAGE_SIZE)
        except OSError:
            return 0
        if not request:
            return 0  # the server is gone; the runners go on
        task_dir = os.fsdecode(request)
        try:
            pid = os.fork()
        except OSError as err:
            sock.send(f"error {err}".encode())
            continue
        if pid == 0:
            _become_runner(sock, runner, task_dir)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # it has ended already (and was reaped)
            sock.send(b"ended %d" % pid)
            continue
        try:
            socket.send_fds(sock, [b"ok %d" % pid], [pidfd])
        finally:
            os.close(pidfd)


def main() -> int:
    sock = socket.socket(fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # stdin is the socket no more: a runner must never read it
    os.close(devnull)
    try:
        return serve(sock)
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
