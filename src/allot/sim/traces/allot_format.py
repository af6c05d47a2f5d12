"""allot's own trace format: one job per row, as CSV or Parquet (chosen by the file extension).

The format is documented in ``docs/trace-format.md``. Required columns: ``submit_time``,
``duration``, ``num_tasks``, ``gpu_milli_per_task``; optional: ``job_id``, ``tenant``, ``user``,
``queue``, ``priority``, ``cpu_milli_per_task``, ``memory_mib_per_task``, ``flavors``,
``runtime_estimate``, ``time_limit``, ``name``, ``checkpointable``, ``preemptible``. An empty cell
(or a Parquet null / NaN) takes the column's default. Any other column is an error, so a typo
cannot silently drop a setting.

Invariants: jobs come back sorted by ``submit_time`` (stable); job ids are unique (default: the
row's position, 1..N, counted before sorting); every task of a job is identical (the format has
one set of per-task columns). Errors name the file, then the line for CSV (header = line 1) or
``row N`` for Parquet (first data row = row 1), and the column. ``write_allot_trace`` writes the
same format, all or nothing.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from allot.core.model import MILLI_PER_GPU, JobSpec, Resources, SpecError, gang
from allot.sim.workload import TraceError, TraceJob

REQUIRED_COLUMNS = ("submit_time", "duration", "num_tasks", "gpu_milli_per_task")
OPTIONAL_COLUMNS = (
    "job_id",
    "tenant",
    "user",
    "queue",
    "priority",
    "cpu_milli_per_task",
    "memory_mib_per_task",
    "flavors",
    "runtime_estimate",
    "time_limit",
    "name",
    "checkpointable",
    "preemptible",
)
DEFAULT_TENANT = "default"
DEFAULT_CPU_MILLI = 1000
DEFAULT_MEMORY_MIB = 4096
FLAVOR_SEPARATOR = "|"
SUFFIXES = (".csv", ".parquet")

# Column order and Parquet types of a written trace.
_COLUMN_TYPES = {
    "job_id": pa.int64(),
    "submit_time": pa.float64(),
    "duration": pa.float64(),
    "num_tasks": pa.int64(),
    "gpu_milli_per_task": pa.int64(),
    "cpu_milli_per_task": pa.int64(),
    "memory_mib_per_task": pa.int64(),
    "tenant": pa.string(),
    "user": pa.string(),
    "queue": pa.string(),
    "priority": pa.int64(),
    "flavors": pa.string(),
    "runtime_estimate": pa.float64(),
    "time_limit": pa.float64(),
    "name": pa.string(),
    "checkpointable": pa.bool_(),
    "preemptible": pa.bool_(),
}
_WRITE_ORDER = tuple(_COLUMN_TYPES)
_PARQUET_SCHEMA = pa.schema(list(_COLUMN_TYPES.items()))


class _Cells:
    """One row's values by column: text from CSV, typed values from Parquet."""

    __slots__ = ("line", "row", "source", "values")

    def __init__(
        self, source: str, values: Mapping[str, object], *, line: int | None, row: int | None
    ) -> None:
        self.source = source
        self.values = values
        self.line = line
        self.row = row

    def error(self, column: str, rule: str) -> TraceError:
        if self.row is not None:
            return TraceError(f"{self.source} row {self.row}", rule, field=column)
        return TraceError(self.source, rule, line=self.line, field=column)

    def where(self) -> str:
        return f"row {self.row}" if self.row is not None else f"line {self.line}"

    def raw(self, column: str) -> object:
        """The cell, or None when the column is absent or the cell is empty."""
        value = self.values.get(column)
        if isinstance(value, str):
            value = value.strip()
            return value or None
        if isinstance(value, float) and math.isnan(value):
            return None
        return value

    def number(self, column: str) -> float:
        """A required finite number."""
        number = self.optional_number(column)
        if number is None:
            raise self.error(column, "is required")
        return number

    def optional_number(self, column: str) -> float | None:
        """A finite number, or None for an empty cell."""
        value = self.raw(column)
        if value is None:
            return None
        number = _float_or_nan(value)
        if not math.isfinite(number):
            raise self.error(column, f"must be a finite number, got {value!r}")
        return number

    def integer(
        self, column: str, *, default: int | None = None, minimum: int | None = None
    ) -> int:
        """A whole number (``3`` or ``3.0``); ``default`` for an empty cell, else required."""
        value = self.raw(column)
        if value is None:
            if default is None:
                raise self.error(column, "is required")
            return default
        number = _whole_or_none(value)
        if number is None:
            raise self.error(column, f"must be a whole number, got {value!r}")
        if minimum is not None and number < minimum:
            raise self.error(column, f"must be >= {minimum}, got {number}")
        return number

    def text(self, column: str, default: str) -> str:
        value = self.raw(column)
        return default if value is None else str(value)

    def boolean(self, column: str, default: bool) -> bool:
        value = self.raw(column)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise self.error(column, f"must be true or false, got {value!r}")


