"""The spawner: a small long-lived process that forks task runners on request, so a runner
starts in about a millisecond instead of paying for a fresh interpreter (tens of ms) per task.

``Spawner`` (used by the local executor) starts ``python -I -S spawner.py`` once, detached in
a session of its own, with one end of a ``SOCK_SEQPACKET`` socket pair as its stdin, and waits
for it to say ``ready``. It then asks, one message per task, ``TASK_DIR``; the spawner forks,
and the child becomes that task's runner (``allot.executors.runner.Runner(TASK_DIR).run()``,
exactly what ``python runner.py TASK_DIR`` runs) in a new session of its own. The spawner
answers ``ok PID`` with a pidfd of the runner attached (``SCM_RIGHTS``), so the executor
learns of its exit at once without being its parent; ``ended PID`` when it has already gone;
``error MESSAGE`` when it could not fork.

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

import os
import signal
import socket
import sys
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from allot.executors.runner import Runner

SPAWNER_PATH = os.path.abspath(__file__)
READY = b"ready"
MESSAGE_SIZE = 65536  # a task directory path, or an answer


class SpawnerError(OSError):
    """The spawner could not be started, or stopped answering."""


class Spawner:
    """The executor's side: starts the spawner process on first use and asks it for runners.
    Thread-safe; one request at a time."""

    def __init__(self, python: str, env: Mapping[str, str], *, timeout: float = 30.0) -> None:
        self.python = python
        self.env = dict(env)
        self.timeout = timeout
        self.pid: int | None = None  # of the spawner process, once started
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._closer: weakref.finalize[[], Spawner] | None = None

    def start(self) -> int:
        """Start the spawner process and wait for it to be ready; returns its pid. Raises
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
            _kill(pid)
            raise SpawnerError(f"the spawner did not start ({self.python}): {hello!r}")
        self.pid, self._sock = pid, ours
        self._closer = weakref.finalize(self, ours.close)
        return pid

    @property
    def started(self) -> bool:
        return self._sock is not None

    def spawn(self, task_dir: str) -> tuple[int, int | None]:
        """Fork a runner for ``task_dir``; returns its pid and a pidfd of it (None when it has
        already ended). Raises SpawnerError when the spawner is gone (it is then closed: the
        next ``start`` replaces it), OSError when it could not fork."""
        with self._lock:
            sock = self._sock
            if sock is None:
                raise SpawnerError("the spawner is not running")
            try:
                sock.send(os.fsencode(task_dir))
                answer, fds, _, _ = socket.recv_fds(sock, MESSAGE_SIZE, 1)
            except OSError as err:
                self._close()
                raise SpawnerError(f"the spawner stopped answering: {err}") from err
        if not answer:
            self._close()
            raise SpawnerError("the spawner has exited")
        kind, _, rest = answer.decode(errors="replace").partition(" ")
        if kind == "error":
            raise OSError(f"the spawner could not fork a runner: {rest}")
        pid = int(rest)
        return pid, (fds[0] if fds else None)

    def _close(self) -> None:
        if self._closer is not None:
            self._closer()
        self._sock = None

    def close(self) -> None:
        """Close the socket; the spawner exits (runners it started go on)."""
        with self._lock:
            self._close()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


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
