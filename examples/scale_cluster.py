"""Scale a cluster file down to the load of a trace, keeping its proportions: how
``cluster-alibaba2023-scaled.yaml`` is made from ``cluster-alibaba2023.yaml``.

The rule, so that the result is derived rather than tuned:

1. the factor is the cluster's GPUs over the trace's peak GPU demand: the most GPUs its jobs
   would hold at once if each started the moment it was submitted (``--factor`` gives one
   instead);
2. each node group keeps its count divided by the factor, rounded to the nearest whole number
   (halves up), so the groups keep their proportions;
3. a GPU flavor that would be left with no node keeps one node of its group with the most GPUs
   (then CPUs, then memory), so jobs that ask for that flavor, up to a whole node of it, can
   still run.

A cluster that holds about the trace's peak demand queues jobs when the trace is busy and
leaves them alone when it is quiet, so scheduling policies differ where they matter.

    python examples/scale_cluster.py examples/cluster-alibaba2023.yaml \\
        --trace ../shared/traces/alibaba2023/openb_pod_list_default.csv \\
        --trace-format alibaba2023 --out examples/cluster-alibaba2023-scaled.yaml
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from allot.config.errors import ConfigError
from allot.sim.cluster import load_cluster
from allot.sim.traces import TRACE_FORMATS, load_trace
from allot.sim.workload import TraceError, TraceJob

_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


def peak_gpu_demand(jobs: Iterable[TraceJob]) -> float:
    """The most GPUs ``jobs`` hold at once when each runs from its submit time for its
    duration (a job that ends frees its GPUs before one submitted at that instant takes any)."""
    changes: list[tuple[float, int, int]] = []
    for job in jobs:
        milli = sum(task.gpu_milli for task in job.spec.tasks)
        changes.append((job.spec.submit_time, 1, milli))
        changes.append((job.spec.submit_time + job.duration, 0, -milli))
    held = peak = 0
    for _, _, milli in sorted(changes):
        held += milli
        peak = max(peak, held)
    return peak / 1000


def scaled_counts(groups: Sequence[dict[str, Any]], factor: float) -> list[int]:
    """How many nodes each group keeps under the rule (see the module docstring)."""
    counts = [math.floor(int(g["count"]) / factor + 0.5) for g in groups]
    for flavor in dict.fromkeys(str(g["flavor"]) for g in groups):
        members = [i for i, g in enumerate(groups) if g["flavor"] == flavor]
        if sum(counts[i] for i in members) or not any(int(groups[i]["gpus"]) for i in members):
            continue
        largest = max(members, key=lambda i: _size(groups[i]))  # the first of equals
        counts[largest] = 1
    return counts


def _size(group: dict[str, Any]) -> tuple[float, float, float]:
    memory = group.get("memory_gib", float(group.get("memory_mib", 0)) / 1024)
    return float(group["gpus"]), float(group["cpu"]), float(memory)


def _scalar(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str):
        return json.dumps(value)
    return value if _PLAIN.fullmatch(value) else json.dumps(value)


def render(doc: dict[str, Any], counts: list[int], name: str, header: list[str]) -> str:
    """The scaled cluster file: ``header`` as comments, then ``doc`` with the new counts
    (groups left with no node dropped) and ``name``."""
    lines = [f"# {line}".rstrip() for line in header]
    lines.append(f"name: {_scalar(name)}")
    lines.append("node_groups:")
    for group, count in zip(doc["node_groups"], counts, strict=True):
        if count == 0:
            continue
        for n, (key, value) in enumerate({**group, "count": count}.items()):
            lines.append(f"{'  - ' if n == 0 else '    '}{key}: {_scalar(value)}")
    if "failures" in doc:
        lines.append("failures:")
        lines += [f"  {key}: {_scalar(value)}" for key, value in doc["failures"].items()]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cluster", type=Path, help="the cluster file to scale")
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--trace", type=Path, help="size the cluster to this trace's peak")
    given.add_argument("--factor", type=float, help="keep 1 node in FACTOR")
    parser.add_argument("--trace-format", choices=sorted(TRACE_FORMATS), default="alibaba2023")
    parser.add_argument("--name", help="the new cluster's name (default: NAME-scaled)")
    parser.add_argument("--out", type=Path, help="write here instead of to standard output")
    args = parser.parse_args(argv)
    if args.factor is not None and not args.factor >= 1:
        parser.error(f"--factor must be at least 1, got {args.factor}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        full = load_cluster(args.cluster).cluster  # checks the file, with allot's own errors
        doc = yaml.safe_load(args.cluster.read_text(encoding="utf-8"))
        gpus = full.total_gpus
        how: list[str]
        if args.trace is not None:
            jobs = load_trace(args.trace, args.trace_format)
            peak = peak_gpu_demand(jobs)
            if peak <= 0:
                raise SystemExit(f"error: {args.trace}: its jobs ask for no GPU; give --factor")
            factor = gpus / peak
            how = [
                f"sized to {args.trace.name}: {gpus} GPUs over its peak demand of {peak:g} GPUs",
                f"(the most its {len(jobs):,} jobs hold at once if each starts when submitted).",
            ]
        else:
            factor = args.factor
            how = [f"scaled by --factor {factor:g}."]
    except (ConfigError, TraceError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    counts = scaled_counts(doc["node_groups"], factor)
    kept = sum(c * int(g["gpus"]) for g, c in zip(doc["node_groups"], counts, strict=True))
    source = args.cluster.as_posix()
    if args.trace is not None:
        given = [f"--trace {args.trace.as_posix()}", f"--trace-format {args.trace_format}"]
    else:
        given = [f"--factor {factor:g}"]
    header = [
        f"{sum(counts)} nodes, {kept} GPUs: 1 node in {factor:.2f} of each group of {source},",
        *how,
        "Each group keeps count / factor nodes, rounded to the nearest (halves up); a GPU flavor",
        "left with none keeps one node of its group with the most GPUs (then CPUs, then memory).",
        "Written by (see that script for the rule):",
        f"  python examples/scale_cluster.py {source} \\",
        *(f"    {part} \\" for part in given[:-1]),
        f"    {given[-1]}",
    ]
    name = args.name or f"{doc.get('name', full.name)}-scaled"
    text = render(doc, counts, name, header)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}: {sum(counts)} nodes, {kept} GPUs (1 in {factor:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
