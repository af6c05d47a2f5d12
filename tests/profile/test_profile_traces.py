"""The analysis on real traces: a small transformer trained on the CPU under the task hook
(as a profiled job runs), and a GPU-format trace written here event by event, whose split
into compute, communication, copies and idle is known exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from allot.profile.analysis import analyse_files
from allot.profile.bottleneck import diagnose
from allot.profile.capture import HOOK_DIR, profile_environment
from allot.profile.trace import read_trace, trace_files

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "profile" / "train_tiny.py"


@pytest.fixture(scope="module")
def cpu_traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example job's traces: 20 steps, 3 recorded after 2 (and a warm-up)."""
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("profile")
    env = profile_environment(os.environ, out, steps=3, skip=2)
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--steps", "20"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "recorded steps 4-6" in done.stderr
    return out


def test_the_hook_records_the_window_and_says_how_long_steps_took(cpu_traces: Path) -> None:
    [trace] = trace_files(cpu_traces)
    assert trace.name.startswith("trace-rank0-")
    assert trace.name.endswith(".json.gz")
    [meta_path] = cpu_traces.glob("meta-*.json")
    meta = json.loads(meta_path.read_text())
    assert (meta["device"], meta["steps"], meta["skip"], meta["total_steps"]) == ("cpu", 3, 2, 20)
    assert meta["mean_step_seconds"] > 0


def test_a_cpu_step_is_split_and_its_work_counted(cpu_traces: Path) -> None:
    profile = analyse_files(trace_files(cpu_traces))
    [rank] = profile.ranks
    assert not profile.on_gpu
    assert rank.steps == 3
    parts = rank.compute + rank.communication + rank.memory_copies + rank.idle
    assert parts == pytest.approx(rank.step_seconds, rel=1e-6)
    assert rank.compute > 0.5 * rank.step_seconds  # a training step is mostly operators
    assert rank.data_loader > 0  # the DataLoader's __next__ is seen
    assert rank.top_kernels
    assert rank.top_kernels[0].seconds > 0
    # Matrix products of a 2-layer, width-128 encoder over 16 x 32 tokens, forward and
    # backward: at least 2 x (4 attention projections + 2 MLP layers) x 2 x 512 x 128 x 128.
    assert rank.flops > 2 * 6 * 2 * 512 * 128 * 128
    assert rank.bytes > 0
    assert {c.kind for c in rank.classes} == {"matmul", "other"}
    assert rank.peak_memory_bytes
    assert rank.peak_memory_bytes > 0
    verdict = diagnose(profile)
    assert verdict.headline
    assert verdict.evidence[0].startswith("per ")


def _gpu_trace(path: Path) -> Path:
    """Two steps of 10 ms on a GPU (times in µs). Per step: a 4 ms product kernel, a 2 ms
    elementwise kernel, a 3 ms all-reduce of which 1 ms overlaps the product, a 1 ms copy
    while nothing else runs; so compute 6, exposed communication 2, copies 1, idle 1 ms."""
    events: list[dict[str, object]] = []
    for step in range(2):
        t0 = 1000.0 + step * 10_000
        events.append({"ph": "X", "cat": "user_annotation", "name": f"ProfilerStep#{step}",
                       "pid": 1, "tid": 1, "ts": t0, "dur": 10_000})  # fmt: skip
        mm = {"External id": 10 + step, "Input Dims": [[4096, 4096], [4096, 4096]],
              "Input type": ["c10::BFloat16", "c10::BFloat16"]}  # fmt: skip
        add = {"External id": 20 + step, "Input Dims": [[4096, 4096], [4096, 4096]],
               "Input type": ["c10::BFloat16", "c10::BFloat16"]}  # fmt: skip
        events += [
            {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": t0 + 10,
             "dur": 50, "args": mm},
            {"ph": "X", "cat": "cpu_op", "name": "aten::add", "pid": 1, "tid": 1,
             "ts": t0 + 70, "dur": 20, "args": add},
            {"ph": "X", "cat": "kernel", "name": "sm90_xmma_gemm_bf16", "pid": 0, "tid": 7,
             "ts": t0, "dur": 4000, "args": {"External id": 10 + step}},
            {"ph": "X", "cat": "kernel", "name": "ncclDevKernel_AllReduce_Sum_bf16_RING_LL",
             "pid": 0, "tid": 9, "ts": t0 + 3000, "dur": 3000, "args": {}},
            {"ph": "X", "cat": "kernel", "name": "vectorized_elementwise_kernel", "pid": 0,
             "tid": 7, "ts": t0 + 6000, "dur": 2000, "args": {"External id": 20 + step}},
            {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD (Pinned -> Device)",
             "pid": 0, "tid": 8, "ts": t0 + 8000, "dur": 1000, "args": {}},
        ]  # fmt: skip
    doc = {
        "schemaVersion": 1,
        "deviceProperties": [{"id": 0, "name": "NVIDIA H100 80GB HBM3"}],
        "distributedInfo": {"backend": "nccl", "rank": 1, "world_size": 2},
        "traceEvents": events,
    }
    path.write_text(json.dumps(doc))
    return path


def test_a_gpu_step_is_split_exactly(tmp_path: Path) -> None:
    trace = read_trace(_gpu_trace(tmp_path / "rank1.json"))
    assert (trace.rank, trace.device, trace.on_gpu) == (1, "NVIDIA H100 80GB HBM3", True)
    profile = analyse_files([trace.path])
    [rank] = profile.ranks
    ms = 1e-3
    assert rank.steps == 2
    assert rank.step_seconds == pytest.approx(10 * ms)
    assert rank.compute == pytest.approx(6 * ms)
    assert rank.communication == pytest.approx(2 * ms)
    assert rank.communication_total == pytest.approx(3 * ms)
    assert rank.overlap == pytest.approx(1 / 3)
    assert rank.memory_copies == pytest.approx(1 * ms)
    assert rank.idle == pytest.approx(1 * ms)
    assert [k.name for k in rank.top_kernels] == [
        "sm90_xmma_gemm_bf16",
        "vectorized_elementwise_kernel",
    ]
    products = {c.name: c for c in rank.classes}
    assert products["aten::mm"].kind == "matmul"
    assert products["aten::mm"].dtype == "bf16"
    assert products["aten::mm"].flops == pytest.approx(2 * 4096**3)
    assert products["aten::mm"].seconds == pytest.approx(4 * ms)
    assert products["aten::add"].seconds == pytest.approx(2 * ms)
    assert rank.flops == pytest.approx(2 * 4096**3)


def test_the_hook_stays_out_of_programs_without_pytorch(tmp_path: Path) -> None:
    env = profile_environment(os.environ, tmp_path / "out", steps=2, skip=1)
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(HOOK_DIR)
    done = subprocess.run(
        [sys.executable, "-c", "import json; print('plain')"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout == "plain\n"
    assert done.stderr == ""
    assert not (tmp_path / "out").exists()