def _float_or_nan(value: object) -> float:
    """``value`` as a float, NaN when it is not a number (so one finiteness check rejects both)."""
    if isinstance(value, bool):
        return math.nan
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


def _whole_or_none(value: object) -> int | None:
    """``value`` as an int when it is a whole number (int, integral float or such text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    number = _float_or_nan(value)
    return int(number) if number.is_integer() else None


def read_allot_trace(path: str | Path, *, limit: int | None = None) -> list[TraceJob]:
    """Read an allot trace (``.csv`` or ``.parquet``); ``limit`` keeps the first jobs by submit
    time."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit: must be >= 0, got {limit}")
    source = str(path)
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise TraceError(source, f"must end in {' or '.join(SUFFIXES)}, got {suffix or 'none'!r}")
    if not Path(path).is_file():
        raise TraceError(source, "no such file")
    rows = _parquet_rows(source) if suffix == ".parquet" else _csv_rows(source)
    jobs: list[TraceJob] = []
    seen: dict[int, str] = {}
    for position, cells in enumerate(rows, start=1):
        job = _job(cells, position)
        if job.spec.id in seen:
            raise cells.error(
                "job_id", f"job id {job.spec.id} is already used on {seen[job.spec.id]}"
            )
        seen[job.spec.id] = cells.where()
        jobs.append(job)
    jobs.sort(key=lambda job: job.spec.submit_time)
    return jobs if limit is None else jobs[:limit]


def _check_header(source: str, columns: list[str], *, line: int | None) -> None:
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    seen: set[str] = set()
    for column in columns:
        if column not in known:
            raise TraceError(
                source,
                f"unknown column; allowed: {', '.join((*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS))}",
                line=line,
                field=column,
            )
        if column in seen:
            raise TraceError(source, "the column appears twice", line=line, field=column)
        seen.add(column)
    for column in REQUIRED_COLUMNS:
        if column not in seen:
            raise TraceError(source, "required column is missing", line=line, field=column)


