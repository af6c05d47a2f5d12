"""The local executor: every task of a run as its own detached process on this machine,
supervised by a runner (``allot.executors.runner``) that outlives the server.

On-disk layout, under ``data_dir``::

    runs/<run_id>/task-<index>/   spec.json  claim  pid.json  exit.json  stop  output.log
                                  profile/ (a profiled task's traces)
    work/                         the default working directory of tasks

Invariants
- ``launch`` is idempotent per run id, across server crashes too: a task whose directory
  holds a claim is never spawned again, and spawning again a task that has only a spec is
  safe because the runner claims it with ``O_EXCL`` before running anything.
- A task never sees the server's API token (``ALLOT_TOKEN``) or data directory
  (``ALLOT_DATA_DIR``), and always sees only the devices it was given
  (``CUDA_VISIBLE_DEVICES``, empty for a CPU-only task): allot's variables override the user's.
- Every task of a gang gets the same ``MASTER_PORT``, also when the run is launched again.
- Task directories are private to the server's user (they hold the task's environment).
- The executor reaps every runner it spawned, so none stays a zombie while the server lives,
  and reports the run of each one that ends at once (``ExitWatcher``).
- A task gets SIGTERM from the executor at most once per run, however often it is asked to stop.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from allot.control.ports import RunStatus, TaskLaunch
from allot.core.model import Node
from allot.executors import runner
from allot.executors.environment import (
    SECRET_VARIABLES,
    free_port,
    server_python,
    task_environment,
)
from allot.executors.inventory import Inventory, detect
from allot.executors.task_state import Processes, TaskPhase, read_task, run_status
from allot.profile.capture import PROFILE_FOLDER, profile_environment

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
RUNNER_PATH = Path(runner.__file__).resolve()


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is safe as a directory name; raises ValueError otherwise."""
    if not RUN_ID.fullmatch(run_id):
        raise ValueError(
            f"run_id: must be 1-128 letters, digits, '.', '_' or '-' and start with a letter "
            f"or digit, got {run_id!r}"
        )
    return run_id


