"""Exit watching: tells, the moment a runner ends, which run it belonged to, so the scheduler
frees its room at once instead of finding out at its next poll.

Each runner is watched through a pidfd (Linux 5.3+), readable once the process has exited,
whoever its parent is: the executor opens one for a runner it spawned itself, and gets one
from the spawner (``allot.executors.spawner``) for a runner the spawner forked. One thread
waits on all of them with ``select.epoll``. A runner that is a child of this process is
reaped here, by its own pid (``waitpid(-1)`` would steal the exit status of another child of
the server); a runner forked by the spawner is reaped by the spawner.

Where pidfds are unavailable, the thread polls instead, every ``interval`` seconds:
``waitpid(pid, WNOHANG)`` for a child, whether the pid still exists for any other process.
The thread ends when nothing is left to watch, so an idle executor costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Watched:
    """One runner: its pid, its run, and whether this process is its parent (and reaps it)."""

    pid: int
    run_id: str
    child: bool


class ExitWatcher:
    """Calls ``on_exit(run_id)`` for each watched runner that ends (see the module docstring).
    ``on_exit`` is called from the watcher's thread; it must be quick and thread-safe. A
    process watched with an empty run id (the spawner) is only reaped."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.on_exit: Callable[[str], None] | None = None
        self._polled: dict[int, Watched] = {}  # pid -> runner, watched by polling
        self._fds: dict[int, Watched] = {}  # pidfd -> runner
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._poll: select.epoll | None = None
        self._wake_r, self._wake_w = -1, -1
        self._use_pidfd = hasattr(os, "pidfd_open")

    @property
    def uses_pidfds(self) -> bool:
        """Whether runners are watched through pidfds (else by polling)."""
        return self._use_pidfd

    def add(self, pid: int, run_id: str, *, pidfd: int | None = None) -> None:
        """Watch runner ``pid`` of ``run_id``: a child of this process, or, with ``pidfd``
        (which the watcher then owns and closes), a process another one forked."""
        watched = Watched(pid, run_id, child=pidfd is None)
        with self._lock:
            if pidfd is None and self._use_pidfd:
                try:
                    pidfd = os.pidfd_open(pid)
                except OSError:
                    self._use_pidfd = False  # not supported here: poll from now on
            if self._use_pidfd and pidfd is not None:
                self._fds[pidfd] = watched
                if self._poll is not None:
                    self._poll.register(pidfd, select.EPOLLIN)
            else:
                if pidfd is not None:
                    os.close(pidfd)
                self._polled[pid] = watched
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="allot-exit-watcher", daemon=True
                )
                self._thread.start()
            elif self._wake_w >= 0:
                os.write(self._wake_w, b"x")

    def told(self, run_id: str) -> None:
        """A runner of ``run_id`` is known to have ended already: say so now."""
        if self.on_exit is not None:
            self.on_exit(run_id)

    def pending(self) -> int:
        """How many watched runners have not been seen to end yet."""
        with self._lock:
            watched = [*self._polled.values(), *self._fds.values()]
        return sum(1 for w in watched if w.run_id)

    def _tell(self, ended: list[Watched]) -> None:
        for watched in ended:
            if watched.child:  # it has exited, so this returns at once (unless reaped elsewhere)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(watched.pid, 0)
        if self.on_exit is not None:
            for run_id in dict.fromkeys(w.run_id for w in ended if w.run_id):
                self.on_exit(run_id)

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._use_pidfd:  # turned off meanwhile: poll what waited on pidfds
                    for fd, watched in self._fds.items():
                        os.close(fd)
                        self._polled[watched.pid] = watched
                    self._fds.clear()
                if not self._fds and not self._polled:
                    self._thread = None  # under the lock: the next ``add`` starts another
                    return
                waiting = bool(self._fds) and self._use_pidfd
            if waiting:
                self._wait_on_pidfds()
            else:
                self._poll_pids()

    def _wait_on_pidfds(self) -> None:
        """Wait on the pidfds until none is left, or pidfds turn out to be unsupported."""
        poll = select.epoll()
        wake_r, wake_w = os.pipe()
        with self._lock:
            self._poll, self._wake_r, self._wake_w = poll, wake_r, wake_w
            poll.register(wake_r, select.EPOLLIN)
            for fd in self._fds:
                poll.register(fd, select.EPOLLIN)
        while True:
            with self._lock:
                if not self._fds or not self._use_pidfd:
                    # Torn down under the lock: an ``add`` sees this poll, or none (and the
                    # loop, finding a new pidfd, waits again with a new poll).
                    self._poll, self._wake_r, self._wake_w = None, -1, -1
                    for fd, watched in self._fds.items():
                        os.close(fd)
                        self._polled[watched.pid] = watched
                    self._fds.clear()
                    poll.close()
                    os.close(wake_r)
                    os.close(wake_w)
                    return
            ready = [fd for fd, _ in poll.poll(1.0)]
            ended: list[Watched] = []
            with self._lock:
                for fd in ready:
                    if fd == wake_r:
                        os.read(wake_r, 4096)
                    elif fd in self._fds:
                        ended.append(self._fds.pop(fd))
                        poll.unregister(fd)
                        os.close(fd)
            self._tell(ended)

    def _poll_pids(self) -> None:
        """One look at every polled runner, then a pause."""
        with self._lock:
            watching = list(self._polled.values())
        ended = [w for w in watching if _has_ended(w)]
        with self._lock:
            for watched in ended:
                self._polled.pop(watched.pid, None)
        self._tell(ended)
        time.sleep(self.interval)


def _has_ended(watched: Watched) -> bool:
    if watched.child:
        try:
            done = os.waitid(os.P_PID, watched.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored, ...)
            return True
        return done is not None
    try:
        os.kill(watched.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
