"""GPU sharing on this machine: CUDA MPS limits for tasks that hold a share of one GPU.

When several tasks share a device, only CUDA's Multi-Process Service can bound what each
takes: ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`` caps the share of the streaming multiprocessors a
client may use, and ``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`` the device memory it may allocate
(NVIDIA's MPS documentation, "Environment Variables"). Both take effect only when an MPS
control daemon is running (its ``control`` pipe exists in ``CUDA_MPS_PIPE_DIRECTORY``, by
default ``/tmp/nvidia-mps``); without one, a CUDA client runs as usual and nothing bounds it.

Invariants
- A task with a share of a GPU gets both limits when the daemon is there: the thread share is
  its milli-GPU rounded up to a whole percent (at least 1), the memory limit its GPU memory
  request (only when it made one), for device ordinal 0, the one device it sees.
- Without a daemon, or for whole-GPU and CPU-only tasks, no MPS limit is set (a user's own
  ``CUDA_MPS_*`` limits are dropped for them too, so none is mistaken for enforcement), and
  ``sharing_mode`` says ``unenforced`` so ``allot nodes`` can say so plainly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Literal

from allot.core.model import MILLI_PER_GPU, TaskPlacement

DEFAULT_PIPE_DIRECTORY = "/tmp/nvidia-mps"
THREAD_PERCENTAGE = "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"
MEMORY_LIMIT = "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"
PIPE_DIRECTORY = "CUDA_MPS_PIPE_DIRECTORY"
SharingMode = Literal["mps", "unenforced"]


def mps_pipe_directory(env: Mapping[str, str]) -> str | None:
    """The pipe directory of a running MPS control daemon, or None when none runs."""
    directory = env.get(PIPE_DIRECTORY) or DEFAULT_PIPE_DIRECTORY
    return directory if os.path.exists(os.path.join(directory, "control")) else None


def sharing_mode(env: Mapping[str, str]) -> SharingMode:
    """``mps`` when shares of a GPU are bounded by MPS here, else ``unenforced``."""
    return "mps" if mps_pipe_directory(env) is not None else "unenforced"


def with_gpu_share(
    env: dict[str, str], where: TaskPlacement, gpu_memory_mib: int, pipe: str | None
) -> dict[str, str]:
    """``env`` with the MPS limits of a task placed at ``where`` (see the module docstring)."""
    for name in (THREAD_PERCENTAGE, MEMORY_LIMIT):
        env.pop(name, None)
    share = where.gpu_milli_per_device
    if pipe is None or not 0 < share < MILLI_PER_GPU:
        return env
    env[PIPE_DIRECTORY] = pipe
    env[THREAD_PERCENTAGE] = str(max(1, math.ceil(share * 100 / MILLI_PER_GPU)))
    if gpu_memory_mib:
        env[MEMORY_LIMIT] = f"0={gpu_memory_mib}M"
    return env