def _csv_rows(source: str) -> Iterator[_Cells]:
    try:
        with open(source, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            if not header:
                raise TraceError(source, "the file is empty; expected a header", line=1)
            _check_header(source, header, line=1)
            for values in reader:
                if not values:
                    continue
                if len(values) != len(header):
                    raise TraceError(
                        source,
                        f"has {len(values)} fields but the header has {len(header)}",
                        line=reader.line_num,
                    )
                yield _Cells(
                    source, dict(zip(header, values, strict=True)), line=reader.line_num, row=None
                )
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TraceError(source, f"cannot read as CSV: {exc}") from None


def _parquet_rows(source: str) -> Iterator[_Cells]:
    try:
        table = pq.read_table(source)
    except (OSError, pa.ArrowException) as exc:
        raise TraceError(source, f"cannot read as Parquet: {exc}") from None
    _check_header(source, list(table.column_names), line=None)
    for row, values in enumerate(table.to_pylist(), start=1):
        yield _Cells(source, values, line=None, row=row)


def _job(cells: _Cells, position: int) -> TraceJob:
    """One row as a job; ``position`` (1-based, in file order) is the default id."""
    submit_time = cells.number("submit_time")
    if submit_time < 0:
        raise cells.error("submit_time", f"must be >= 0 seconds, got {submit_time}")
    duration = cells.number("duration")
    if duration <= 0:
        raise cells.error("duration", f"must be > 0 seconds, got {duration}")
    gpu_milli = cells.integer("gpu_milli_per_task", minimum=0)
    if gpu_milli >= MILLI_PER_GPU and gpu_milli % MILLI_PER_GPU:
        raise cells.error(
            "gpu_milli_per_task",
            f"must be below {MILLI_PER_GPU} (a share of one GPU) or a multiple of "
            f"{MILLI_PER_GPU} (whole GPUs), got {gpu_milli}",
        )
    task = Resources(
        gpu_milli,
        cells.integer("cpu_milli_per_task", default=DEFAULT_CPU_MILLI, minimum=0),
        cells.integer("memory_mib_per_task", default=DEFAULT_MEMORY_MIB, minimum=0),
    )
    tasks = gang(cells.integer("num_tasks", minimum=1), task)
    tenant = cells.text("tenant", DEFAULT_TENANT)
    optional_seconds: dict[str, float | None] = {}
    for column in ("runtime_estimate", "time_limit"):
        seconds = cells.optional_number(column)
        if seconds is not None and seconds <= 0:
            raise cells.error(column, f"must be > 0 seconds when given, got {seconds}")
        optional_seconds[column] = seconds
    try:
        spec = JobSpec(
            id=cells.integer("job_id", default=position, minimum=1),
            tenant=tenant,
            user=cells.text("user", tenant),
            queue=cells.text("queue", tenant),
            tasks=tasks,
            flavors=_flavors(cells),
            priority=cells.integer("priority", default=0),
            submit_time=submit_time,
            runtime_estimate=optional_seconds["runtime_estimate"],
            time_limit=optional_seconds["time_limit"],
            name=cells.text("name", ""),
            checkpointable=cells.boolean("checkpointable", False),
            preemptible=cells.boolean("preemptible", True),
        )
    except SpecError as exc:
        raise cells.error(exc.field, exc.rule) from None
    return TraceJob(spec, duration)


def _flavors(cells: _Cells) -> tuple[str, ...]:
    text = cells.text("flavors", "")
    if not text:
        return ()
    flavors = tuple(part.strip() for part in text.split(FLAVOR_SEPARATOR))
    if not all(flavors):
        raise cells.error("flavors", f"must be flavor names separated by '|', got {text!r}")
    if len(set(flavors)) != len(flavors):
        raise cells.error("flavors", f"lists a flavor twice: {text!r}")
    return flavors


def write_allot_trace(jobs: Iterable[TraceJob], path: str | Path) -> None:
    """Write ``jobs`` as an allot trace (``.csv`` or ``.parquet`` by extension).

    Raises ``ValueError`` for a job whose tasks differ (the format holds one task shape per job)
    or a name the format cannot hold; the file is replaced only once every row is ready.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"path: must end in {' or '.join(SUFFIXES)}, got {str(path)!r}")
    columns: dict[str, list[object]] = {name: [] for name in _WRITE_ORDER}
    for job in jobs:
        for name, value in _row(job).items():
            columns[name].append(value)
    partial = target.with_name(target.name + ".partial")
    try:
        if suffix == ".parquet":
            pq.write_table(pa.table(columns, schema=_PARQUET_SCHEMA), partial)
        else:
            _write_csv(columns, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _row(job: TraceJob) -> dict[str, object]:
    spec = job.spec
    task = spec.tasks[0]
    if any(other != task for other in spec.tasks):
        raise ValueError(f"job {spec.id}: tasks differ; the allot format holds one task shape")
    if any(FLAVOR_SEPARATOR in flavor for flavor in spec.flavors):
        raise ValueError(f"job {spec.id}: a flavor contains {FLAVOR_SEPARATOR!r}")
    return {
        "job_id": spec.id,
        "submit_time": spec.submit_time,
        "duration": job.duration,
        "num_tasks": len(spec.tasks),
        "gpu_milli_per_task": task.gpu_milli,
        "cpu_milli_per_task": task.cpu_milli,
        "memory_mib_per_task": task.memory_mib,
        "tenant": spec.tenant,
        "user": spec.user,
        "queue": spec.queue,
        "priority": spec.priority,
        "flavors": FLAVOR_SEPARATOR.join(spec.flavors),
        "runtime_estimate": spec.runtime_estimate,
        "time_limit": spec.time_limit,
        "name": spec.name,
        "checkpointable": spec.checkpointable,
        "preemptible": spec.preemptible,
    }


def _write_csv(columns: dict[str, list[object]], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(_WRITE_ORDER)
        for values in zip(*(columns[name] for name in _WRITE_ORDER), strict=True):
            writer.writerow(_csv_text(value) for value in values)


def _csv_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # Whole seconds read better without ".0"; anything else keeps repr's exact digits.
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return str(value)
