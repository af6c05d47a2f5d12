"""Cluster files: node groups become nodes; every bad value names file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from allot.config.errors import ConfigError
from allot.core.model import Node
from allot.sim.cluster import ClusterConfig, FailureModel, load_cluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

GOOD = """\
name: test
node_groups:
  - name: rack-a
    count: 2
    flavor: P100
    gpus: 8
    cpu: 64
    memory_gib: 512
    topology: zone-1/rack-a
  - name: cpu
    count: 1
    flavor: cpu
    gpus: 0
    cpu: 0.5
    memory_mib: 2048
failures:
  mtbf_hours: 720
  mttr_hours: 0.5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_groups_become_named_nodes(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    config = load_cluster(path)
    assert isinstance(config, ClusterConfig)
    assert config.source == str(path)
    assert config.cluster.name == "test"
    assert [n.name for n in config.cluster.nodes] == ["rack-a-000", "rack-a-001", "cpu-000"]
    assert config.cluster.nodes[0] == Node(
        "rack-a-000", "P100", 8, 64_000, 512 * 1024, ("zone-1", "rack-a")
    )
    assert config.cluster.nodes[2] == Node("cpu-000", "cpu", 0, 500, 2048)
    assert config.failures == FailureModel(720 * 3600.0, 1800.0)
    assert config.cluster.total_gpus == 16


def test_failures_are_optional_and_name_defaults_to_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        node_groups:
          - {name: a, count: 1, flavor: T4, gpus: 1, cpu: 8, memory_gib: 32}
        """,
    )
    config = load_cluster(path)
    assert config.failures is None
    assert config.cluster.name == "cluster"


def test_large_groups_get_wider_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        node_groups:
          - {name: g, count: 1001, flavor: T4, gpus: 1, cpu: 8, memory_gib: 32}
        """,
    )
    nodes = load_cluster(path).cluster.nodes
    assert (nodes[0].name, nodes[-1].name) == ("g-0000", "g-1000")


GROUP = "  - {name: a, count: 2, flavor: T4, gpus: 1, cpu: 8, memory_gib: 32}\n"


@pytest.mark.parametrize(
    ("text", "line", "field", "rule"),
    [
        ("node_groups: []\n", 1, "node_groups", "at least one node group"),
        ("name: x\n", 1, "node_groups", "is required"),
        ("node_groups:\n" + GROUP + "colour: red\n", 3, "colour", "unknown key; allowed keys"),
        (
            "node_groups:\n  - name: a\n    count: 0\n    flavor: T4\n    gpus: 1\n    cpu: 8\n"
            "    memory_gib: 32\n",
            3,
            "node_groups[0].count",
            "must be an integer >= 1",
        ),
        (
            "node_groups:\n  - name: a\n    count: 2\n    flavor: T4\n    gpus: two\n    cpu: 8\n"
            "    memory_gib: 32\n",
            5,
            "node_groups[0].gpus",
            "must be an integer",
        ),
        (
            "node_groups:\n  - {name: a, count: 2, flavor: T4, gpus: 1, cpu: -8, memory_gib: 32}\n",
            2,
            "node_groups[0].cpu",
            "must be a number > 0",
        ),
        (
            "node_groups:\n  - {name: a, count: 2, flavor: T4, gpus: 1, cpu: 8}\n",
            2,
            "node_groups[0].memory_gib",
            "is required (or give memory_mib)",
        ),
        (
            "node_groups:\n  - {name: a, count: 2, flavor: T4, gpus: 1, cpu: 8, memory_gib: 1,"
            " memory_mib: 1}\n",
            2,
            "node_groups[0].memory_mib",
            "not both",
        ),
        (
            "node_groups:\n  - {name: a, count: 2, gpus: 1, cpu: 8, memory_gib: 32}\n",
            2,
            "node_groups[0].flavor",
            "is required",
        ),
        (
            "node_groups:\n  - {name: a, count: 2, flavor: T4, gpus: 1, cpu: 8, memory_gib: 32,"
            " disk: 1}\n",
            2,
            "node_groups[0].disk",
            "unknown key",
        ),
        ("node_groups:\n" + GROUP + GROUP, 3, "node_groups[1].name", "already defined on line 2"),
        (
            "node_groups:\n  - {name: a, count: 2, flavor: T4, gpus: 1, cpu: 8, memory_gib: 32,"
            " topology: z//r}\n",
            2,
            "node_groups[0].topology",
            "without empty parts",
        ),
        (
            "node_groups:\n" + GROUP + "failures:\n  mtbf_hours: 0\n  mttr_hours: 1\n",
            4,
            "failures.mtbf_hours",
            "must be a number > 0",
        ),
        (
            "node_groups:\n" + GROUP + "failures:\n  mtbf_hours: 10\n",
            4,
            "failures.mttr_hours",
            "is required",
        ),
        ("node_groups: {a: 1}\n", 1, "node_groups", "must be a list"),
    ],
)
def test_errors_name_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, rule: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_cluster(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: field '{field}':"), message
    assert rule in message


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path, "node_groups:\n  - {name: a\n")
    with pytest.raises(ConfigError, match=r"cluster.yaml:\d+: invalid YAML"):
        load_cluster(path)
    with pytest.raises(ConfigError, match=r"nope.yaml: no such file"):
        load_cluster(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("name", "nodes", "gpus"),
    [
        ("cluster-small.yaml", 8, 64),
        ("cluster-philly.yaml", 96, 768),
        ("cluster-alibaba2023.yaml", 1213, 6212),
    ],
)
def test_example_clusters_load(name: str, nodes: int, gpus: int) -> None:
    config = load_cluster(EXAMPLES / name)
    assert len(config.cluster.nodes) == nodes
    assert config.cluster.total_gpus == gpus


@pytest.mark.traces
def test_alibaba_example_matches_the_node_list(traces_dir: Path) -> None:
    from collections import Counter

    from allot.sim.traces import read_alibaba_nodes

    def shapes(nodes: tuple[Node, ...]) -> Counter[tuple[str, int, int, int]]:
        return Counter((n.flavor, n.gpus, n.cpu_milli, n.memory_mib) for n in nodes)

    trace = read_alibaba_nodes(traces_dir / "alibaba2023" / "openb_node_list_gpu_node.csv")
    example = load_cluster(EXAMPLES / "cluster-alibaba2023.yaml").cluster
    assert shapes(example.nodes) == shapes(trace.nodes)


def test_gpu_memory_and_nvlink_domains(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    topology: zone-1/rack-a\n",
        "    topology: zone-1/rack-a\n    gpu_memory_gib: 80\n    nvlink_domains: 2\n",
    )
    node = load_cluster(write(tmp_path, text)).cluster.nodes[0]
    assert node.gpu_memory_mib == 80 * 1024
    assert node.nvlink == (0, 0, 0, 0, 1, 1, 1, 1)


def test_nvlink_domains_must_divide_the_gpus(tmp_path: Path) -> None:
    text = GOOD.replace("    topology: zone-1/rack-a\n", "    nvlink_domains: 3\n")
    with pytest.raises(ConfigError, match="nvlink_domains"):
        load_cluster(write(tmp_path, text))
