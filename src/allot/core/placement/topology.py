"""Topology: where a gang may or should land together, by a node's topology path.

A node's ``topology`` is its path ``(block, rack)`` (the node itself is the last level); a job
may ask that its tasks share one ``node``, ``rack`` or ``block`` (``JobSpec.colocate``),
required (never placed otherwise) or preferred (placed elsewhere only when no single domain
has room). Domains are tried best fit first: the one with the fewest free GPUs that still
could hold the job, so large free domains stay whole for the gangs that need them (as Slurm's
topology/tree plugin picks the lowest-level switch with enough free nodes, and Kueue's
topology-aware scheduling packs a workload into the smallest domain that fits).
"""

from __future__ import annotations

from allot.core.model import JobSpec
from allot.core.snapshot import Snapshot

LEVELS = ("node", "rack", "block")


def _domain(snap: Snapshot, i: int, level: str) -> tuple[str, ...]:
    node = snap.nodes[i]
    if level == "node":
        return (*node.topology, node.name)
    depth = 2 if level == "rack" else 1
    return node.topology[:depth]


def domain_masks(snap: Snapshot, flavor: str, level: str) -> list[int]:
    """Bitsets of the nodes of ``flavor``, one per domain at ``level`` (memoised: topology
    never changes while a snapshot lives)."""
    key = ("topology", flavor, level)
    known = snap.memo.get(key)
    if isinstance(known, list):
        return known
    masks: dict[tuple[str, ...], int] = {}
    for i, f in enumerate(snap.flavor_of):
        if f == flavor:
            d = _domain(snap, i, level)
            masks[d] = masks.get(d, 0) | 1 << i
    result = [masks[d] for d in sorted(masks)]
    snap.memo[key] = result
    return result


def candidate_domains(snap: Snapshot, spec: JobSpec, flavor: str) -> list[int]:
    """The domains (bitsets) ``spec`` should be tried in, best fit first: those whose free
    GPUs could hold the whole job, fewest free first."""
    # Whole free GPUs per domain from the buckets: a few bit counts, not a walk over nodes.
    # Only whole-GPU gangs are filtered by it; shares of a GPU try every domain.
    whole_only = all(t.whole_gpus for t in spec.tasks)
    need = sum(t.whole_gpus for t in spec.tasks) if whole_only else 0
    buckets = snap.buckets[flavor]
    ranked: list[tuple[int, int, int]] = []
    for order, mask in enumerate(domain_masks(snap, flavor, spec.colocate)):
        free = sum(k * (b & mask).bit_count() for k, b in enumerate(buckets) if k)
        if free >= need:
            ranked.append((free, order, mask))
    ranked.sort()
    return [mask for _, _, mask in ranked]
