"""Readers for the Alibaba GPU cluster trace 2023 ("openb"): pod lists and node lists.

Source: alibaba/clusterdata ``cluster-trace-gpu-v2023`` (Weng et al., "Beware of Fragmentation",
USENIX ATC 2023). Each pod is one job of one task.

Pod mapping to ``JobSpec``:
- ``submit_time`` = ``creation_time`` (seconds from the trace start, kept as given); jobs are
  sorted by it (stable) and numbered 1..N in that order; ``name`` = the pod name;
- duration = ``deletion_time - scheduled_time`` for a pod that was scheduled, else
  ``deletion_time - creation_time`` (a Pending pod held nothing, so the time it waited is the only
  length the trace records); a duration of 0 or less becomes 1 second so every pod stays in the
  workload (one pod of the default list, a Pending pod deleted the second it was created);
- task: ``num_gpu`` 0 is CPU-only; 1 takes ``gpu_milli`` (460 is a share of one GPU, 1000 a whole
  one); above 1 asks for ``num_gpu`` whole GPUs in one task (the column's ``gpu_milli`` is then the
  per-GPU amount, always 1000, and is not used);
- ``flavors`` = the ``|``-separated ``gpu_spec`` with repeats dropped (the lists repeat models,
  e.g. ``V100M16|V100M32|V100M32``), empty = any; the models are alternatives of equal
  standing (``flavor_order`` False), not an order of preference;
- ``priority`` from ``qos``: LS 2, Guaranteed 2, Burstable 1, BE 0 (Kubernetes evicts BestEffort,
  then Burstable, then Guaranteed; Alibaba's latency-sensitive LS sits with Guaranteed);
  ``tenant`` = ``user`` = ``queue`` = ``qos`` in lower case.

``read_alibaba_tasks`` reads only the resource columns (``name, cpu_milli, memory_mib,
num_gpu, gpu_milli``, with ``gpu_spec`` and ``qos`` when present), in file order, for the
fragmentation experiment: every openb variant, ``multigpu50`` included, has them.

Nodes: ``sn,cpu_milli,memory_mib,gpu,model``; an empty model is a CPU-only node of flavor
``cpu``. Every bad row raises ``TraceError`` naming the file, line (header = 1) and column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from allot.core.model import MILLI_PER_GPU, Cluster, JobSpec, Node, Resources, SpecError
from allot.sim.workload import TraceError, TraceJob

POD_COLUMNS = (
    "name",
    "cpu_milli",
    "memory_mib",
    "num_gpu",
    "gpu_milli",
    "gpu_spec",
    "qos",
    "pod_phase",
    "creation_time",
    "deletion_time",
    "scheduled_time",
)
TASK_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
QOS_PRIORITY = {"LS": 2, "Guaranteed": 2, "Burstable": 1, "BE": 0}
CPU_FLAVOR = "cpu"
MIN_DURATION = 1.0


class _Row:
    """One CSV row with typed access by column name; errors name the file, line and column."""

    __slots__ = ("_index", "line", "source", "values")

    def __init__(self, source: str, line: int, values: list[str], index: dict[str, int]) -> None:
        self.source = source
        self.line = line
        self.values = values
        self._index = index

    def error(self, column: str, rule: str) -> TraceError:
        return TraceError(self.source, rule, line=self.line, field=column)

    def text(self, column: str) -> str:
        return self.values[self._index[column]].strip()

    def has(self, column: str) -> bool:
        return column in self._index

    def integer(self, column: str, *, minimum: int = 0) -> int:
        text = self.text(column)
        try:
            value = int(text)
        except ValueError:
            raise self.error(column, f"must be a whole number, got {text!r}") from None
        if value < minimum:
            raise self.error(column, f"must be >= {minimum}, got {value}")
        return value

    def seconds(self, column: str) -> float | None:
        text = self.text(column)
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise self.error(column, f"must be a number of seconds, got {text!r}") from None
        if not math.isfinite(value) or value < 0:
            raise self.error(column, f"must be a finite number of seconds >= 0, got {text!r}")
        return value


def _rows(path: str | Path, columns: Sequence[str], hint: str = "") -> Iterator[_Row]:
    """The rows of the CSV at ``path`` after checking that its header has ``columns``."""
    source = str(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise TraceError(source, "the file is empty; expected a header", line=1)
            index = {name.strip(): i for i, name in enumerate(header)}
            missing = [name for name in columns if name not in index]
            if missing:
                raise TraceError(
                    source,
                    f"missing column(s) {', '.join(missing)}; the header has {', '.join(header)}"
                    + hint,
                    line=1,
                    field=missing[0],
                )
            width = len(header)
            for values in reader:
                if not values:
                    continue
                if len(values) != width:
                    raise TraceError(
                        source,
                        f"has {len(values)} fields but the header has {width}",
                        line=reader.line_num,
                    )
                yield _Row(source, reader.line_num, values, index)
    except FileNotFoundError:
        raise TraceError(source, "no such file") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TraceError(source, f"cannot read as CSV: {exc}") from None


def read_alibaba_pods(path: str | Path, *, limit: int | None = None) -> list[TraceJob]:
    """Read an openb pod list; ``limit`` keeps the first ``limit`` jobs by submit time.

    The ``openb_pod_list_multigpu50.csv`` variant has no time columns and is rejected.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit: must be >= 0, got {limit}")
    hint = (
        " (the openb_pod_list_multigpu50.csv variant has no creation, deletion or scheduling"
        " times, so it cannot be replayed)"
    )
    parsed = [_pod(row) for row in _rows(path, POD_COLUMNS, hint)]
    parsed.sort(key=lambda item: item[0].submit_time)
    if limit is not None:
        parsed = parsed[:limit]
    return [
        TraceJob(replace(spec, id=job_id), duration)
        for job_id, (spec, duration) in enumerate(parsed, start=1)
    ]


