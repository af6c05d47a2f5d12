"""Interval arithmetic on timelines: unions, intersections and lengths of sets of busy spans.

A timeline is a pair of sorted, non-overlapping arrays ``(starts, ends)`` in one time unit;
``union`` makes one from any spans, and every other function takes and returns timelines, so
"compute overlapped with communication" is ``length(intersect(compute, comm))``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Spans = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]

EMPTY: Spans = (np.zeros(0), np.zeros(0))


def union(starts: npt.ArrayLike, ends: npt.ArrayLike) -> Spans:
    """The timeline covered by spans ``[starts[i], ends[i])`` (empty or inverted spans drop)."""
    s = np.asarray(starts, dtype=np.float64)
    e = np.asarray(ends, dtype=np.float64)
    keep = e > s
    s, e = s[keep], e[keep]
    if s.size == 0:
        return EMPTY
    order = np.argsort(s, kind="stable")
    s, e = s[order], e[order]
    reach = np.maximum.accumulate(e)
    # A span starts a new run when it begins after everything before it has ended.
    new = np.empty(s.size, dtype=bool)
    new[0] = True
    new[1:] = s[1:] > reach[:-1]
    run_starts = s[new]
    last = np.r_[np.flatnonzero(new)[1:] - 1, s.size - 1]
    return run_starts, reach[last]


def length(spans: Spans) -> float:
    """Total time covered."""
    return float(np.sum(spans[1] - spans[0]))


def intersect(a: Spans, b: Spans) -> Spans:
    """Time covered by both ``a`` and ``b``."""
    if a[0].size == 0 or b[0].size == 0:
        return EMPTY
    i = j = 0
    out_s: list[float] = []
    out_e: list[float] = []
    a_s, a_e, b_s, b_e = a[0], a[1], b[0], b[1]
    while i < a_s.size and j < b_s.size:
        lo = max(a_s[i], b_s[j])
        hi = min(a_e[i], b_e[j])
        if hi > lo:
            out_s.append(lo)
            out_e.append(hi)
        if a_e[i] < b_e[j]:
            i += 1
        else:
            j += 1
    return np.asarray(out_s, dtype=np.float64), np.asarray(out_e, dtype=np.float64)


def merge(*timelines: Spans) -> Spans:
    """Time covered by any of ``timelines``."""
    starts = np.concatenate([t[0] for t in timelines]) if timelines else np.zeros(0)
    ends = np.concatenate([t[1] for t in timelines]) if timelines else np.zeros(0)
    return union(starts, ends)


def clip(spans: Spans, lo: float, hi: float) -> Spans:
    """``spans`` within ``[lo, hi)``."""
    return union(np.clip(spans[0], lo, hi), np.clip(spans[1], lo, hi))


def minus(a: Spans, b: Spans) -> float:
    """Length of the time in ``a`` not in ``b``."""
    return length(a) - length(intersect(a, b))
