"""Cluster files: the nodes a simulation runs on and, optionally, how often they fail.

A cluster file is YAML with a ``name``, a list of ``node_groups`` (identical nodes named
``<group>-000``, ``<group>-001``, ...) and an optional ``failures`` block::

    name: philly
    node_groups:
      - name: rack-a
        count: 32
        flavor: P100        # GPU type; CPU-only groups use e.g. "cpu" with gpus: 0
        gpus: 8             # per node
        cpu: 64             # cores per node, stored as milli-cores
        memory_gib: 512     # per node, stored as MiB (or give memory_mib instead)
        topology: zone-1/rack-a
        gpu_memory_gib: 80  # optional: memory per GPU (bounds GPU memory requests)
        nvlink_domains: 2   # optional: GPUs split into this many equal NVLink domains
    failures:
      mtbf_hours: 720       # mean time between failures per node (exponential)
      mttr_hours: 4         # mean time to repair

Invariants: every error names the file, line and field (``ConfigError``); group names are unique,
so node names are unique across the cluster (a node name is its group's name, a dash and digits);
nodes keep the file's order, which is the order the core breaks ties in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from allot.config.yamldoc import YamlMap, YamlNode, load_yaml
from allot.core.model import MIB_PER_GIB, MILLI_PER_CPU, SECONDS_PER_HOUR, Cluster, Node, SpecError

_TOP_KEYS = ("name", "node_groups", "failures")
_GROUP_KEYS = (
    "name",
    "count",
    "flavor",
    "gpus",
    "cpu",
    "memory_gib",
    "memory_mib",
    "topology",
    "gpu_memory_gib",
    "nvlink_domains",
)
_FAILURE_KEYS = ("mtbf_hours", "mttr_hours")


@dataclass(frozen=True, slots=True)
class FailureModel:
    """Random node failures: each node fails after an exponential time with mean
    ``mtbf_seconds`` and comes back after an exponential repair time with mean ``mttr_seconds``."""

    mtbf_seconds: float
    mttr_seconds: float

    def __post_init__(self) -> None:
        for name in ("mtbf_seconds", "mttr_seconds"):
            value = getattr(self, name)
            if not value > 0:
                raise SpecError(name, f"must be > 0 seconds, got {value!r}")


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """A loaded cluster file: the nodes, the failure model (None: nodes never fail) and the
    file it came from."""

    cluster: Cluster
    failures: FailureModel | None
    source: str


def load_cluster(path: str | Path) -> ClusterConfig:
    """Read and validate the cluster file at ``path``; raise ``ConfigError`` on any problem."""
    doc = load_yaml(path)
    doc.check_keys(_TOP_KEYS, required=("node_groups",))
    name = doc.get_str("name", default=Path(path).stem)
    groups = doc.get_list("node_groups")
    if not groups:
        raise doc.error("node_groups", "must list at least one node group")
    nodes: list[Node] = []
    group_lines: dict[str, int] = {}
    for item in groups:
        group = item.as_map()
        group_name = group.get_str("name")
        if group_name in group_lines:
            raise group.error(
                "name", f"group {group_name!r} is already defined on line {group_lines[group_name]}"
            )
        group_lines[group_name] = group.line
        nodes.extend(_read_group(group))
    failures_node = doc.optional("failures")
    failures = None if failures_node is None else _read_failures(failures_node)
    return ClusterConfig(Cluster(tuple(nodes), name=name), failures, str(path))


def _read_group(group: YamlMap) -> list[Node]:
    """The nodes of one ``node_groups`` entry."""
    group.check_keys(_GROUP_KEYS, required=("name", "count", "flavor", "gpus", "cpu"))
    name = group.get_str("name")
    count = group.get_int("count", minimum=1)
    flavor = group.get_str("flavor")
    gpus = group.get_int("gpus", minimum=0)
    cpu_milli = round(group.get_float("cpu", positive=True) * MILLI_PER_CPU)
    if cpu_milli < 1:
        raise group.error("cpu", "must be at least 0.001 cores")
    memory_mib = _read_memory(group)
    topology: tuple[str, ...] = ()
    if group.optional("topology") is not None:
        path = group.get_str("topology")
        topology = tuple(path.split("/"))
        if not all(topology):
            raise group.error(
                "topology", f"must be a '/'-separated path without empty parts, got {path!r}"
            )
    gpu_memory_mib = 0
    if group.optional("gpu_memory_gib") is not None:
        gpu_memory_mib = round(group.get_float("gpu_memory_gib", positive=True) * MIB_PER_GIB)
    nvlink: tuple[int, ...] = ()
    if group.optional("nvlink_domains") is not None:
        domains = group.get_int("nvlink_domains", minimum=1)
        if gpus % domains:
            raise group.error(
                "nvlink_domains", f"must divide the GPUs per node ({gpus}), got {domains}"
            )
        nvlink = tuple(d * domains // gpus for d in range(gpus))
    width = max(3, len(str(count - 1)))
    try:
        return [
            Node(
                f"{name}-{i:0{width}d}",
                flavor,
                gpus,
                cpu_milli,
                memory_mib,
                topology,
                gpu_memory_mib=gpu_memory_mib,
                nvlink=nvlink,
            )
            for i in range(count)
        ]
    except SpecError as exc:
        raise group.error(exc.field.rsplit(".", 1)[-1], exc.rule) from None


def _read_memory(group: YamlMap) -> int:
    """Memory per node in MiB, from exactly one of ``memory_gib`` and ``memory_mib``."""
    has_gib = group.optional("memory_gib") is not None
    has_mib = group.optional("memory_mib") is not None
    if has_gib and has_mib:
        raise group.error("memory_mib", "give either memory_gib or memory_mib, not both")
    if has_mib:
        return group.get_int("memory_mib", minimum=1)
    if not has_gib:
        raise group.error("memory_gib", "is required (or give memory_mib)")
    memory_mib = round(group.get_float("memory_gib", positive=True) * MIB_PER_GIB)
    if memory_mib < 1:
        raise group.error("memory_gib", "must be at least 1 MiB")
    return memory_mib


def _read_failures(node: YamlNode) -> FailureModel:
    """The ``failures`` block."""
    block = node.as_map()
    block.check_keys(_FAILURE_KEYS, required=_FAILURE_KEYS)
    mtbf = block.get_float("mtbf_hours", positive=True)
    mttr = block.get_float("mttr_hours", positive=True)
    return FailureModel(mtbf * SECONDS_PER_HOUR, mttr * SECONDS_PER_HOUR)
