"""The task runner: ``python -m allot.executors.runner TASK_DIR`` runs one task of a run and
records how it ended, whether or not the server that launched it is still alive.

The executor writes ``TASK_DIR/spec.json`` (argv, workdir, env, time_limit, grace_seconds, log,
and optionally ``inherit``: variables of the runner's own environment the task also gets)
and starts this runner detached, in a session of its own. The runner:

1. claims the task by creating ``claim`` with ``O_CREAT | O_EXCL``; when the claim exists it
   exits at once without running anything, so a launch repeated after a crash never runs a
   task twice;
2. writes ``pid.json``: its pid, its start time (``/proc/<pid>/stat`` field 22) and the boot
   id, so a reused pid is never mistaken for it; once the task is started, the task's pid and
   start time too;
3. starts the task in a process group of its own (the task's pid is the group id) inside the
   runner's session, output to the log, and forwards each SIGTERM it receives to that group;
4. enforces the time limit itself (SIGTERM to the task's group at the limit, SIGKILL after
   the grace period), so a limit holds while the server is down;
5. says in the task's log, on a line starting ``allot:``, whenever allot stops the task: each
   SIGTERM it sends or forwards, and the SIGKILL after the grace period (its own, or the
   executor's, which it sees in the ``stop`` marker and the way the task ended);
6. writes ``exit.json``: the exit code (negative: the signal that ended the task), whether the
   time limit stopped it, whether it was asked to stop (and how many SIGTERMs it received),
   and when it finished.

Invariants
- Files other processes read (``pid.json``, ``exit.json``) appear whole: temp file + rename.
- The runner is not in the task's process group: a SIGKILL to that group ends the task, never
  the runner, which then still reports the exit code.
- The task is reaped only after what is left of its group has been killed: until then its
  zombie holds the group id, so a signal sent to that id can never reach a stranger.
- Standard library only, nothing else from allot: the runner starts fast and runs under any
  Python 3 interpreter, with or without allot installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path

SPEC_FILE = "spec.json"
CLAIM_FILE = "claim"
PID_FILE = "pid.json"
EXIT_FILE = "exit.json"
STOP_FILE = "stop"  # written by the executor before it signals: "term" or "kill"
LOG_FILE = "output.log"

# Exit codes for a task that could not be started, as a shell reports them.
CANNOT_EXECUTE = 126
NOT_FOUND = 127


def write_json_atomic(
    path: str, data: Mapping[str, object], *, mode: int = 0o644, durable: bool = False
) -> None:
    """Write ``data`` as JSON to ``path`` so that readers see the old file or the new one whole;
    ``durable`` also flushes it to disk (for records that must outlive a power loss)."""
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"  # unique across threads too
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, json.dumps(data).encode())
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_json(path: str) -> dict[str, object] | None:
    """The JSON object stored at ``path``, or None when there is none (or it is not an object)."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_log(task_dir: Path, offset: int, limit: int) -> tuple[bytes, int]:
    """Up to ``limit`` bytes of a task's combined output (``LOG_FILE`` in its directory) from
    ``offset``; returns the bytes and the offset to ask for next (``offset`` itself when there
    is nothing new, or no log yet). Both executors read their tasks' logs this way."""
    if offset < 0:
        raise ValueError(f"offset: must be >= 0, got {offset}")
    if limit < 0:
        raise ValueError(f"limit: must be >= 0, got {limit}")
    try:
        with (task_dir / LOG_FILE).open("rb") as log:
            log.seek(offset)
            data = log.read(limit)
    except FileNotFoundError:
        return b"", offset
    return data, offset + len(data)


def boot_id() -> str:
    """This boot of the machine; pids and start times only mean something within one."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def process_start(pid: int) -> tuple[int, str] | None:
    """(start time in clock ticks since boot, state letter) of a process, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields after it are plain.
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20:
        return None
    return int(fields[19]), fields[0]  # field 22 (start time) and field 3 (state)


def is_alive(pid: int, start_time: int, boot: str) -> bool:
    """True when ``pid`` is still the process that started at ``start_time`` in boot ``boot``
    and has not exited (a zombie has)."""
    if boot and boot != boot_id():
        return False
    found = process_start(pid)
    return found is not None and found[0] == start_time and found[1] not in ("Z", "X")


