"""Reader for the Microsoft Philly trace (per-job table: ``timestamp,duration,num_gpus,...``).

Source: msr-fiddle/philly-traces, as the per-job table of the Sia artifact (see
``shared/traces/README.md``). Rows are not in time order; the reader sorts them by timestamp
(stable, so equal timestamps keep file order) and numbers the jobs 1..N in that order.

Mapping to ``JobSpec``:
- ``submit_time``: seconds since the earliest timestamp in the file;
- ``tenant`` = ``user`` = ``queue`` = the ``cluster`` column (Philly's virtual cluster, a team);
- a job of n GPUs is a gang of n / s tasks of s GPUs, s being the largest power of two that
  divides n and is at most ``max_gpus_per_task`` (``gang_shape``), because Philly machines had
  2, 4 or 8 GPUs and a job above 8 spanned machines;
- each task gets CPU and memory in proportion to its GPUs; estimates and limits stay unset.

Every bad row raises ``TraceError`` with the file, the line (header = line 1) and the column.
"""

from __future__ import annotations

import csv
import math
from datetime import datetime
from pathlib import Path

from allot.core.model import MILLI_PER_GPU, JobSpec, Resources, gang
from allot.sim.workload import TraceError, TraceJob

PHILLY_COLUMNS = ("timestamp", "duration", "num_gpus", "cluster")


def gang_shape(num_gpus: int, max_gpus_per_task: int) -> tuple[int, int]:
    """Split ``num_gpus`` whole GPUs into (task count, GPUs per task).

    GPUs per task is the largest power of two dividing ``num_gpus`` that is at most
    ``max_gpus_per_task``: 12 -> (3, 4), 24 -> (3, 8), 128 -> (16, 8), 2 -> (1, 2).
    """
    if num_gpus < 1:
        raise ValueError(f"num_gpus: must be >= 1, got {num_gpus}")
    if max_gpus_per_task < 1:
        raise ValueError(f"max_gpus_per_task: must be >= 1, got {max_gpus_per_task}")
    per_task = num_gpus & -num_gpus  # lowest set bit: the largest power of two dividing n
    while per_task > max_gpus_per_task:
        per_task //= 2
    return num_gpus // per_task, per_task


def read_philly(
    path: str | Path,
    *,
    limit: int | None = None,
    max_gpus_per_task: int = 8,
    cpu_milli_per_gpu: int = 4000,
    memory_mib_per_gpu: int = 32768,
) -> list[TraceJob]:
    """Read a Philly per-job CSV; ``limit`` keeps the first ``limit`` jobs by submit time."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit: must be >= 0, got {limit}")
    if max_gpus_per_task < 1:
        raise ValueError(f"max_gpus_per_task: must be >= 1, got {max_gpus_per_task}")
    for name, value in (
        ("cpu_milli_per_gpu", cpu_milli_per_gpu),
        ("memory_mib_per_gpu", memory_mib_per_gpu),
    ):
        if value < 0:
            raise ValueError(f"{name}: must be >= 0, got {value}")
    rows = _read_rows(path)
    rows.sort(key=lambda row: row[0])
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        return []
    earliest = rows[0][0]
    tasks_by_size: dict[int, tuple[Resources, ...]] = {}
    jobs: list[TraceJob] = []
    for job_id, (submitted, duration, num_gpus, team) in enumerate(rows, start=1):
        tasks = tasks_by_size.get(num_gpus)
        if tasks is None:
            count, per_task = gang_shape(num_gpus, max_gpus_per_task)
            task = Resources(
                per_task * MILLI_PER_GPU,
                per_task * cpu_milli_per_gpu,
                per_task * memory_mib_per_gpu,
            )
            tasks = tasks_by_size[num_gpus] = gang(count, task)
        spec = JobSpec(
            id=job_id,
            tenant=team,
            user=team,
            queue=team,
            tasks=tasks,
            submit_time=(submitted - earliest).total_seconds(),
        )
        jobs.append(TraceJob(spec, duration))
    return jobs


def _read_rows(path: str | Path) -> list[tuple[datetime, float, int, str]]:
    """The validated (timestamp, duration, num_gpus, cluster) of every row, in file order."""
    source = str(path)
    rows: list[tuple[datetime, float, int, str]] = []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise TraceError(source, "the file is empty; expected a header", line=1)
            index = {name.strip(): i for i, name in enumerate(header)}
            missing = [name for name in PHILLY_COLUMNS if name not in index]
            if missing:
                raise TraceError(
                    source,
                    f"missing column(s) {', '.join(missing)}; the header has {', '.join(header)}",
                    line=1,
                    field=missing[0],
                )
            at_time, at_duration, at_gpus, at_cluster = (index[n] for n in PHILLY_COLUMNS)
            width = len(header)
            for row in reader:
                if not row:
                    continue
                line = reader.line_num
                if len(row) != width:
                    raise TraceError(
                        source, f"has {len(row)} fields but the header has {width}", line=line
                    )
                rows.append(
                    (
                        _timestamp(row[at_time], source, line),
                        _duration(row[at_duration], source, line),
                        _num_gpus(row[at_gpus], source, line),
                        _team(row[at_cluster], source, line),
                    )
                )
    except FileNotFoundError:
        raise TraceError(source, "no such file") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TraceError(source, f"cannot read as CSV: {exc}") from None
    return rows


def _timestamp(text: str, source: str, line: int) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TraceError(
            source,
            f"must be a time like 2017-10-09 07:01:55, got {text!r}",
            line=line,
            field="timestamp",
        ) from None
    if value.tzinfo is not None:
        # Naive and zoned times cannot be subtracted; Philly times carry no zone.
        raise TraceError(
            source, f"must not carry a time zone, got {text!r}", line=line, field="timestamp"
        )
    return value


def _duration(text: str, source: str, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(
            source, f"must be a number of seconds, got {text!r}", line=line, field="duration"
        ) from None
    if not (value > 0 and math.isfinite(value)):
        raise TraceError(source, f"must be > 0 seconds, got {text!r}", line=line, field="duration")
    return value


def _num_gpus(text: str, source: str, line: int) -> int:
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not number.is_integer():
            raise TraceError(
                source, f"must be a whole number, got {text!r}", line=line, field="num_gpus"
            ) from None
        value = int(number)
    if value < 1:
        raise TraceError(source, f"must be >= 1, got {text!r}", line=line, field="num_gpus")
    return value


def _team(text: str, source: str, line: int) -> str:
    value = text.strip()
    if not value:
        raise TraceError(source, "must not be empty", line=line, field="cluster")
    return value
