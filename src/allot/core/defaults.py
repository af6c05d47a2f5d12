"""Default CPU and memory of a task that does not ask for them, from the shape of the nodes.

A GPU task gets the CPUs and memory that come with its GPUs: ``gpus x (node CPUs / node
GPUs)`` and ``gpus x (node memory / node GPUs)`` (Slurm's ``DefCpuPerGPU`` and
``DefMemPerGPU``, computed from the nodes instead of configured). The ratio is taken over the
nodes of the flavors the job accepts (every flavor when it names none), and the smallest one
wins, so the job fits the smallest of them. Amounts are rounded down to whole milli-CPU and
MiB, and never below one of each. A CPU-only task, or a GPU task no node could hold, gets
``CPU_TASK_DEFAULT``: 1 CPU and 1 GiB, which any laptop has.

Invariant: an amount the task gives is kept as it is; only missing ones are filled in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from allot.core.model import MILLI_PER_GPU, Node, Resources

CPU_TASK_DEFAULT = Resources(cpu_milli=1000, memory_mib=1024)


def per_gpu_share(nodes: Iterable[Node], flavors: Sequence[str], gpu_milli: int) -> Resources:
    """The CPU and memory that come with ``gpu_milli`` on the smallest-ratio node of the
    accepted ``flavors`` (all flavors when empty); ``CPU_TASK_DEFAULT`` without GPUs or without
    such a node."""
    if gpu_milli <= 0:
        return CPU_TASK_DEFAULT
    shapes = [
        (n.cpu_milli, n.memory_mib, n.gpus)
        for n in nodes
        if n.gpus > 0 and (not flavors or n.flavor in flavors)
    ]
    if not shapes:
        return CPU_TASK_DEFAULT
    # Integer arithmetic, rounded down: the smallest node's share must never be exceeded.
    denominator = MILLI_PER_GPU
    cpu = min(gpu_milli * cpus // (gpus * denominator) for cpus, _, gpus in shapes)
    memory = min(gpu_milli * mib // (gpus * denominator) for _, mib, gpus in shapes)
    return Resources(gpu_milli, max(cpu, 1), max(memory, 1))


def fill_task(
    nodes: Iterable[Node],
    flavors: Sequence[str],
    gpu_milli: int,
    cpu_milli: int | None,
    memory_mib: int | None,
) -> Resources:
    """A task's resources with the missing CPU or memory (None) filled in."""
    if cpu_milli is not None and memory_mib is not None:
        return Resources(gpu_milli, cpu_milli, memory_mib)
    share = per_gpu_share(nodes, flavors, gpu_milli)
    return Resources(
        gpu_milli,
        share.cpu_milli if cpu_milli is None else cpu_milli,
        share.memory_mib if memory_mib is None else memory_mib,
    )