def signal_group(pgid: int, signum: int) -> None:
    """Send ``signum`` to a process group, ignoring a group that is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


class Runner:
    """One task's runner; ``run()`` does the whole life cycle described in the module."""

    def __init__(self, task_dir: str) -> None:
        self.task_dir = task_dir
        self.task_pid: int | None = None
        self.task_group: int | None = None  # where SIGTERM goes; None once the task is reaped
        self.terms_received = 0
        self.terms_forwarded = 0
        self.log_fd = -1
        self.grace = 0.0  # seconds between SIGTERM and SIGKILL, from the spec
        self.kill_noted = False

    def path(self, name: str) -> str:
        return os.path.join(self.task_dir, name)

    def note(self, message: str) -> None:
        """Append one line from allot to the task's log (never environment values)."""
        if self.log_fd >= 0:
            with contextlib.suppress(OSError):
                os.write(self.log_fd, f"allot: {message}\n".encode())

    def on_sigterm(self, signum: int, frame: object) -> None:
        self.terms_received += 1
        if self.task_group is not None:
            self.forward_term()

    def forward_term(self) -> None:
        """Pass a stop on to the task's group, and say so in its log."""
        assert self.task_group is not None
        self.terms_forwarded += 1
        signal_group(self.task_group, signal.SIGTERM)
        self.note(f"asked to stop: sent SIGTERM; {self.kill_warning()}")

    def kill_warning(self) -> str:
        return f"SIGKILL follows if the task still runs after the {self.grace:g} s grace period"

    def note_kill(self) -> None:
        if not self.kill_noted:
            self.kill_noted = True
            self.note(f"sent SIGKILL after the {self.grace:g} s grace period")

    def stop_requested(self) -> str | None:
        try:
            with open(self.path(STOP_FILE)) as f:
                return f.read().strip() or "term"
        except OSError:
            return None

    def write_pid(self, own_start: tuple[int, str] | None, boot: str) -> None:
        record: dict[str, object] = {
            "pid": os.getpid(),
            "start_time": own_start[0] if own_start else 0,
            "boot_id": boot,
            "started_at": time.time(),
        }
        if self.task_pid is not None:
            task_start = process_start(self.task_pid)
            record["task_pid"] = self.task_pid
            record["task_start_time"] = task_start[0] if task_start else 0
        write_json_atomic(self.path(PID_FILE), record)

    def finish(self, exit_code: int, *, timed_out: bool = False, error: str | None = None) -> None:
        record: dict[str, object] = {
            "exit_code": exit_code,
            "timed_out": timed_out,
            "terminated": self.terms_received > 0 or self.stop_requested() is not None,
            "terms_received": self.terms_received,
            "started": self.task_pid is not None,
            "finished_at": time.time(),
        }
        if error is not None:
            record["error"] = error
        write_json_atomic(self.path(EXIT_FILE), record, durable=True)

    def run(self) -> int:
        try:
            fd = os.open(self.path(CLAIM_FILE), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return 0  # another runner owns this task (or did): never run it twice
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        # A handler, not SIG_IGN: an ignored signal would stay ignored in the task after exec.
        signal.signal(signal.SIGTERM, self.on_sigterm)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        boot = boot_id()
        own_start = process_start(os.getpid())
        self.write_pid(own_start, boot)
        spec = read_json(self.path(SPEC_FILE))
        if spec is None:
            self.finish(NOT_FOUND, error=f"{SPEC_FILE} is missing or unreadable")
            return 0
        log = str(spec.get("log") or self.path(LOG_FILE))
        try:
            self.log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as err:
            self.finish(CANNOT_EXECUTE, error=f"cannot open the log {log!r}: {err.strerror}")
            return 0
        try:
            return self.supervise(spec, own_start, boot)
        finally:
            os.close(self.log_fd)
            self.log_fd = -1

    def supervise(
        self, spec: Mapping[str, object], own_start: tuple[int, str] | None, boot: str
    ) -> int:
        # The executor writes the stop marker before it reads pid.json, and this runner wrote
        # pid.json before reading the marker: one of the two always sees the other.
        stop = self.stop_requested()
        if stop is not None or self.terms_received:
            self.note("stopped before the task started")
            self.finish(-(signal.SIGKILL if stop == "kill" else signal.SIGTERM))
            return 0
        self.grace = _number(spec.get("grace_seconds")) or 0.0
        argv = _strings(spec.get("argv"))
        env = {str(k): str(v) for k, v in _mapping(spec.get("env")).items()}
        env.update(inherited(_strings(spec.get("inherit")), os.environ))
        workdir = str(spec.get("workdir") or ".")
        try:
            os.chdir(workdir)  # the runner's own cwd does not matter; posix_spawn has no cwd
        except OSError as err:
            return self.cannot_start(f"workdir {workdir!r} is not usable: {err.strerror}", err)
        try:
            self.task_pid = self.task_group = self.spawn(argv, env)
        except OSError as err:
            name = argv[0] if argv else "(empty argv)"
            return self.cannot_start(f"cannot start {name!r}: {err.strerror or err}", err)
        started = time.monotonic()
        self.write_pid(own_start, boot)
        if self.stop_requested() == "kill":
            signal_group(self.task_pid, signal.SIGKILL)
        if self.terms_received and not self.terms_forwarded:  # TERM arrived while spawning
            self.forward_term()
        limit = _number(spec.get("time_limit"))
        term_at = None if limit is None else started + limit
        exit_code, timed_out = self.wait(self.task_pid, term_at, self.grace, limit)
        self.finish(exit_code, timed_out=timed_out)
        return 0

    def killed_by_executor(self, ended: os.waitid_result) -> bool:
        """True when the task died of the SIGKILL the executor sends once the grace period of
        a stop is over (it writes the ``kill`` marker before it signals)."""
        return (
            ended.si_code == os.CLD_KILLED
            and ended.si_status == signal.SIGKILL
            and self.stop_requested() == "kill"
        )

    def cannot_start(self, reason: str, err: OSError) -> int:
        self.note(reason)
        self.finish(
            NOT_FOUND if isinstance(err, FileNotFoundError) else CANNOT_EXECUTE, error=reason
        )
        return 0

    def spawn(self, argv: list[str], env: Mapping[str, str]) -> int:
        """Start the task in a new process group; returns its pid."""
        if not argv:
            raise FileNotFoundError(2, "argv is empty")
        program = resolve(argv[0], env.get("PATH", os.defpath))
        devnull = os.open(os.devnull, os.O_RDONLY)
        try:
            return os.posix_spawn(
                program,
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, devnull, 0),
                    (os.POSIX_SPAWN_DUP2, self.log_fd, 1),
                    (os.POSIX_SPAWN_DUP2, self.log_fd, 2),
                ],
                setpgroup=0,
                setsigmask=(),
                # Python ignores these two; a task expects the defaults (e.g. `head` in a pipe).
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            )
        finally:
            os.close(devnull)

    def wait(
        self, pid: int, term_at: float | None, grace: float, limit: float | None
    ) -> tuple[int, bool]:
        """Wait for the task, enforcing its time limit; returns (exit code, timed out)."""
        timed_out = False
        kill_at: float | None = None
        try:
            pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = None  # an old kernel: poll instead
        poller = select.poll()
        if pidfd is not None:
            poller.register(pidfd, select.POLLIN)
        try:
            while True:
                # WNOWAIT: the task stays a zombie, holding its group id, until we reap below.
                done = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                if done is not None and done.si_pid == pid:
                    if self.killed_by_executor(done):
                        self.note_kill()
                    break
                now = time.monotonic()
                if kill_at is not None and now >= kill_at:
                    signal_group(pid, signal.SIGKILL)
                    self.note_kill()
                    kill_at = None
                    term_at = None
                elif term_at is not None and now >= term_at and not timed_out:
                    timed_out = True
                    signal_group(pid, signal.SIGTERM)
                    self.note(
                        f"time limit of {limit:g} s reached: sent SIGTERM; {self.kill_warning()}"
                    )
                    kill_at = now + grace
                next_at = kill_at if kill_at is not None else term_at if not timed_out else None
                timeout = None if next_at is None else max(0.0, next_at - time.monotonic())
                if pidfd is None:
                    time.sleep(0.05 if timeout is None else min(0.05, timeout))
                else:
                    # poll() takes a C int of milliseconds: wait at most an hour per turn,
                    # so a time limit of 2^31 ms (~24.9 days) or more cannot overflow it.
                    poller.poll(None if timeout is None else min(int(timeout * 1000) + 1, 3600_000))
        finally:
            if pidfd is not None:
                os.close(pidfd)
        signal_group(pid, signal.SIGKILL)  # whatever the task left behind in its group
        self.task_group = None  # after the reap below, the group id may be anyone's
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), timed_out


def inherited(names: list[str], own: Mapping[str, str]) -> dict[str, str]:
    """The variables of the runner's own environment that ``names`` picks (a name ending in
    ``*`` picks every variable it begins), for an engine that tells the task where it runs
    (Slurm's ``SLURM_*`` and the devices it allocated); they win over the spec's."""
    exact = {n for n in names if not n.endswith("*")}
    prefixes = tuple(n[:-1] for n in names if n.endswith("*"))
    return {k: v for k, v in own.items() if k in exact or (prefixes and k.startswith(prefixes))}


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _mapping(value: object) -> Mapping[object, object]:
    return value if isinstance(value, dict) else {}


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def resolve(program: str, search_path: str) -> str:
    """The file ``program`` names, looked up in the task's PATH when it has no slash."""
    if "/" in program:
        return program
    for folder in search_path.split(os.pathsep):
        candidate = os.path.join(folder or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(2, "not found in the task's PATH")


def main(args: list[str]) -> int:
    if len(args) != 1:
        sys.stderr.write("usage: python -m allot.executors.runner TASK_DIR\n")
        return 2
    return Runner(args[0]).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
