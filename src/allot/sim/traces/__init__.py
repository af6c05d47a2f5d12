"""Workload readers: every trace format the simulator replays, behind one ``load_trace``.

Formats: ``philly`` (Microsoft Philly per-job CSV), ``alibaba2023`` (Alibaba openb pod list),
``allot`` (allot's own CSV/Parquet format, ``docs/trace-format.md``) and ``synthetic`` (a YAML
spec of distributions). Every reader returns ``TraceJob`` values sorted by submit time, and
raises ``TraceError`` (file, line, field) for bad input.
"""

from __future__ import annotations

from pathlib import Path

from allot.sim.traces.alibaba import read_alibaba_nodes, read_alibaba_pods
from allot.sim.traces.allot_format import read_allot_trace, write_allot_trace
from allot.sim.traces.philly import read_philly
from allot.sim.traces.synthetic import SyntheticSpec, generate, load_synthetic_spec
from allot.sim.workload import TraceError, TraceJob

TRACE_FORMATS = ("philly", "alibaba2023", "allot", "synthetic")

__all__ = [
    "TRACE_FORMATS",
    "SyntheticSpec",
    "generate",
    "load_synthetic_spec",
    "load_trace",
    "read_alibaba_nodes",
    "read_alibaba_pods",
    "read_allot_trace",
    "read_philly",
    "write_allot_trace",
]


def load_trace(path: str | Path, fmt: str, *, limit: int | None = None) -> list[TraceJob]:
    """Read the workload at ``path`` in format ``fmt`` (one of ``TRACE_FORMATS``).

    ``limit`` keeps the first ``limit`` jobs by submit time. Raises ``TraceError`` for an
    unknown format, a missing file or bad content.
    """
    source = str(path)
    if fmt not in TRACE_FORMATS:
        raise TraceError(
            source,
            f"unknown trace format {fmt!r}; known: {', '.join(TRACE_FORMATS)}",
            field="format",
        )
    if not Path(path).is_file():
        raise TraceError(source, "no such file")
    if fmt == "philly":
        return read_philly(path, limit=limit)
    if fmt == "alibaba2023":
        return read_alibaba_pods(path, limit=limit)
    if fmt == "allot":
        return read_allot_trace(path, limit=limit)
    return generate(load_synthetic_spec(path), limit=limit)