class ExitWatcher:
    """Reaps the runners this process spawned and tells, the moment one ends, which run it
    belonged to (``on_exit(run_id)``), so the scheduler frees its room at once.

    Each runner gets a pidfd (Linux 5.3+), readable when it exits; one thread waits on all of
    them with ``select.epoll`` and reaps exactly those pids, so no exit status of another child
    of the server is stolen (``waitpid(-1)`` would) and no polling interval delays the news.
    Where pidfds are unavailable it falls back to polling ``waitpid(pid, WNOHANG)`` every
    ``interval`` seconds. The thread ends when nothing is left to watch, so an idle executor
    costs nothing.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        # Called (from the watcher thread) with the run id of a runner that ended.
        self.on_exit: Callable[[str], None] | None = None
        self._runs: dict[int, str] = {}  # pid -> run id
        self._fds: dict[int, int] = {}  # pidfd -> pid
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._poll: select.epoll | None = None
        self._wake_r, self._wake_w = -1, -1
        self._use_pidfd = hasattr(os, "pidfd_open")

    def add(self, pid: int, run_id: str) -> None:
        """Watch runner ``pid`` of ``run_id``."""
        with self._lock:
            self._runs[pid] = run_id
            if self._use_pidfd:
                try:
                    fd = os.pidfd_open(pid)
                except OSError:
                    self._use_pidfd = False  # not supported here: poll instead
                else:
                    self._fds[fd] = pid
                    if self._poll is not None:
                        self._poll.register(fd, select.EPOLLIN)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="allot-exit-watcher", daemon=True
                )
                self._thread.start()
            elif self._wake_w >= 0:
                os.write(self._wake_w, b"x")

    def pending(self) -> int:
        """How many spawned runners have not been reaped yet."""
        with self._lock:
            return len(self._runs)

    def _reap(self, pids: list[int]) -> list[str]:
        ended: list[str] = []
        for pid in pids:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored, ...)
                done = pid
            if done:
                with self._lock:
                    run_id = self._runs.pop(pid, None)
                if run_id is not None:
                    ended.append(run_id)
        return ended

    def _tell(self, ended: list[str]) -> None:
        if ended and self.on_exit is not None:
            for run_id in dict.fromkeys(ended):
                self.on_exit(run_id)

    def _loop(self) -> None:
        if self._use_pidfd:
            self._wait_on_pidfds()
        else:
            self._poll_pids()

    def _wait_on_pidfds(self) -> None:
        poll = select.epoll()
        wake_r, wake_w = os.pipe()
        with self._lock:
            self._poll, self._wake_r, self._wake_w = poll, wake_r, wake_w
            poll.register(wake_r, select.EPOLLIN)
            for fd in self._fds:
                poll.register(fd, select.EPOLLIN)
        while True:
            with self._lock:
                if not self._runs or not self._use_pidfd:
                    # Torn down under the lock, so an ``add`` sees either this thread with
                    # its poll, or no thread at all.
                    self._poll, self._wake_r, self._wake_w = None, -1, -1
                    for fd in self._fds:
                        os.close(fd)
                    self._fds.clear()
                    poll.close()
                    os.close(wake_r)
                    os.close(wake_w)
                    if not self._runs:
                        self._thread = None
                        return
                    break  # a pidfd could not be opened: poll from now on
            ready = [fd for fd, _ in poll.poll(1.0)]
            pids: list[int] = []
            with self._lock:
                for fd in ready:
                    if fd == wake_r:
                        os.read(wake_r, 4096)
                    elif fd in self._fds:
                        pids.append(self._fds.pop(fd))
                        poll.unregister(fd)
                        os.close(fd)
            self._tell(self._reap(pids))
        self._poll_pids()

    def _poll_pids(self) -> None:
        while True:
            with self._lock:
                if not self._runs:
                    self._thread = None
                    return
                pids = list(self._runs)
            self._tell(self._reap(pids))
            time.sleep(self.interval)


class LocalExecutor:
    """Runs tasks as local processes (see the module docstring for the layout and invariants).

    ``gpus`` declares the GPU count (``--gpus``), ``node_name`` overrides the short hostname,
    ``python`` is the interpreter that runs the runner, and ``grace_seconds`` is how long a
    task may take to stop after SIGTERM at its time limit before it gets SIGKILL.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        gpus: int | None = None,
        node_name: str | None = None,
        python: str = sys.executable,
        grace_seconds: float = 30.0,
    ) -> None:
        found = shutil.which(python)
        if found is None:
            raise ValueError(f"python: no interpreter found at {python!r}")
        if grace_seconds < 0:
            raise ValueError(f"grace_seconds: must be >= 0, got {grace_seconds}")
        self.data_dir = Path(data_dir)
        self.runs_dir = self.data_dir / "runs"
        self.work_dir = self.data_dir / "work"
        self.python = found
        self.grace_seconds = grace_seconds
        self._gpus = gpus
        self._node_name = node_name
        self._inventory: Inventory | None = None
        self._watcher = ExitWatcher()

    def notify_on_exit(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(run_id)`` as soon as a task this executor started has ended (from a
        background thread; it must be quick and thread-safe)."""
        self._watcher.on_exit = callback

    # -- inventory
    def inventory_report(self) -> Inventory:
        """The detected (or declared) inventory with where it came from; detected once."""
        if self._inventory is None:
            self._inventory = detect(self._gpus, self._node_name)
        return self._inventory

    def inventory(self) -> list[Node]:
        """This machine as one node (see ``allot.executors.inventory``)."""
        return list(self.inventory_report().nodes)

    def inventory_source(self) -> str:
        """``nvml``, ``declared`` or ``none``: how this machine's GPUs were found."""
        return self.inventory_report().source

    # -- paths
    def run_dir(self, run_id: str) -> Path:
        """Where a run's task directories live; raises ValueError for an unsafe run id."""
        return self.runs_dir / check_run_id(run_id)

    def task_dir(self, run_id: str, task_index: int) -> Path:
        """The directory of one task of a run (see the layout in the module docstring)."""
        if task_index < 0:
            raise ValueError(f"task_index: must be >= 0, got {task_index}")
        return self.run_dir(run_id) / f"task-{task_index}"

    def profile_dir(self, run_id: str, task_index: int) -> Path:
        """Where a profiled task writes its traces (``allot.profile.capture``)."""
        return self.task_dir(run_id, task_index) / PROFILE_FOLDER

    def _task_dirs(self, run_id: str) -> list[Path]:
        run_dir = self.run_dir(run_id)
        if not run_dir.is_dir():
            return []
        return sorted(p for p in run_dir.iterdir() if p.name.startswith("task-"))

    # -- launch
    def launch(self, tasks: Sequence[TaskLaunch]) -> None:
        """Start every task of one run, each under its own detached runner. Idempotent per
        run id. Raises ValueError for tasks that are not one whole run, OSError when a runner
        cannot be spawned."""
        if not tasks:
            return
        run_id = check_run_id(tasks[0].run_id)
        _check_one_run(tasks)
        run_dir = self.run_dir(run_id)
        self.runs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        run_dir.mkdir(exist_ok=True, mode=0o700)
        port = self._master_port(run_dir) if tasks[0].num_tasks > 1 else None
        node_of = {t.task_index: t.placement.node for t in tasks}
        ready: list[Path] = []
        for task in tasks:
            task_dir = run_dir / f"task-{task.task_index}"
            task_dir.mkdir(exist_ok=True, mode=0o700)
            if (task_dir / runner.CLAIM_FILE).exists():
                continue  # a runner owns it: running, or ran already
            spec = task_dir / runner.SPEC_FILE
            if spec.exists():
                os.utime(spec)  # launched before, never claimed: restart the starting window
            else:
                peers = sorted(i for i, node in node_of.items() if node == task.placement.node)
                env = task_environment(
                    task,
                    server_python(os.environ),
                    master_port=port,
                    local_rank=peers.index(task.task_index),
                    local_world_size=len(peers),
                )
                if task.launch.profile is not None:
                    request = task.launch.profile
                    env = profile_environment(
                        env, task_dir / PROFILE_FOLDER, steps=request.steps, skip=request.skip
                    )
                self._write_spec(task, task_dir, env)
            ready.append(task_dir)
        for task_dir in ready:  # every spec first, so a gang's tasks start as close as possible
            self._spawn(task_dir, run_id)

    def _master_port(self, run_dir: Path) -> int:
        """The port of a run launched before (so its tasks agree), else a fresh one."""
        for spec_path in sorted(run_dir.glob(f"task-*/{runner.SPEC_FILE}")):
            spec = runner.read_json(str(spec_path))
            env = spec.get("env") if spec else None
            port = env.get("MASTER_PORT") if isinstance(env, dict) else None
            if isinstance(port, str) and port.isdigit():
                return int(port)
        return free_port()

    def _write_spec(self, task: TaskLaunch, task_dir: Path, env: Mapping[str, str]) -> None:
        workdir = task.launch.workdir
        if workdir is None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            workdir = str(self.work_dir)
        spec: dict[str, object] = {
            "run_id": task.run_id,
            "job_id": task.job_id,
            "task_index": task.task_index,
            "num_tasks": task.num_tasks,
            "argv": list(task.launch.argv),
            "workdir": workdir,
            "env": dict(env),
            "time_limit": task.time_limit,
            "grace_seconds": self.grace_seconds,
            "log": str(task_dir / runner.LOG_FILE),
        }
        runner.write_json_atomic(str(task_dir / runner.SPEC_FILE), spec, mode=0o600)

    def _spawn(self, task_dir: Path, run_id: str) -> None:
        # posix_spawn rather than subprocess: no Popen object to outlive (and warn about) when
        # the runner outlives this call, and vfork speed however large the server grows. Only
        # inheritable descriptors cross exec, and Python opens none by default, so nothing of
        # the server leaks into the runner besides the three below.
        argv = [self.python, "-I", "-S", str(RUNNER_PATH), str(task_dir)]
        env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
        pid = os.posix_spawn(
            self.python,
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
            ],
            setsid=True,  # its own session: the runner lives on when the server dies
            setsigmask=(),
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
        )
        self._watcher.add(pid, run_id)

    # -- status, signals, logs
    def status(self, run_id: str, num_tasks: int) -> RunStatus:
        """What the task directories say about the run (rules in ``task_state``)."""
        run_dir = self.run_dir(run_id)
        now = time.time()
        tasks = [read_task(i, run_dir / f"task-{i}", now) for i in range(num_tasks)]
        status = run_status(run_id, tasks)
        unclaimed = tuple(
            i
            for i in range(num_tasks)
            if not (run_dir / f"task-{i}" / runner.CLAIM_FILE).exists()
            and tasks[i].phase is not TaskPhase.EXITED
        )
        return replace(status, unclaimed=unclaimed) if unclaimed else status

    def statuses(self, runs: Sequence[tuple[str, int]]) -> list[RunStatus]:
        """``status`` of each (run id, task count)."""
        return [self.status(run_id, num_tasks) for run_id, num_tasks in runs]

    def signal(self, run_id: str, *, kill: bool) -> None:
        """SIGTERM goes to each runner, which forwards it to its task's process group;
        SIGKILL goes to each task's group directly, so the runner survives to report the
        exit code. A task whose runner is not up yet finds the ``stop`` marker and never
        starts. Each task gets SIGTERM from here at most once: the ``stop`` marker records
        that it was sent, so asking again (a second cancel) is a no-op, as a second SIGTERM
        could abort the checkpoint the first one started."""
        for task_dir in self._task_dirs(run_id):
            marker = task_dir / runner.STOP_FILE
            if kill:
                _write_marker(marker, "kill")
            elif not _create_marker(marker, "term"):
                continue  # asked to stop before (or killed): it has had its SIGTERM
            if (task_dir / runner.EXIT_FILE).exists():
                continue  # ended: its pids may belong to strangers by now
            procs = Processes.read(task_dir)
            if procs is None:
                continue  # the runner reads the marker after writing pid.json
            task_alive = procs.task_alive
            if kill:
                if procs.task_pid is not None and task_alive:
                    runner.signal_group(procs.task_pid, signal.SIGKILL)
            elif procs.runner_alive:
                _signal_process(procs.runner_pid, signal.SIGTERM)
            elif procs.task_pid is not None and task_alive:  # orphaned: nobody forwards
                runner.signal_group(procs.task_pid, signal.SIGTERM)

    def read_log(self, run_id: str, task_index: int, offset: int, limit: int) -> tuple[bytes, int]:
        """Up to ``limit`` bytes of the task's combined output from ``offset``; returns the
        bytes and the offset to ask for next (``offset`` itself when there is nothing new)."""
        if offset < 0:
            raise ValueError(f"offset: must be >= 0, got {offset}")
        if limit < 0:
            raise ValueError(f"limit: must be >= 0, got {limit}")
        path = self.task_dir(run_id, task_index) / runner.LOG_FILE
        try:
            with path.open("rb") as log:
                log.seek(offset)
                data = log.read(limit)
        except FileNotFoundError:
            return b"", offset
        return data, offset + len(data)


def _write_marker(path: Path, text: str) -> None:
    # Whole or not at all: the runner must never read a half-written "kill" as "term".
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _create_marker(path: Path, text: str) -> bool:
    """Write the marker whole unless one exists; True when this call created it (atomic:
    of two callers at once, exactly one wins)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True


def _signal_process(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def _check_one_run(tasks: Sequence[TaskLaunch]) -> None:
    first = tasks[0]
    indices = [t.task_index for t in tasks]
    for t in tasks:
        if t.run_id != first.run_id:
            raise ValueError(f"run_id: one launch takes one run, got {first.run_id} and {t.run_id}")
        if t.num_tasks != first.num_tasks:
            raise ValueError(
                f"num_tasks: every task of run {first.run_id} must agree, got "
                f"{first.num_tasks} and {t.num_tasks}"
            )
        if not 0 <= t.task_index < t.num_tasks:
            raise ValueError(
                f"task_index: must be in 0..{t.num_tasks - 1} for run {t.run_id}, "
                f"got {t.task_index}"
            )
    if len(set(indices)) != len(indices):
        raise ValueError(f"task_index: run {first.run_id} lists a task twice: {sorted(indices)}")
