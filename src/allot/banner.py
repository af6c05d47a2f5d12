"""What ``allot up`` says once it is ready: the quotas in force and where they came from, the
queues, and a first command to try that works on this server.

Invariants: the ``try:`` command names a queue that exists (none when ``default`` exists,
since a job without ``--queue`` goes there) and asks only for amounts this machine has; every
line is plain text (the CLI styles it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from allot.core.defaults import CPU_TASK_DEFAULT
from allot.core.model import MILLI_PER_CPU, MILLI_PER_GPU, Node
from allot.core.quota.config import QueueSpec
from allot.quota_source import ActiveQuotas

MAX_QUEUES_SHOWN = 6
DEFAULT_QUEUE = "default"


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def quotas_line(active: ActiveQuotas) -> str:
    """Which quotas are in force and where they came from."""
    if not active.known:
        return (
            "kept from the store (their source was not recorded);"
            " load a file with --quotas FILE, or go back to the default with --quotas default"
        )
    if active.file is None:
        what, origin = "the built-in default (one queue 'default' that admits anything)", "set"
    else:
        what, origin = str(active.file), "loaded"
    if not active.kept:
        return f"{what}, {origin} now and kept for later starts"
    at = "" if active.loaded_at is None else f" at {_when(active.loaded_at)}"
    back = "" if active.is_default else "; back to the default: allot up --quotas default"
    return f"{what}, kept from the store ({origin}{at}){back}"


def _amount(milli: int) -> str:
    return f"{milli / MILLI_PER_GPU:g}"


def describe_queue(queue: QueueSpec) -> str:
    """``train (tenant vision, H100 4 GPUs)``; ``default (tenant default, unconstrained)``."""
    if queue.quotas is None:
        limits = "unconstrained"
    else:
        flavors = sorted({flavor for flavor, _ in queue.quotas})
        parts = []
        for flavor in flavors:
            gpu = queue.quotas.get((flavor, "gpu"))
            parts.append(f"{flavor} {'any' if gpu is None else _amount(gpu.nominal)} GPUs")
        limits = ", ".join(parts)
    return f"{queue.name} (tenant {queue.tenant}, {limits})"


def queues_line(queues: Sequence[QueueSpec]) -> str:
    """The queues, briefly; the first few when there are many."""
    shown = [describe_queue(q) for q in queues[:MAX_QUEUES_SHOWN]]
    if len(queues) > MAX_QUEUES_SHOWN:
        shown.append(f"and {len(queues) - MAX_QUEUES_SHOWN} more (allot queues)")
    return "; ".join(shown) or "none"


def _admits(queue: QueueSpec, flavor: str, gpu_milli: int) -> bool:
    """Could ``queue`` ever admit a job of ``gpu_milli`` on ``flavor`` (by its own quota)?"""
    if queue.quotas is None:
        return True
    if not any(f == flavor for f, _ in queue.quotas):
        return False
    gpu = queue.quotas.get((flavor, "gpu"))
    if gpu is None or gpu_milli == 0:
        return True
    ceiling = None if gpu.borrowing_limit is None else gpu.nominal + gpu.borrowing_limit
    return ceiling is None or ceiling >= gpu_milli


def try_command(queues: Sequence[QueueSpec], nodes: Sequence[Node]) -> str:
    """A first job that this server can run: one GPU (or one CPU) in a queue that exists."""
    gpu_nodes = [n for n in nodes if n.gpus > 0]
    node = gpu_nodes[0] if gpu_nodes else (nodes[0] if nodes else None)
    gpu_milli = MILLI_PER_GPU if gpu_nodes else 0
    flavor = node.flavor if node is not None else ""
    names = [q.name for q in queues]
    if DEFAULT_QUEUE in names and _admits(queues[names.index(DEFAULT_QUEUE)], flavor, gpu_milli):
        queue_flag = ""
    else:
        usable = [q.name for q in queues if _admits(q, flavor, gpu_milli)] or names
        queue_flag = f" --queue {usable[0]}" if usable else ""
    if gpu_nodes:
        return (
            f"allot submit --gpus 1{queue_flag} -- sh -c 'echo $CUDA_VISIBLE_DEVICES'; allot jobs"
        )
    cpus = 1.0 if node is None else min(1.0, node.cpu_milli / MILLI_PER_CPU)
    memory = ""
    if node is not None and 0 < node.memory_mib < CPU_TASK_DEFAULT.memory_mib:
        memory = f" --memory-mib {node.memory_mib}"
    return f"allot submit --cpus {cpus:g}{memory}{queue_flag} -- echo hello; allot jobs --all"
