"""The Slurm executor: every allot run as one Slurm job, pinned to the nodes and GPU counts
allot chose (``allot.executors.slurm.script``), each task supervised on its node by allot's
runner (``allot.executors.runner``), as the local executor's tasks are.

On-disk layout, under ``runs_dir`` (which the nodes must see at the same path, as Slurm's own
output files must be: a shared file system)::

    <run_id>/  batch.sh  hosts  placement.json  submitted  job  slurm-<id>.out
               task-<index>/  spec.json  claim  pid.json  exit.json  stop  output.log

Invariants
- ``launch`` is idempotent per run id, across server crashes too: ``submitted`` is created
  (``O_EXCL``) before ``sbatch``, the job id written to ``job`` after; a run that has
  ``submitted`` but no ``job`` is looked up by its tag (the job name ``allot-<run id>``)
  before it is submitted again; and the runner claims each task with ``O_EXCL``, so even a
  job submitted twice runs each task once.
- Capacity allot does not own: the GPUs, CPUs and memory that Slurm jobs not launched by
  allot hold on a node are left out of that node's inventory, so allot never plans onto them.
- A task sees Slurm's ``SLURM_*`` variables and the devices Slurm allocated
  (``CUDA_VISIBLE_DEVICES``), allot's rank variables (as the local executor sets them, with
  ``MASTER_ADDR`` the address of task 0's node), and never the server's secrets
  (``allot.executors.slurm.tasks``).
- A task gets SIGTERM at most once per run (the ``stop`` marker, as for the local executor);
  a kill is ``scancel --signal=KILL --full``.
- Exits are pushed (``allot.executors.slurm.jobs``): while runs are active, a thread looks
  for their tasks' exit reports and asks ``squeue`` every ``poll_interval`` seconds for jobs
  that ended without one, and reports each run that ended.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from allot.control.ports import RunStatus, TaskLaunch
from allot.core.model import MILLI_PER_CPU, Node
from allot.executors import runner
from allot.executors.environment import SECRET_VARIABLES
from allot.executors.local import check_run_id
from allot.executors.slurm.commands import SlurmCommandError, SlurmCommands
from allot.executors.slurm.jobs import JobTable
from allot.executors.slurm.parse import (
    HOLDING_JOB_STATES,
    SlurmJob,
    SlurmNode,
    parse_jobs,
    parse_nodes,
)
from allot.executors.slurm.script import render, run_of
from allot.executors.slurm.tasks import batch_job, write_specs
from allot.executors.slurm.tracking import TaskExit, run_status

log = logging.getLogger("allot.executors")

SUBMITTED, JOB_FILE, PLACEMENT_FILE = "submitted", "job", "placement.json"


class SlurmExecutor:
    """Runs allot's runs as Slurm jobs (see the module docstring). ``partition``: the one
    partition whose nodes are this pool (None: every node); ``python``: the interpreter that
    runs allot's runner on the nodes; ``grace_seconds``: from SIGTERM to SIGKILL at a time
    limit."""

    def __init__(
        self,
        runs_dir: Path,
        *,
        partition: str | None = None,
        commands: SlurmCommands | None = None,
        python: str = sys.executable,
        grace_seconds: float = 30.0,
        poll_interval: float = 0.1,
    ) -> None:
        if grace_seconds < 0:
            raise ValueError(f"grace_seconds: must be >= 0, got {grace_seconds}")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval: must be > 0, got {poll_interval}")
        if any(c.isspace() or c == "%" for c in str(runs_dir)):
            raise ValueError(f"runs_dir: must not contain spaces or '%', got {str(runs_dir)!r}")
        self.runs_dir = Path(runs_dir)
        self.partition = partition
        self.commands = commands or SlurmCommands()
        self.python = python
        self.grace_seconds = grace_seconds
        self.poll_interval = poll_interval
        self.table = JobTable(self.commands, poll_interval, self._reported)
        self._tasks: dict[str, int] = {}  # run id -> task count, of the runs launched here
        self._addresses: dict[str, str] = {}  # node name -> address, from the inventory

    # -- checks and inventory
    def check(self) -> list[SlurmNode]:
        """Ask Slurm for its nodes once; raises SlurmCommandError naming the command that
        failed and its stderr (``sinfo`` missing, the controller not answering), or when the
        partition has no node."""
        # The plain form first: with --json, sinfo hides why it failed ("Unspecified error").
        self.commands.run("sinfo", ["--noheader", "--format=%P"])
        nodes = self._nodes()
        if not nodes:
            where = f"partition {self.partition!r}" if self.partition else "the cluster"
            raise SlurmCommandError(f"sinfo --json: {where} has no node")
        return nodes

    def _nodes(self) -> list[SlurmNode]:
        done = self.commands.run("sinfo", ["--json"])
        try:
            nodes = parse_nodes(done.stdout)
        except ValueError as err:
            raise SlurmCommandError(str(err)) from None
        if self.partition:
            nodes = [n for n in nodes if self.partition in n.partitions]
        self._addresses = {n.name: n.address for n in nodes}
        return nodes

    def inventory(self) -> list[Node]:
        """The partition's nodes, each less what Slurm jobs not launched by allot hold on it;
        drained, reserved and down nodes in their state."""
        nodes = self._nodes()
        done = self.commands.run("squeue", ["--json", f"--states={','.join(HOLDING_JOB_STATES)}"])
        try:
            jobs = parse_jobs(done.stdout)
        except ValueError as err:
            raise SlurmCommandError(str(err)) from None
        foreign: dict[str, list[int]] = {n.name: [0, 0, 0] for n in nodes}
        for job in jobs:
            if run_of(job.name) is not None or not job.holding:
                continue
            for held in job.allocations:
                if held.node in foreign:
                    used = foreign[held.node]
                    used[0] += held.gpus
                    used[1] += held.cpus
                    used[2] += held.memory_mb
        devices = self._allot_devices(jobs)
        found = []
        for n in nodes:
            gpus, cpus, memory = foreign[n.name]
            if gpus or cpus or memory:
                log.info(
                    "node %s: %d GPUs, %d CPUs held by Slurm jobs not from allot",
                    *(n.name, gpus, cpus),
                )
            if n.slurm_state not in ("idle", "mixed", "allocated"):
                log.info("node %s: Slurm state %s %s", n.name, n.slurm_state, n.reason)
            # Never below the devices allot's own runs hold there, so they stay valid.
            free_gpus = max(n.gpus - gpus, devices.get(n.name, 0))
            found.append(
                Node(
                    n.name,
                    n.flavor,
                    free_gpus,
                    max(n.cpus - cpus, 0) * MILLI_PER_CPU,
                    max(n.memory_mb - memory, 0),
                    state=n.state,
                )
            )
        return found

    def _allot_devices(self, jobs: Sequence[SlurmJob]) -> dict[str, int]:
        """For each node: one more than the highest device index allot's active runs hold."""
        top: dict[str, int] = {}
        for job in jobs:
            run_id = run_of(job.name)
            if run_id is None or not job.active:
                continue
            placement = runner.read_json(str(self.runs_dir / run_id / PLACEMENT_FILE)) or {}
            tasks = placement.get("tasks")
            for where in tasks if isinstance(tasks, list) else ():
                devices = where.get("devices") if isinstance(where, dict) else None
                if isinstance(devices, list) and devices:
                    node = str(where.get("node"))
                    top[node] = max(top.get(node, 0), 1 + max(int(d) for d in devices))
        return top

    def inventory_source(self) -> str:
        """``slurm``: the GPUs are the GRES Slurm reports."""
        return "slurm"

    # -- paths
    def run_dir(self, run_id: str) -> Path:
        """Where a run's files live; raises ValueError for an unsafe run id."""
        return self.runs_dir / check_run_id(run_id)

    def task_dir(self, run_id: str, task_index: int) -> Path:
        """The directory of one task of a run."""
        if task_index < 0:
            raise ValueError(f"task_index: must be >= 0, got {task_index}")
        return self.run_dir(run_id) / f"task-{task_index}"

    # -- launch
    def launch(self, tasks: Sequence[TaskLaunch]) -> None:
        """Submit one run as one Slurm job (idempotent per run id, see the module docstring).
        Raises SlurmCommandError (an OSError) when sbatch fails or the placement cannot be
        expressed to Slurm."""
        if not tasks:
            return
        ordered = sorted(tasks, key=lambda t: t.task_index)
        run_id = check_run_id(ordered[0].run_id)
        if [t.task_index for t in ordered] != list(range(ordered[0].num_tasks)):
            raise ValueError(f"tasks: run {run_id} must be launched whole, task 0 to the last")
        run_dir = self.run_dir(run_id)
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._tasks[run_id] = len(ordered)
        if (run_dir / JOB_FILE).exists():
            self.table.watch(run_id)
            return  # submitted before
        batch = batch_job(
            ordered,
            run_dir,
            python=self.python,
            grace_seconds=self.grace_seconds,
            partition=self.partition,
        )
        write_specs(ordered, run_dir, addresses=self._addresses, grace_seconds=self.grace_seconds)
        placement = {
            "tasks": [
                {"node": t.placement.node, "devices": list(t.placement.devices)} for t in ordered
            ]
        }
        runner.write_json_atomic(str(run_dir / PLACEMENT_FILE), placement)
        (run_dir / "batch.sh").write_text(render(batch))
        if batch.gang:
            (run_dir / "hosts").write_text(batch.hostfile)
        try:
            fd = os.open(run_dir / SUBMITTED, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        except FileExistsError:  # submitted by a server that died before it wrote the job id
            job = self.table.job_of(run_id, 0.0)
            if job is not None:
                self._record_job(run_dir, job.job_id)
                self.table.watch(run_id)
                return
            if any(
                (run_dir / f"task-{t.task_index}" / runner.CLAIM_FILE).exists() for t in ordered
            ):
                return  # that job ran (or runs) already; its tasks report how it ended
        self._submit(run_id, run_dir, batch.gang)

    def _submit(self, run_id: str, run_dir: Path, gang: bool) -> None:
        env = {
            k: v
            for k, v in (self.commands.env or os.environ).items()
            if k not in SECRET_VARIABLES
            and not k.startswith("SBATCH_")
            and (k == "SLURM_CONF" or not k.startswith("SLURM_"))
        }
        if gang:
            env["SLURM_HOSTFILE"] = str(run_dir / "hosts")
        self.table.submitting(run_id)
        commands = SlurmCommands(self.commands.bin_dir, self.commands.timeout, env)
        done = commands.run("sbatch", ["--parsable", str(run_dir / "batch.sh")])
        first = done.stdout.strip().split(";", 1)[0]
        if not first.isdigit():
            raise SlurmCommandError(f"sbatch: expected a job id, got {done.stdout.strip()!r}")
        self._record_job(run_dir, int(first))
        self.table.watch(run_id)

    def _record_job(self, run_dir: Path, job_id: int) -> None:
        runner.write_json_atomic(str(run_dir / JOB_FILE), {"job_id": job_id}, durable=True)

    def _recorded_job(self, run_id: str) -> int | None:
        data = runner.read_json(str(self.run_dir(run_id) / JOB_FILE))
        value = data.get("job_id") if data else None
        return value if isinstance(value, int) else None

    # -- status
    def status(self, run_id: str, num_tasks: int) -> RunStatus:
        """What is known about a run now (see ``allot.executors.slurm.tracking``)."""
        return self.statuses([(run_id, num_tasks)])[0]

    def statuses(self, runs: Sequence[tuple[str, int]]) -> list[RunStatus]:
        """``status`` of each (run id, task count), with one ``squeue`` for all."""
        found = []
        for run_id, num_tasks in runs:
            job = self.table.job_of(run_id, self.poll_interval / 2)
            exits: list[TaskExit | None] = []
            claimed: list[bool] = []
            for index in range(num_tasks):
                task_dir = self.task_dir(run_id, index)
                data = runner.read_json(str(task_dir / runner.EXIT_FILE))
                code = data.get("exit_code") if data else None
                exits.append(
                    None
                    if data is None
                    else TaskExit(
                        code if isinstance(code, int) else None, bool(data.get("timed_out"))
                    )
                )
                claimed.append((task_dir / runner.CLAIM_FILE).exists())
            recorded = self._recorded_job(run_id)
            if job is None and recorded is not None and None in exits:
                job = self.table.final(recorded)  # how it ended, in Slurm's words
            status = run_status(run_id, num_tasks, exits, job, job_id=recorded, claimed=claimed)
            found.append(status)
        return found

    def _reported(self, run_id: str) -> bool:
        """Whether every task of a run launched here has reported its exit."""
        count = self._tasks.get(run_id, 0)
        return count > 0 and all(
            (self.runs_dir / run_id / f"task-{i}" / runner.EXIT_FILE).exists() for i in range(count)
        )

    def notify_on_exit(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(run_id)`` (from the polling thread) when a run's Slurm job ends."""
        self.table.on_exit = callback

    def close(self) -> None:
        """Stop polling (Slurm jobs run on)."""
        self.table.close()

    # -- stop
    def signal(self, run_id: str, *, kill: bool) -> None:
        """SIGTERM every task of the run once (a pending job is cancelled), or SIGKILL them."""
        run_dir = self.run_dir(run_id)
        tasks = sorted(p for p in run_dir.glob("task-*") if p.is_dir()) if run_dir.is_dir() else []
        first_term = False
        for task_dir in tasks:
            marker = task_dir / runner.STOP_FILE
            if kill:
                marker.write_text("kill")
            else:
                with contextlib.suppress(FileExistsError):
                    with marker.open("x") as f:
                        f.write("term")
                    first_term = True
        job = self.table.job_of(run_id, 0.0)
        if job is None or not job.active:
            return
        number = str(job.job_id)
        if kill:
            self.commands.run("scancel", ["--signal=KILL", "--full", number], check=False)
            self.commands.run("scancel", [number], check=False)
        elif job.state == "PENDING":
            self.commands.run("scancel", [number], check=False)
        elif first_term:
            batch_only = ["--batch"] if len(tasks) == 1 else []
            self.commands.run("scancel", ["--signal=TERM", *batch_only, number], check=False)

    # -- logs
    def read_log(self, run_id: str, task_index: int, offset: int, limit: int) -> tuple[bytes, int]:
        """Up to ``limit`` bytes of a task's output from ``offset``; returns the bytes and the
        offset to ask for next."""
        return runner.read_log(self.task_dir(run_id, task_index), offset, limit)
