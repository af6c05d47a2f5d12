"""Reading a PyTorch profiler (Kineto) trace: the JSON ``export_chrome_trace`` writes, plain or
gzipped, into one table of events and what the trace says about where it was taken.

Event categories used (Kineto's names): ``cpu_op`` (an operator on a host thread, with input
shapes and types when ``record_shapes`` was on), ``user_annotation`` (``ProfilerStep#N``, the
data loader's ``__next__``, ``record_function`` ranges), ``kernel``, ``gpu_memcpy`` and
``gpu_memset`` (device activity, linked to the operator that launched it by ``External id``),
and ``[memory]`` instant events (allocator totals, when ``profile_memory`` was on).

Invariants: times are converted to seconds; a file that is not a Kineto trace raises
``TraceError`` naming the file and what is wrong; nothing here needs PyTorch.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

DEVICE_CATEGORIES = frozenset({"kernel", "gpu_memcpy", "gpu_memset"})
OP_CATEGORIES = frozenset({"cpu_op", "operator"})
ANNOTATION = "user_annotation"
US = 1e-6  # Kineto's time unit is the microsecond
_RANK_IN_NAME = re.compile(r"rank[-_]?(\d+)")

COLUMNS = ("cat", "name", "pid", "tid", "start", "end", "ext", "dims", "types")


class TraceError(ValueError):
    """A file that is not a readable profiler trace."""


@dataclass(frozen=True)
class Trace:
    """One process's trace: its events (a DataFrame with ``COLUMNS``), its rank, the device it
    ran on (``cpu`` when no GPU activity was recorded) and its peak allocated memory."""

    path: str
    rank: int
    device: str
    events: pd.DataFrame
    peak_memory_bytes: int | None

    @property
    def on_gpu(self) -> bool:
        """True when the trace holds device (GPU) activity."""
        return bool(self.events["cat"].isin(DEVICE_CATEGORIES).any())


def _load(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        data = json.loads(raw)
    except (OSError, ValueError, EOFError) as exc:
        raise TraceError(f"{path}: not a readable profiler trace ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("traceEvents"), list):
        raise TraceError(f"{path}: not a profiler trace (no traceEvents list)")
    return data


def read_trace(path: str | Path, rank: int | None = None) -> Trace:
    """The trace at ``path``. Its rank is ``rank`` when given, else the trace's own
    (``distributedInfo``), else a ``rankN`` in the file name, else 0."""
    path = Path(path)
    data = _load(path)
    rows: list[tuple[Any, ...]] = []
    peak: dict[bool, int] = {}
    for event in data["traceEvents"]:
        if not isinstance(event, dict):
            continue
        phase = event.get("ph")
        args = event.get("args") or {}
        if phase == "X":
            ts = event.get("ts")
            dur = event.get("dur", 0)
            if not isinstance(ts, int | float) or not isinstance(dur, int | float):
                continue
            start = float(ts) * US
            rows.append(
                (
                    event.get("cat", ""),
                    str(event.get("name", "")),
                    event.get("pid"),
                    event.get("tid"),
                    start,
                    start + float(dur) * US,
                    args.get("External id"),
                    args.get("Input Dims"),
                    args.get("Input type"),
                )
            )
        elif phase == "i" and event.get("name") == "[memory]":
            total = args.get("Total Allocated")
            if isinstance(total, int | float):
                on_device = args.get("Device Type", 0) != 0
                peak[on_device] = max(peak.get(on_device, 0), int(total))
    events = pd.DataFrame(rows, columns=list(COLUMNS))
    device = _device_name(data, events)
    on_device = device != "cpu"
    return Trace(
        str(path),
        _rank(data, path) if rank is None else rank,
        device,
        events,
        peak.get(on_device),
    )


def _device_name(data: dict[str, Any], events: pd.DataFrame) -> str:
    if not events["cat"].isin(DEVICE_CATEGORIES).any():
        return "cpu"
    for props in data.get("deviceProperties") or ():
        if isinstance(props, dict) and props.get("name"):
            return str(props["name"])
    return "gpu"


def _rank(data: dict[str, Any], path: Path) -> int:
    info = data.get("distributedInfo")
    if isinstance(info, dict) and isinstance(info.get("rank"), int):
        return int(info["rank"])
    found = _RANK_IN_NAME.search(path.name)
    return int(found.group(1)) if found else 0


def trace_files(folder: str | Path) -> list[Path]:
    """The trace files in ``folder`` (``*.json`` and ``*.json.gz``, not the capture's
    ``meta.json``), sorted by name."""
    root = Path(folder)
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if p.is_file()
        and (p.name.endswith(".json") or p.name.endswith(".json.gz"))
        and not p.name.startswith("meta")
    )