def read_alibaba_tasks(path: str | Path) -> list[JobSpec]:
    """Read the tasks of an openb pod list in file order, numbered 1..N, times ignored."""
    specs: list[JobSpec] = []
    for row in _rows(path, TASK_COLUMNS):
        task, flavors = _task(row)
        qos = row.text("qos") if row.has("qos") else "LS"
        if qos not in QOS_PRIORITY:
            raise row.error("qos", f"must be one of {', '.join(QOS_PRIORITY)}, got {qos!r}")
        tenant = qos.lower()
        specs.append(
            JobSpec(
                id=len(specs) + 1,
                tenant=tenant,
                user=tenant,
                queue=tenant,
                tasks=(task,),
                flavors=flavors,
                flavor_order=False,
                priority=QOS_PRIORITY[qos],
                name=row.text("name"),
            )
        )
    return specs


def _task(row: _Row) -> tuple[Resources, tuple[str, ...]]:
    """The task and the accepted GPU models of one pod row."""
    cpu_milli = row.integer("cpu_milli")
    memory_mib = row.integer("memory_mib")
    num_gpu = row.integer("num_gpu")
    if num_gpu == 0:
        gpu_milli = 0
    elif num_gpu == 1:
        gpu_milli = row.integer("gpu_milli", minimum=1)
        if gpu_milli > MILLI_PER_GPU:
            raise row.error(
                "gpu_milli", f"must be 1..{MILLI_PER_GPU} for a one-GPU pod, got {gpu_milli}"
            )
    else:
        gpu_milli = num_gpu * MILLI_PER_GPU
    spec_text = row.text("gpu_spec") if row.has("gpu_spec") else ""
    flavors = tuple(dict.fromkeys(spec_text.split("|"))) if spec_text else ()
    if not all(flavors):
        raise row.error("gpu_spec", f"must be GPU models separated by '|', got {spec_text!r}")
    return Resources(gpu_milli, cpu_milli, memory_mib), flavors


def _pod(row: _Row) -> tuple[JobSpec, float]:
    """The spec (with a placeholder id) and the duration of one pod row."""
    name = row.text("name")
    task, flavors = _task(row)
    qos = row.text("qos")
    if qos not in QOS_PRIORITY:
        raise row.error("qos", f"must be one of {', '.join(QOS_PRIORITY)}, got {qos!r}")
    created = row.seconds("creation_time")
    deleted = row.seconds("deletion_time")
    if created is None:
        raise row.error("creation_time", "must not be empty")
    if deleted is None:
        raise row.error("deletion_time", "must not be empty")
    scheduled = row.seconds("scheduled_time")
    duration = deleted - (created if scheduled is None else scheduled)
    tenant = qos.lower()
    spec = JobSpec(
        id=0,
        tenant=tenant,
        user=tenant,
        queue=tenant,
        tasks=(task,),
        flavors=flavors,
        flavor_order=False,
        priority=QOS_PRIORITY[qos],
        submit_time=created,
        name=name,
    )
    return spec, max(duration, MIN_DURATION)


def read_alibaba_nodes(path: str | Path) -> Cluster:
    """Read an openb node list into a ``Cluster`` named after the file, nodes in file order."""
    nodes: list[Node] = []
    lines: dict[str, int] = {}
    for row in _rows(path, NODE_COLUMNS):
        name = row.text("sn")
        if not name:
            raise row.error("sn", "must not be empty")
        if name in lines:
            raise row.error("sn", f"node {name!r} is already listed on line {lines[name]}")
        lines[name] = row.line
        gpus = row.integer("gpu")
        model = row.text("model")
        if gpus > 0 and not model:
            raise row.error("model", f"must name the GPU model of a node with {gpus} GPUs")
        try:
            node = Node(
                name,
                model or CPU_FLAVOR,
                gpus,
                row.integer("cpu_milli"),
                row.integer("memory_mib"),
            )
        except SpecError as exc:
            raise row.error(exc.field, exc.rule) from None
        nodes.append(node)
    return Cluster(tuple(nodes), name=Path(path).stem)
