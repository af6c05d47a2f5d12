"""The analysis of one profiled job: each rank's steps split into compute, communication,
memory copies and idle, its top kernels, how much communication hid behind compute, how long
the data loader kept the device waiting, and the FLOPs and bytes of a step by operator class.

Definitions (per step, averaged over the profiled steps; a step is a ``ProfilerStep#N`` range,
and the window is the profiled steps from the first one's start to the last one's end):
- on a GPU: ``compute`` is the time any compute kernel runs; ``communication`` the time a
  collective (NCCL) kernel runs while no compute does (exposed); ``memory_copies`` the time a
  copy or memset runs while neither does; ``idle`` the rest of the window: the device waits
  for the host (Python, launches, the data loader, synchronisation);
- on a CPU (no device activity recorded): the same split over the host's operators: compute is
  the time an operator runs outside the data loader and collectives, communication the time a
  collective (gloo, c10d) runs, copies are none, and idle is the rest (the interpreter between
  operators, the data loader).
The four parts add up to the step time. ``overlap`` is the share of all collective time that
ran alongside compute. FLOPs and bytes come from ``counting`` over the operators in the window
(bytes only where work is done: in a counted product or an operator with no operators inside
it). Time goes to the operator that spent it: on a GPU each kernel's to the operator that
launched it (``External id``), on a host each operator's own time (less its children's); and
anything inside a counted product belongs to the innermost such product.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from allot.profile import counting, timeline
from allot.profile.trace import ANNOTATION, OP_CATEGORIES, Trace, read_trace

STEP_PREFIX = "ProfilerStep#"
TOP_KERNELS = 10
_COLLECTIVE_WORDS = ("nccl", "c10d::", "gloo", "record_param_comms", "allreduce", "all_gather")


class NoStepsError(ValueError):
    """A trace with nothing to analyse."""


@dataclass(frozen=True)
class KernelStat:
    """A kernel (on a CPU: an operator) by name: calls and seconds per step, and its share of
    the compute time."""

    name: str
    calls: float
    seconds: float
    share: float


@dataclass(frozen=True)
class OpClass:
    """Work of one operator (``name``) in one dtype per step: calls, device seconds, FLOPs and
    bytes moved; ``kind`` is ``matmul`` (products, convolutions, attention) or ``other``."""

    name: str
    kind: str
    dtype: str
    calls: float
    seconds: float
    flops: float
    bytes: float


@dataclass(frozen=True)
class RankProfile:
    """One rank's profiled steps (every time in seconds per step)."""

    rank: int
    device: str
    steps: int
    step_seconds: float
    compute: float
    communication: float
    memory_copies: float
    idle: float
    communication_total: float
    overlap: float | None  # share of collective time hidden behind compute; None: none ran
    data_loader: float
    data_loader_idle: float  # of which the device had nothing to do
    flops: float
    bytes: float
    kernels_per_step: float
    median_kernel_seconds: float
    peak_memory_bytes: int | None
    top_kernels: tuple[KernelStat, ...]
    classes: tuple[OpClass, ...]


@dataclass(frozen=True)
class WorkloadProfile:
    """Every rank of one profiled run."""

    ranks: tuple[RankProfile, ...]

    @property
    def on_gpu(self) -> bool:
        """True when the run's device activity was on a GPU."""
        return self.ranks[0].device != "cpu"

    @property
    def device(self) -> str:
        """The device the first rank ran on (``cpu`` for a CPU run)."""
        return self.ranks[0].device

    @property
    def step_seconds(self) -> float:
        """The slowest rank's step: every rank waits for it in a synchronous job."""
        return max(r.step_seconds for r in self.ranks)

    def mean(self, part: str) -> float:
        """The mean over ranks of a per-step figure (``compute``, ``flops``, ...)."""
        return statistics.fmean(float(getattr(r, part)) for r in self.ranks)

    def classes(self) -> tuple[OpClass, ...]:
        """The operator classes of the slowest rank (the one that sets the pace)."""
        return max(self.ranks, key=lambda r: r.step_seconds).classes


def analyse_files(paths: Iterable[str | Path]) -> WorkloadProfile:
    """Read and analyse the traces at ``paths`` (one per rank). Raises NoStepsError when there
    is none, TraceError for an unreadable one."""
    traces = [read_trace(p) for p in paths]
    if not traces:
        raise NoStepsError("no trace files")
    return WorkloadProfile(tuple(sorted((analyse(t) for t in traces), key=lambda r: r.rank)))


def _is_collective(names: pd.Series) -> pd.Series:
    lowered = names.str.lower()
    found = pd.Series(False, index=names.index)
    for word in _COLLECTIVE_WORDS:
        found |= lowered.str.contains(word, regex=False)
    return found


def _spans(frame: pd.DataFrame) -> timeline.Spans:
    return timeline.union(frame["start"].to_numpy(), frame["end"].to_numpy())


