"""The scaled Alibaba cluster is derived, not tuned: ``examples/scale_cluster.py`` applies its
rule (count / factor per group, halves up, every GPU flavor kept), the shipped file holds what
the rule gives for the factor its header names, and, with the public traces, the tool writes
that file byte for byte from the trace, loses no job that the full node list could run on any
replayable variant, and turns the replay of the README into a run where policies differ."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from allot.cli.main import app
from allot.core.model import JobSpec, Resources
from allot.core.placement.diagnose import screen
from allot.core.snapshot import Snapshot
from allot.sim.cluster import load_cluster
from allot.sim.traces import load_trace
from allot.sim.workload import TraceJob

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
FULL = EXAMPLES / "cluster-alibaba2023.yaml"
SCALED = EXAMPLES / "cluster-alibaba2023-scaled.yaml"
TOOL = EXAMPLES / "scale_cluster.py"
TRACE = "../shared/traces/alibaba2023/openb_pod_list_default.csv"  # as the README writes it


def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scale_cluster", TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def group(name: str, count: int, flavor: str, gpus: int, cpu: int = 8) -> dict[str, Any]:
    return {"name": name, "count": count, "flavor": flavor, "gpus": gpus, "cpu": cpu,
            "memory_gib": 64}  # fmt: skip


def test_each_group_keeps_its_share_rounded_halves_up() -> None:
    groups = [group("a", 25, "A", 8), group("b", 15, "A", 4), group("c", 35, "B", 2)]
    assert tool().scaled_counts(groups, 10.0) == [3, 2, 4]  # 2.5 -> 3, 1.5 -> 2, 3.5 -> 4


def test_a_flavor_left_with_none_keeps_one_of_its_largest_nodes() -> None:
    groups = [
        group("a-small", 4, "A", 2),
        group("a-big", 1, "A", 8, cpu=64),
        group("a-big-fewer-cpus", 3, "A", 8, cpu=32),
        group("b", 100, "B", 8),
        group("cpu", 4, "cpu", 0),
    ]
    # A's groups all round to 0: its 8-GPU node with the most CPUs stays; a CPU-only group
    # may vanish (any node runs a CPU-only job).
    assert tool().scaled_counts(groups, 10.0) == [0, 1, 0, 10, 0]


def test_peak_demand_counts_what_runs_at_once() -> None:
    def job(job_id: int, submit: float, duration: float, milli: int) -> TraceJob:
        spec = JobSpec(job_id, "t", "u", "q", (Resources(milli, 1000, 1024),), submit_time=submit)
        return TraceJob(spec, duration)

    jobs = [job(1, 0, 10, 4000), job(2, 5, 10, 500), job(3, 10, 5, 3000), job(4, 20, 1, 8000)]
    # At t=10 job 1 ends as job 3 starts: 0.5 + 3, never 7.5.
    assert tool().peak_gpu_demand(jobs) == 8.0
    assert tool().peak_gpu_demand(jobs[:3]) == 4.5


def test_the_shipped_file_is_what_the_rule_gives_for_its_factor() -> None:
    text = SCALED.read_text(encoding="utf-8")
    found = re.search(
        r"1 node in (\d+\.\d+) of each group of examples/cluster-alibaba2023\.yaml", text
    )
    assert found is not None
    factor = float(found.group(1))
    full = yaml.safe_load(FULL.read_text(encoding="utf-8"))["node_groups"]
    shipped = {g["name"]: g for g in yaml.safe_load(text)["node_groups"]}
    counts = tool().scaled_counts(full, factor)
    assert {g["name"]: c for g, c in zip(full, counts, strict=True) if c} == {
        name: g["count"] for name, g in shipped.items()
    }
    for original in full:  # every group kept as it was, but for its count
        if original["name"] in shipped:
            assert {**original, "count": 0} == {**shipped[original["name"]], "count": 0}
    scaled = load_cluster(SCALED).cluster
    assert set(scaled.flavors) == set(load_cluster(FULL).cluster.flavors)
    assert scaled.name == "alibaba2023-scaled"


def test_the_tool_names_a_bad_factor() -> None:
    done = subprocess.run(
        [sys.executable, str(TOOL), str(FULL), "--factor", "0.5"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "--factor must be at least 1, got 0.5" in done.stderr


# ---------------------------------------------------------------------------------------------
# With the public traces


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "examples/scale_cluster.py", "examples/cluster-alibaba2023.yaml", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.traces
def test_the_tool_writes_the_shipped_file_from_the_trace(traces_dir: Path) -> None:
    assert (REPO / TRACE).resolve() == (traces_dir / "alibaba2023" / Path(TRACE).name).resolve()
    done = run_tool("--trace", TRACE, "--trace-format", "alibaba2023")
    assert done.returncode == 0, done.stderr
    assert done.stdout == SCALED.read_text(encoding="utf-8")


@pytest.mark.traces
@pytest.mark.parametrize("variant", ["default", "gpuspec33"])
def test_no_job_the_full_list_can_run_is_lost(traces_dir: Path, variant: str) -> None:
    jobs = load_trace(traces_dir / "alibaba2023" / f"openb_pod_list_{variant}.csv", "alibaba2023")
    assert tool().peak_gpu_demand(jobs) == pytest.approx(64.59)  # the variants share the pods
    full, scaled = (Snapshot(load_cluster(path).cluster) for path in (FULL, SCALED))
    lost = [j.spec.id for j in jobs if screen(full, j.spec) is None and screen(scaled, j.spec)]
    assert lost == []


@pytest.mark.traces
def test_the_variant_without_times_is_refused_by_name(traces_dir: Path) -> None:
    del traces_dir  # only its presence matters
    done = run_tool("--trace", TRACE.replace("default", "multigpu50"))
    assert done.returncode == 2
    assert "cannot be replayed" in done.stderr


@pytest.mark.traces
def test_the_readme_replay_keeps_no_pod_waiting(traces_dir: Path, tmp_path: Path) -> None:
    trace = traces_dir / "alibaba2023" / "openb_pod_list_default.csv"
    out = tmp_path / "alibaba"
    args = ["simulate", "--trace", str(trace), "--trace-format", "alibaba2023"]
    args += ["--cluster", str(SCALED), "--policy", "fifo,besteffort,sjf,backfill"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["meta"]["cluster_gpus"] == 83
    policies = report["policies"]
    for figures in policies.values():
        assert (figures["completed"], figures["unfinished"], figures["never_fit"]) == (8152, 0, 0)
        assert figures["gpu_allocation_fraction"] > 0.15  # not the full list's 0.2 %
        assert figures["peak_allocated_gpus"] > 60
    # Under the bucket walk strict FIFO queued behind pods only the one G3 node holds; with
    # allot's default packer (README) no policy keeps a pod waiting.
    for figures in policies.values():
        assert figures["queueing_delay_s"]["mean"] < 120
    for name in ("jct_cdf.png", "timeline.png"):
        assert (out / name).is_file()
