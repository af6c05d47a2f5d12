"""Alibaba openb readers: pods become one-task jobs, node lists become clusters."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from allot.core.model import Node, Resources
from allot.sim.traces.alibaba import read_alibaba_nodes, read_alibaba_pods
from allot.sim.workload import TraceError

POD_HEADER = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
    "deletion_time,scheduled_time\n"
)
NODE_HEADER = "sn,cpu_milli,memory_mib,gpu,model\n"


def write(tmp_path: Path, text: str, name: str = "pods.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_pods_map_to_jobs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        POD_HEADER
        + "p0,12000,16384,1,1000,,LS,Running,0,1000,10\n"
        + "p1,6000,12288,1,460,T4|P100|T4,BE,Running,5,105,5\n"
        + "p2,88000,327680,8,1000,,Burstable,Failed,7,107,8\n"
        + "p3,4000,8192,0,0,,Guaranteed,Succeeded,9,20,9\n"
        + "p4,4000,8192,1,500,,BE,Pending,11,31,\n"
        + "p5,4000,8192,1,500,,BE,Pending,40,40,\n",
    )
    jobs = read_alibaba_pods(path)
    assert [j.spec.id for j in jobs] == [1, 2, 3, 4, 5, 6]
    assert [j.spec.name for j in jobs] == ["p0", "p1", "p2", "p3", "p4", "p5"]
    assert [j.spec.submit_time for j in jobs] == [0.0, 5.0, 7.0, 9.0, 11.0, 40.0]
    # Scheduled: deletion - scheduled; never scheduled: deletion - creation; at least 1 s.
    assert [j.duration for j in jobs] == [990.0, 100.0, 99.0, 11.0, 20.0, 1.0]
    assert jobs[0].spec.tasks == (Resources(1000, 12000, 16384),)
    assert jobs[1].spec.tasks == (Resources(460, 6000, 12288),)
    assert jobs[1].spec.flavors == ("T4", "P100")
    assert jobs[2].spec.tasks == (Resources(8000, 88000, 327680),)
    assert jobs[3].spec.tasks == (Resources(0, 4000, 8192),)
    assert [j.spec.priority for j in jobs[:4]] == [2, 0, 1, 2]
    assert [j.spec.tenant for j in jobs[:4]] == ["ls", "be", "burstable", "guaranteed"]
    assert jobs[1].spec.user == jobs[1].spec.queue == "be"


def test_pods_are_sorted_by_creation_time_and_limited(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        POD_HEADER
        + "late,1000,1024,0,0,,BE,Running,50,60,50\n"
        + "early,1000,1024,0,0,,BE,Running,10,60,10\n"
        + "tie,1000,1024,0,0,,BE,Running,50,60,50\n",
    )
    assert [j.spec.name for j in read_alibaba_pods(path)] == ["early", "late", "tie"]
    limited = read_alibaba_pods(path, limit=1)
    assert [(j.spec.id, j.spec.name) for j in limited] == [(1, "early")]


GOOD = "p,1000,1024,1,500,,BE,Running,0,10,0"


def replace_field(column: int, value: str) -> str:
    fields = GOOD.split(",")
    fields[column] = value
    return ",".join(fields) + "\n"


@pytest.mark.parametrize(
    ("row", "field", "rule"),
    [
        (replace_field(1, "x"), "cpu_milli", "must be a whole number"),
        (replace_field(2, "-1"), "memory_mib", "must be >= 0"),
        (replace_field(3, "1.5"), "num_gpu", "must be a whole number"),
        (replace_field(4, "0"), "gpu_milli", "must be >= 1"),
        (replace_field(4, "1500"), "gpu_milli", "must be 1..1000"),
        (replace_field(5, "T4||P100"), "gpu_spec", "separated by '|'"),
        (replace_field(6, "Gold"), "qos", "must be one of LS, Guaranteed, Burstable, BE"),
        (replace_field(8, ""), "creation_time", "must not be empty"),
        (replace_field(9, "soon"), "deletion_time", "must be a number of seconds"),
        (replace_field(10, "-3"), "scheduled_time", "must be a finite number of seconds >= 0"),
    ],
)
def test_pod_errors_name_file_line_and_field(
    tmp_path: Path, row: str, field: str, rule: str
) -> None:
    path = write(tmp_path, POD_HEADER + GOOD + "\n" + row)
    with pytest.raises(TraceError) as err:
        read_alibaba_pods(path)
    message = str(err.value)
    assert message.startswith(f"{path}:3: field '{field}':"), message
    assert rule in message


def test_pod_list_without_times_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1000,1024,1,500\n")
    with pytest.raises(TraceError) as err:
        read_alibaba_pods(path)
    message = str(err.value)
    assert message.startswith(f"{path}:1: field 'gpu_spec': missing column(s) gpu_spec, qos,")
    assert "creation_time, deletion_time, scheduled_time" in message
    assert "multigpu50" in message


def test_short_row_and_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path, POD_HEADER + "p,1000\n")
    with pytest.raises(TraceError, match=r"pods.csv:2: has 2 fields but the header has 11"):
        read_alibaba_pods(path)
    with pytest.raises(TraceError, match=r"absent.csv: no such file"):
        read_alibaba_pods(tmp_path / "absent.csv")


def test_nodes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        NODE_HEADER + "n0,64000,262144,2,P100\nn1,32000,131072,0,\n",
        name="nodes.csv",
    )
    cluster = read_alibaba_nodes(path)
    assert cluster.nodes == (
        Node("n0", "P100", 2, 64000, 262144),
        Node("n1", "cpu", 0, 32000, 131072),
    )
    assert cluster.name == "nodes"


@pytest.mark.parametrize(
    ("rows", "line", "field", "rule"),
    [
        ("n0,1,1,1,T4\nn0,1,1,1,T4\n", 3, "sn", "already listed on line 2"),
        (",1,1,1,T4\n", 2, "sn", "must not be empty"),
        ("n0,1,1,4,\n", 2, "model", "must name the GPU model"),
        ("n0,1,1,-1,T4\n", 2, "gpu", "must be >= 0"),
        ("n0,1.5,1,1,T4\n", 2, "cpu_milli", "must be a whole number"),
    ],
)
def test_node_errors_name_file_line_and_field(
    tmp_path: Path, rows: str, line: int, field: str, rule: str
) -> None:
    path = write(tmp_path, NODE_HEADER + rows, name="nodes.csv")
    with pytest.raises(TraceError) as err:
        read_alibaba_nodes(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: field '{field}':"), message
    assert rule in message


@pytest.mark.traces
def test_default_pod_list(traces_dir: Path) -> None:
    jobs = read_alibaba_pods(traces_dir / "alibaba2023" / "openb_pod_list_default.csv")
    assert len(jobs) == 8_152
    assert [j.spec.id for j in jobs] == list(range(1, 8_153))
    times = [j.spec.submit_time for j in jobs]
    assert times == sorted(times)
    assert Counter(j.spec.tenant for j in jobs) == {
        "ls": 4647,
        "be": 3398,
        "burstable": 100,
        "guaranteed": 7,
    }
    assert sum(j.spec.tasks[0].is_fractional for j in jobs) > 0
    assert sum(j.duration == 1.0 for j in jobs) >= 1  # the Pending pod deleted as it was created
    assert all(len(j.spec.tasks) == 1 for j in jobs)


@pytest.mark.traces
def test_gpuspec_variant_drops_repeated_models(traces_dir: Path) -> None:
    jobs = read_alibaba_pods(traces_dir / "alibaba2023" / "openb_pod_list_gpuspec33.csv")
    assert len(jobs) == 8_152
    constrained = [j for j in jobs if j.spec.flavors]
    assert len(constrained) == 8_152 - 5_764
    assert all(len(set(j.spec.flavors)) == len(j.spec.flavors) for j in constrained)


@pytest.mark.traces
def test_multigpu50_variant_gives_a_clear_error(traces_dir: Path) -> None:
    path = traces_dir / "alibaba2023" / "openb_pod_list_multigpu50.csv"
    with pytest.raises(TraceError, match=r"openb_pod_list_multigpu50.csv:1: .*missing column"):
        read_alibaba_pods(path)


@pytest.mark.traces
def test_node_lists(traces_dir: Path) -> None:
    gpu_nodes = read_alibaba_nodes(traces_dir / "alibaba2023" / "openb_node_list_gpu_node.csv")
    assert len(gpu_nodes.nodes) == 1_213
    assert gpu_nodes.total_gpus == 6_212
    assert Counter(n.flavor for n in gpu_nodes.nodes) == {
        "G2": 549,
        "T4": 404,
        "P100": 134,
        "V100M16": 55,
        "G3": 39,
        "V100M32": 30,
        "A10": 2,
    }
    all_nodes = read_alibaba_nodes(traces_dir / "alibaba2023" / "openb_node_list_all_node.csv")
    assert len(all_nodes.nodes) == 1_523
    assert sum(n.flavor == "cpu" for n in all_nodes.nodes) == 310
