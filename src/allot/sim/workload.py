"""A workload for the simulator: jobs with the run time the trace recorded.

``TraceJob`` pairs a core ``JobSpec`` (what was asked for) with ``duration`` (how long the job
actually ran, in seconds). The scheduler only ever sees the spec; the simulator uses the
duration to schedule the job's completion. ``TraceError`` is raised by every reader for bad
input and names the file, the line (1-based, counting the header) and the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from allot.config.errors import ConfigError
from allot.core.model import JobSpec


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One job of a workload: the spec the scheduler sees and the run time the trace recorded."""

    spec: JobSpec
    duration: float


class TraceError(ConfigError):
    """Bad input in a trace file; the message names the file, line and field."""


CHECKPOINTABLE = ("keep", "all", "none")


def with_checkpointing(workload: Sequence[TraceJob], mode: str) -> list[TraceJob]:
    """Mark which jobs can checkpoint: ``keep`` (what the trace says; Philly says nothing, so
    none), ``all`` (as Tiresias assumes) or ``none``."""
    if mode == "keep":
        return list(workload)
    if mode not in CHECKPOINTABLE:
        raise ValueError(f"checkpointable: unknown mode {mode!r}; known: keep, all, none")
    flag = mode == "all"
    return [replace(j, spec=replace(j.spec, checkpointable=flag)) for j in workload]