def _nesting(ops: pd.DataFrame) -> tuple[list[int], list[bool]]:
    """For each operator (rows of ``ops``, in order): the row of its parent (-1 at the top)
    and whether it has children, from containment on its thread."""
    parent = [-1] * len(ops)
    has_child = [False] * len(ops)
    order = ops.assign(_row=range(len(ops)), _neg=-ops["end"]).sort_values(
        ["pid", "tid", "start", "_neg"], kind="stable"
    )
    stack: list[int] = []
    thread: tuple[Any, Any] | None = None
    ends = ops["end"].to_numpy()
    for row, pid, tid, start in zip(
        order["_row"], order["pid"], order["tid"], order["start"], strict=True
    ):
        if (pid, tid) != thread:
            stack, thread = [], (pid, tid)
        while stack and ends[stack[-1]] <= start:
            stack.pop()
        if stack:
            parent[row] = stack[-1]
            has_child[stack[-1]] = True
        stack.append(row)
    return parent, has_child


def analyse(trace: Trace) -> RankProfile:
    """One rank's profile (see the module docstring). Raises NoStepsError when the trace has
    no operators."""
    events = trace.events
    annotations = events[events["cat"] == ANNOTATION]
    steps = annotations[annotations["name"].str.startswith(STEP_PREFIX)]
    ops = events[events["cat"].isin(OP_CATEGORIES)].reset_index(drop=True)
    if ops.empty:
        raise NoStepsError(f"{trace.path}: no operators were recorded")
    if steps.empty:
        lo, hi, count = float(ops["start"].min()), float(ops["end"].max()), 1
    else:
        lo, hi, count = float(steps["start"].min()), float(steps["end"].max()), len(steps)
    device = events[events["cat"].isin(("kernel", "gpu_memcpy", "gpu_memset"))]
    if not device.empty:
        # Device work lags the host: it belongs to the window when launched inside it.
        device = device[(device["start"] >= lo) & (device["start"] < hi)]
        hi = max(hi, float(device["end"].max())) if not device.empty else hi
    window = hi - lo
    in_window = ops[(ops["start"] >= lo) & (ops["start"] < hi)].reset_index(drop=True)
    parent, has_child = _nesting(in_window)
    loader = annotations[annotations["name"].str.contains("DataLoader", regex=False)]
    loader_tl = timeline.clip(_spans(loader), lo, hi)
    if trace.on_gpu:
        split = _device_split(device, lo, hi)
    else:
        split = _host_split(in_window, parent, loader_tl, lo, hi)
    compute_tl, comm_tl, copy_tl, kernels = split
    busy = timeline.merge(compute_tl, comm_tl, copy_tl)
    compute = timeline.length(compute_tl)
    comm_total = timeline.length(comm_tl)
    overlapped = timeline.length(timeline.intersect(comm_tl, compute_tl))
    comm = comm_total - overlapped
    copies = timeline.length(copy_tl) - timeline.length(
        timeline.intersect(copy_tl, timeline.merge(compute_tl, comm_tl))
    )
    loader_time = timeline.length(loader_tl)
    loader_idle = loader_time - timeline.length(timeline.intersect(loader_tl, busy))
    classes = _classes(in_window, parent, has_child, device if trace.on_gpu else None)
    durations = (kernels["end"] - kernels["start"]).to_numpy()
    per = 1.0 / count
    return RankProfile(
        rank=trace.rank,
        device=trace.device,
        steps=count,
        step_seconds=window * per,
        compute=compute * per,
        communication=comm * per,
        memory_copies=copies * per,
        idle=max(0.0, window - compute - comm - copies) * per,
        communication_total=comm_total * per,
        overlap=overlapped / comm_total if comm_total > 0 else None,
        data_loader=loader_time * per,
        data_loader_idle=max(0.0, loader_idle) * per,
        flops=sum(c.flops for c in classes) * per,
        bytes=sum(c.bytes for c in classes) * per,
        kernels_per_step=len(kernels) * per,
        median_kernel_seconds=float(np.median(durations)) if durations.size else 0.0,
        peak_memory_bytes=trace.peak_memory_bytes,
        top_kernels=_top(kernels, compute, per),
        classes=tuple(
            OpClass(
                c.name,
                c.kind,
                c.dtype,
                c.calls * per,
                c.seconds * per,
                c.flops * per,
                c.bytes * per,
            )
            for c in classes
        ),
    )


Split = tuple[timeline.Spans, timeline.Spans, timeline.Spans, pd.DataFrame]


def _device_split(device: pd.DataFrame, lo: float, hi: float) -> Split:
    kernels = device[device["cat"] == "kernel"]
    collective = _is_collective(kernels["name"])
    compute = kernels[~collective]
    return (
        timeline.clip(_spans(compute), lo, hi),
        timeline.clip(_spans(kernels[collective]), lo, hi),
        timeline.clip(_spans(device[device["cat"] != "kernel"]), lo, hi),
        compute,
    )


