"""Rank: the order in which nodes are offered to a task, best fit first.

Best fit keeps large free blocks whole for the jobs that need them: a task goes to the node
whose free whole GPUs are the fewest that still suffice (the bucket walk from ``need`` upward),
and a fractional task to the partly used device with the least room that still suffices.
Within a bucket nodes come in node order, so ties go to the lowest node index.
"""

from __future__ import annotations

from collections.abc import Iterator

from allot.core.model import MILLI_PER_GPU
from allot.core.snapshot import PARTIAL_BUCKETS, Snapshot, nodes_in

ALL_NODES = -1  # a node mask with every bit set


def smallest_sufficient(
    snap: Snapshot, flavor: str, need_gpus: int, mask: int = ALL_NODES
) -> Iterator[int]:
    """Schedulable nodes of ``flavor`` (within ``mask``) with at least ``need_gpus`` whole
    free GPUs, fewest free first (best fit)."""
    buckets = snap.buckets[flavor]
    for k in range(max(need_gpus, 0), len(buckets)):
        yield from nodes_in(buckets[k] & mask)


def largest_first(
    snap: Snapshot, flavor: str, at_least: int, mask: int = ALL_NODES
) -> Iterator[int]:
    """Schedulable nodes of ``flavor`` (within ``mask``) with at least ``at_least`` whole free
    GPUs, most free first (to hold as many tasks of a gang as possible)."""
    buckets = snap.buckets[flavor]
    for k in range(len(buckets) - 1, max(at_least, 1) - 1, -1):
        yield from nodes_in(buckets[k] & mask)


def fractional_candidates(
    snap: Snapshot, flavor: str, need_milli: int, mask: int = ALL_NODES
) -> Iterator[int]:
    """Nodes (within ``mask``) whose partly used devices might hold ``need_milli``, least room
    first, then nodes with a whole free device, fewest whole free first."""
    partial = snap.partial[flavor]
    for b in range(need_milli * PARTIAL_BUCKETS // MILLI_PER_GPU, PARTIAL_BUCKETS):
        yield from nodes_in(partial[b] & mask)
    yield from smallest_sufficient(snap, flavor, 1, mask)


def cpu_only_candidates(snap: Snapshot, flavor: str, mask: int = ALL_NODES) -> Iterator[int]:
    """Nodes (within ``mask``) for a task without GPUs: those with the fewest free GPUs first,
    so GPU-rich nodes stay free for GPU work."""
    yield from smallest_sufficient(snap, flavor, 0, mask)


def best_device(dev_free: list[int], need_milli: int) -> int | None:
    """The device with the least free milli-GPU that still holds ``need_milli`` (partly used
    devices before untouched ones); None when none does."""
    best: int | None = None
    best_free = MILLI_PER_GPU + 1
    for d, free in enumerate(dev_free):
        if need_milli <= free < best_free:
            best, best_free = d, free
            if free == need_milli:
                break
    return best
