"""The local executor: every task of a run as its own detached process on this machine,
supervised by a runner (``allot.executors.runner``) that outlives the server. Runners are
forked by the spawner (``allot.executors.spawner``), a process started once per executor, in
about a millisecond each; where it cannot run (no pidfds, an interpreter that cannot start
it), each runner starts as a fresh interpreter instead, as it always may.

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
- No runner stays a zombie while the server lives (the spawner reaps the runners it forked,
  the executor those it spawned and the spawner), and the run of each runner that ends is
  reported at once (``allot.executors.exits``).
- A spawner that died is replaced at the next launch; the runners it forked go on.
- A task gets SIGTERM from the executor at most once per run, however often it is asked to stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
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
from allot.executors.exits import ExitWatcher
from allot.executors.inventory import Inventory, detect
from allot.executors.sharing import mps_pipe_directory, sharing_mode, with_gpu_share
from allot.executors.spawner import Spawner, SpawnerError
from allot.executors.task_state import Processes, TaskPhase, read_task, run_status
from allot.profile.capture import PROFILE_FOLDER, profile_environment

log = logging.getLogger("allot.executors")

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
        env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
        self._spawner: Spawner | None = Spawner(
            self.python, env, self._runner_started, self._runner_unanswered
        )
        self._work_dir_made = False  # the default working directory exists

    def unreported(self) -> int:
        """How many runners this executor started (or asked the spawner for) have not been
        seen to end yet."""
        waiting = 0 if self._spawner is None else self._spawner.waiting()
        return waiting + self._watcher.pending()  # in this order: none is missed between

    def close(self) -> None:
        """Let the spawner go (running tasks and their runners go on)."""
        if self._spawner is not None:
            self._spawner.close()

    def notify_on_exit(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(run_id)`` as soon as a task this executor started has ended (from a
        background thread; it must be quick and thread-safe). A control plane subscribes
        before it launches anything, so the spawner starts now rather than at the first
        launch."""
        self._watcher.on_exit = callback
        self._ready_spawner()

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

    def gpu_sharing(self) -> str:
        """``mps`` when shares of a GPU run under MPS limits here, else ``unenforced``
        (``allot.executors.sharing``)."""
        return sharing_mode(os.environ)

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
        try:
            run_dir.mkdir(exist_ok=True, mode=0o700)
        except FileNotFoundError:  # the first run (or the runs directory was removed)
            self.runs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            run_dir.mkdir(exist_ok=True, mode=0o700)
        port = self._master_port(run_dir) if tasks[0].num_tasks > 1 else None
        node_of = {t.task_index: t.placement.node for t in tasks}
        mps_pipe = mps_pipe_directory(os.environ)
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
                env = with_gpu_share(env, task.placement, task.gpu_memory_mib, mps_pipe)
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
            if not self._work_dir_made:
                self.work_dir.mkdir(parents=True, exist_ok=True)
                self._work_dir_made = True
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
        """Start the runner of one task: ask the spawner to fork it (it answers later, to
        ``_runner_started``), or, where that is not possible, start a fresh interpreter."""
        for _ in range(2):  # a spawner that died is replaced, once per task
            spawner = self._ready_spawner()
            if spawner is None:
                break
            try:
                spawner.request(str(task_dir), run_id)
            except SpawnerError:
                continue
            return
        self._spawn_interpreter(str(task_dir), run_id)

    def _ready_spawner(self) -> Spawner | None:
        """The spawner, started if it is not running; None where runners cannot be forked by
        one (no pidfds, or it could not start here: then it is not tried again)."""
        spawner = self._spawner
        if spawner is None or not self._watcher.uses_pidfds:
            return None
        if not spawner.running:
            try:
                self._watcher.add(spawner.start(), "")  # reaped when it exits
            except OSError as err:
                log.warning("runners start as fresh interpreters: %s", err)
                self._spawner = None
                return None
        return spawner

    def _runner_started(self, pid: int, pidfd: int | None, run_id: str) -> None:
        """The spawner forked a runner of ``run_id`` (``pidfd`` None: it has ended already)."""
        if pidfd is None:
            self._watcher.told(run_id)
        else:
            self._watcher.add(pid, run_id, pidfd=pidfd)

    def _runner_unanswered(self, task_dir: str, run_id: str) -> None:
        """The spawner died (or could not fork) before it started this runner."""
        try:
            self._spawn_interpreter(task_dir, run_id)
        except OSError as err:  # the task stays unclaimed: reconcile sees it lost in time
            log.warning("run %s: no runner could be started for %s: %s", run_id, task_dir, err)

    def _spawn_interpreter(self, task_dir: str, run_id: str) -> None:
        """Start a runner as a fresh interpreter (also for a request the spawner could not
        answer: the runner's claim keeps a task from running twice)."""
        # posix_spawn rather than subprocess: no Popen object to outlive (and warn about) when
        # the runner outlives this call, and vfork speed however large the server grows. Only
        # inheritable descriptors cross exec, and Python opens none by default, so nothing of
        # the server leaks into the runner besides the three below.
        argv = [self.python, "-I", "-S", str(RUNNER_PATH), task_dir]
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
        return runner.read_log(self.task_dir(run_id, task_index), offset, limit)


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
