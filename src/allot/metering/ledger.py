"""Ledger intervals and their sums: what one run held (per flavor, summed over its tasks) from
when to when and whose it was, and the amounts those intervals add up to within a window,
cut into segments (price periods, time buckets).

An interval comes from a line of the store's usage ledger (an ended run) or from a run still
active (held until now). Amounts are integrals over time: milli-GPU-seconds, milli-core-seconds
and MiB-seconds. Invariant: a window's sums are exactly the overlap of each interval with each
segment, so segments that tile a window add up to the window's total, and an interval is never
counted twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

GROUPS = ("tenant", "user", "queue", "flavor")


@dataclass(frozen=True, slots=True)
class Interval:
    """What one run held from ``start`` to ``end``."""

    job_id: int
    tenant: str
    user: str
    queue: str
    flavor: str
    start: float
    end: float
    gpu_milli: int
    cpu_milli: int
    memory_mib: int

    def group(self, by: Sequence[str]) -> tuple[str, ...]:
        """The values of the fields named in ``by`` (from ``GROUPS``)."""
        return tuple(str(getattr(self, name)) for name in by)


@dataclass(frozen=True, slots=True)
class Sums:
    """Amounts held within one segment, by one group on one flavor: milli-GPU-seconds,
    milli-core-seconds and MiB-seconds."""

    key: tuple[str, ...]
    flavor: str
    segment: float  # the segment's start
    gpu_milli_seconds: float
    cpu_milli_seconds: float
    memory_mib_seconds: float


def check_groups(by: Sequence[str]) -> tuple[str, ...]:
    """``by`` as a tuple; raises ValueError naming the field for an unknown group."""
    for name in by:
        if name not in GROUPS:
            raise ValueError(f"by: {name!r} is not one of {', '.join(GROUPS)}")
    if not by:
        raise ValueError("by: name at least one of " + ", ".join(GROUPS))
    return tuple(by)


def cuts_of(start: float, end: float, extra: Iterable[float] = ()) -> list[float]:
    """``start``, every instant of ``extra`` strictly inside ``(start, end)``, and ``end``."""
    inside = sorted({c for c in extra if start < c < end})
    return [start, *inside, end]


def every(start: float, end: float, step: float) -> list[float]:
    """Bucket starts every ``step`` seconds after ``start`` (for time buckets)."""
    if step <= 0:
        raise ValueError(f"bucket: must be a duration > 0, got {step}")
    count = int((end - start) // step)
    return [start + i * step for i in range(1, count + 1)]


def sums_of(intervals: Iterable[Interval], by: Sequence[str], cuts: Sequence[float]) -> list[Sums]:
    """The sums of ``intervals`` per group of ``by``, flavor and segment of ``cuts`` (the
    segments are consecutive cuts; what lies outside ``[cuts[0], cuts[-1])`` is not counted)."""
    segments = list(itertools.pairwise(cuts))
    totals: dict[tuple[tuple[str, ...], str, float], list[float]] = {}
    for interval in intervals:
        key = interval.group(by)
        for lo, hi in segments:
            if interval.end <= lo:
                break
            overlap = min(interval.end, hi) - max(interval.start, lo)
            if overlap <= 0:
                continue
            slot = totals.setdefault((key, interval.flavor, lo), [0.0, 0.0, 0.0])
            slot[0] += interval.gpu_milli * overlap
            slot[1] += interval.cpu_milli * overlap
            slot[2] += interval.memory_mib * overlap
    return [
        Sums(key, flavor, segment, *amounts)
        for (key, flavor, segment), amounts in sorted(totals.items())
    ]
