"""The environment a task runs with: the server's, then the user's, then allot's own.

Invariants
- The server's API token (``ALLOT_TOKEN``) and data directory (``ALLOT_DATA_DIR``) never reach
  a task; every other variable of the server's does, unless the user's or allot's replace it.
- allot's variables win over the user's: a task cannot widen its devices by setting
  ``CUDA_VISIBLE_DEVICES`` itself, and a CPU-only task gets it empty, so it sees no GPU.
- Variables that would describe the server's own place in a job (``RANK``, ...) are dropped
  from the server's environment; a gang task gets its own, for torch.distributed's ``env://``
  rendezvous, with one ``MASTER_PORT`` for the whole run.
- A server run from a virtual environment (``.venv/bin/allot up``) gives its tasks that
  environment as if it were activated: its ``bin`` first on ``PATH`` and ``VIRTUAL_ENV`` set,
  so ``python train.py`` runs the Python allot is installed in, with what is installed beside
  it (``server_python``).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping

from allot.control.ports import TaskLaunch
from allot.core.model import MILLI_PER_GPU

# Never passed on: the server's API token, and where the server keeps its data (the admin
# token file among it), so that a task's own ``allot`` commands do not act as the server.
SECRET_VARIABLES = frozenset({"ALLOT_TOKEN", "ALLOT_DATA_DIR"})
# Variables that describe the server's own place in a job, if it has one; each task gets its own.
TASK_VARIABLES = frozenset(
    {
        "CUDA_VISIBLE_DEVICES",
        "ALLOT_JOB_ID",
        "ALLOT_RUN_ID",
        "ALLOT_TASK_INDEX",
        "ALLOT_NUM_TASKS",
        "ALLOT_GPU_FRACTION",
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "MASTER_ADDR",
        "MASTER_PORT",
    }
)
MASTER_ADDR = "127.0.0.1"  # every task of a run is on this machine


def task_environment(
    task: TaskLaunch,
    server_env: Mapping[str, str],
    *,
    master_port: int | None,
    local_rank: int = 0,
    local_world_size: int = 1,
) -> dict[str, str]:
    """The environment of one task: the server's (without secrets or its own task variables),
    then the user's ``Launch.env``, then allot's variables, which win."""
    env = {
        k: v for k, v in server_env.items() if k not in SECRET_VARIABLES and k not in TASK_VARIABLES
    }
    env.update(task.launch.env)
    where = task.placement
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(d) for d in where.devices)
    # CUDA's default order is "fastest first"; PCI order makes the indices mean what NVML's do.
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    env["ALLOT_JOB_ID"] = str(task.job_id)
    env["ALLOT_RUN_ID"] = task.run_id
    env["ALLOT_TASK_INDEX"] = str(task.task_index)
    env["ALLOT_NUM_TASKS"] = str(task.num_tasks)
    if 0 < where.gpu_milli_per_device < MILLI_PER_GPU:
        env["ALLOT_GPU_FRACTION"] = f"{where.gpu_milli_per_device / MILLI_PER_GPU:g}"
    else:
        env.pop("ALLOT_GPU_FRACTION", None)
    if task.num_tasks > 1:  # torch.distributed's env:// rendezvous
        env["RANK"] = str(task.task_index)
        env["WORLD_SIZE"] = str(task.num_tasks)
        env["LOCAL_RANK"] = str(local_rank)
        env["LOCAL_WORLD_SIZE"] = str(local_world_size)
        env["MASTER_ADDR"] = MASTER_ADDR
        if master_port is not None:
            env["MASTER_PORT"] = str(master_port)
    return env


def server_python(
    server_env: Mapping[str, str],
    *,
    prefix: str = sys.prefix,
    base_prefix: str = sys.base_prefix,
) -> dict[str, str]:
    """``server_env`` with the server's virtual environment activated (unchanged when the
    server does not run in one, or it is active already)."""
    env = dict(server_env)
    if prefix == base_prefix:
        return env
    bin_dir = os.path.join(prefix, "bin")
    path = env.get("PATH", os.defpath).split(os.pathsep)
    if not path or path[0] != bin_dir:
        env["PATH"] = os.pathsep.join([bin_dir, *(p for p in path if p != bin_dir)])
    env["VIRTUAL_ENV"] = prefix
    return env


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((MASTER_ADDR, 0))
        port: int = sock.getsockname()[1]
        return port
