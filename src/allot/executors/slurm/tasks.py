"""What one run asks of Slurm and what each of its tasks gets: the ``BatchJob`` its batch
script is rendered from (``batch_job``), and each task's spec for allot's runner
(``write_specs``).

Invariants
- A run is pinned as allot placed it: one node per task, in task order, and each task's GPU
  count; a share of a GPU cannot be pinned through GRES and is refused with that reason.
- A task's environment is the local executor's (``allot.executors.environment``: the
  server's without secrets, the user's, then allot's variables) with two differences: the
  devices are the ones Slurm allocated (``CUDA_VISIBLE_DEVICES`` and its kin are taken from
  the runner's environment on the node, as are Slurm's ``SLURM_*``), and ``MASTER_ADDR`` is
  the address of task 0's node, ``MASTER_PORT`` derived from the run id.
- A spec, once written, is never rewritten (a relaunch keeps what the first launch wrote).
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from allot.control.ports import TaskLaunch
from allot.core.model import MILLI_PER_CPU, MILLI_PER_GPU
from allot.executors import runner
from allot.executors.environment import server_python, task_environment
from allot.executors.slurm.commands import SlurmCommandError
from allot.executors.slurm.script import BatchJob

RUNNER_PATH = str(Path(runner.__file__).resolve())
# What a task takes from the environment Slurm gives its runner (they win over allot's).
SLURM_VARIABLES = ("SLURM_*", "SLURMD_NODENAME")
DEVICE_VARIABLES = ("CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "ROCR_VISIBLE_DEVICES")
MASTER_PORTS = (29500, 10000)  # a gang's MASTER_PORT: from its run id, in 29500..39499


def batch_job(
    tasks: Sequence[TaskLaunch],
    run_dir: Path,
    *,
    python: str,
    grace_seconds: float,
    partition: str | None,
) -> BatchJob:
    """The batch job of the run whose tasks (in task order) are ``tasks``; raises
    SlurmCommandError for a placement Slurm cannot be pinned to. Every task gets the largest
    CPU and memory request among them (Slurm sizes a job's tasks alike)."""
    first = tasks[0]
    per_device = {t.placement.gpu_milli_per_device for t in tasks if t.placement.devices}
    if any(0 < milli < MILLI_PER_GPU for milli in per_device):
        raise SlurmCommandError(
            f"run {first.run_id}: a share of a GPU cannot be pinned through Slurm's GRES;"
            " ask for whole GPUs on a Slurm pool"
        )
    cpus = max((t.resources.cpu_milli if t.resources else 0) for t in tasks)
    memory = max((t.resources.memory_mib if t.resources else 0) for t in tasks)
    limit = first.time_limit
    # Slurm's limit is a backstop: the runner stops the task at the limit itself.
    minutes = None if limit is None else math.ceil((limit + grace_seconds) / 60) + 1
    return BatchJob(
        run_id=first.run_id,
        job_id=first.job_id,
        nodes=tuple(t.placement.node for t in tasks),
        gpus_per_task=max(len(t.placement.devices) for t in tasks),
        cpus_per_task=max(1, math.ceil(cpus / MILLI_PER_CPU)),
        memory_mb_per_task=memory,
        time_minutes=minutes,
        run_dir=str(run_dir),
        python=python,
        runner=RUNNER_PATH,
        partition=partition,
    )


def write_specs(
    tasks: Sequence[TaskLaunch],
    run_dir: Path,
    *,
    addresses: Mapping[str, str],
    grace_seconds: float,
) -> None:
    """Write the runner's spec of each task (in task order) that has none yet."""
    base = server_python({k: v for k, v in os.environ.items() if not k.startswith("SLURM")})
    port = MASTER_PORTS[0] + zlib.crc32(tasks[0].run_id.encode()) % MASTER_PORTS[1]
    master = addresses.get(tasks[0].placement.node, tasks[0].placement.node)
    for task in tasks:
        task_dir = run_dir / f"task-{task.task_index}"
        task_dir.mkdir(exist_ok=True, mode=0o700)
        if (task_dir / runner.SPEC_FILE).exists():
            continue
        peers = [t.task_index for t in tasks if t.placement.node == task.placement.node]
        env = task_environment(
            task,
            base,
            master_port=port,
            local_rank=peers.index(task.task_index),
            local_world_size=len(peers),
        )
        inherit = list(SLURM_VARIABLES)
        if task.placement.devices:  # Slurm chose the devices; a CPU task keeps none
            inherit += DEVICE_VARIABLES
            env.pop("CUDA_VISIBLE_DEVICES", None)
        if task.num_tasks > 1:
            env["MASTER_ADDR"] = master
        spec: dict[str, object] = {
            "run_id": task.run_id,
            "job_id": task.job_id,
            "task_index": task.task_index,
            "num_tasks": task.num_tasks,
            "argv": list(task.launch.argv),
            "workdir": task.launch.workdir or str(run_dir),
            "env": env,
            "inherit": inherit,
            "time_limit": task.time_limit,
            "grace_seconds": grace_seconds,
            "log": str(task_dir / runner.LOG_FILE),
        }
        runner.write_json_atomic(str(task_dir / runner.SPEC_FILE), spec, mode=0o600)