def _host_split(
    ops: pd.DataFrame, parent: Sequence[int], loader: timeline.Spans, lo: float, hi: float
) -> Split:
    top = ops[np.asarray(parent) < 0]
    collective = _is_collective(top["name"])
    comm_tl = timeline.clip(_spans(top[collective]), lo, hi)
    outside = timeline.merge(loader, comm_tl)
    ops_tl = timeline.clip(_spans(top[~collective]), lo, hi)
    compute_starts, compute_ends = _subtract(ops_tl, outside)
    leaves = ops[[not c for c in _children(ops, parent)]]
    return (compute_starts, compute_ends), comm_tl, timeline.EMPTY, leaves


def _children(ops: pd.DataFrame, parent: Sequence[int]) -> list[bool]:
    has = [False] * len(ops)
    for p in parent:
        if p >= 0:
            has[p] = True
    return has


def _subtract(a: timeline.Spans, b: timeline.Spans) -> timeline.Spans:
    """``a`` without the time in ``b``."""
    if b[0].size == 0 or a[0].size == 0:
        return a
    # The gaps of ``b`` within ``a``'s extent, intersected with ``a``.
    lo, hi = float(a[0][0]), float(a[1][-1])
    gap_starts = np.r_[lo, b[1]]
    gap_ends = np.r_[b[0], hi]
    return timeline.intersect(a, timeline.union(gap_starts, gap_ends))


@dataclass
class _Class:
    name: str
    kind: str
    dtype: str
    calls: float = 0.0
    seconds: float = 0.0
    flops: float = 0.0
    bytes: float = 0.0


def _classes(
    ops: pd.DataFrame,
    parent: Sequence[int],
    has_child: Sequence[bool],
    device: pd.DataFrame | None,
) -> list[_Class]:
    """Operator classes of the window: each counted product owns the time of everything
    below it; other time belongs to the operator that ran it (a leaf on the host, the
    launching operator on a GPU)."""
    names = ops["name"].tolist()
    dims = ops["dims"].tolist()
    types = ops["types"].tolist()
    counted = [counting.KIND.get(n) == counting.MATMUL for n in names]
    # Only the innermost counted operator counts: an outer one's work is its inner one's.
    inner_counted = list(counted)
    for row, is_counted in enumerate(counted):
        if is_counted:
            up = parent[row]
            while up >= 0:
                inner_counted[up] = False
                up = parent[up]
    owner = list(range(len(ops)))
    for row in range(len(ops)):
        up = row
        while up >= 0 and not inner_counted[up]:
            up = parent[up]
        if up >= 0:
            owner[row] = up
    time_of: dict[int, float] = {}
    if device is None:
        # On the host each operator's own time (less its children's) is its owner's.
        starts, ends = ops["start"].to_numpy(), ops["end"].to_numpy()
        own = ends - starts
        for row, up in enumerate(parent):
            if up >= 0:
                own[up] -= ends[row] - starts[row]
        for row in range(len(ops)):
            key = owner[row]
            time_of[key] = time_of.get(key, 0.0) + max(0.0, float(own[row]))
    else:
        by_ext = {ext: row for row, ext in enumerate(ops["ext"].tolist()) if ext is not None}
        kernels = device[device["cat"] == "kernel"]
        kernels = kernels[~_is_collective(kernels["name"])]
        for ext, start, end in zip(kernels["ext"], kernels["start"], kernels["end"], strict=True):
            row = by_ext.get(ext, -1)
            key = owner[row] if row >= 0 else -1
            time_of[key] = time_of.get(key, 0.0) + float(end - start)
    found: dict[tuple[str, str], _Class] = {}
    for key, seconds in time_of.items():
        if key < 0:
            entry = found.setdefault(
                ("(unattributed)", "-"), _Class("(unattributed)", "other", "-")
            )
            entry.seconds += seconds
            continue
        name = names[key]
        kind = counting.MATMUL if inner_counted[key] else counting.OTHER
        dtype = counting.dtype(types[key])
        entry = found.setdefault((name, dtype), _Class(name, kind, dtype))
        entry.calls += 1
        entry.seconds += seconds
        entry.flops += counting.flops(name, dims[key]) if kind == counting.MATMUL else 0.0
        # Bytes move where the work is: in a counted product, or in a leaf operator.
        if kind == counting.MATMUL or not has_child[key]:
            entry.bytes += counting.traffic(name, dims[key], types[key])
    return sorted(found.values(), key=lambda c: -c.seconds)


def _top(kernels: pd.DataFrame, compute: float, per: float) -> tuple[KernelStat, ...]:
    if kernels.empty:
        return ()
    grouped = (
        kernels.assign(seconds=kernels["end"] - kernels["start"])
        .groupby("name", sort=False)["seconds"]
        .agg(["count", "sum"])
        .sort_values("sum", ascending=False)
        .head(TOP_KERNELS)
    )
    total = compute if compute > 0 else float(grouped["sum"].sum()) or 1.0
    return tuple(
        KernelStat(
            str(name),
            float(row["count"]) * per,
            float(row["sum"]) * per,
            min(1.0, float(row["sum"]) / total),
        )
        for name, row in grouped.iterrows()
    )
