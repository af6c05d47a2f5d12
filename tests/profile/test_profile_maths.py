"""The pure maths of profiling, on worked examples: timelines, FLOP and byte counts, the
roofline, the recommendation model and the node health verdict (on recorded results)."""

from __future__ import annotations

from pathlib import Path

import pytest

from allot.config.errors import ConfigError
from allot.profile import counting, timeline
from allot.profile.analysis import OpClass, RankProfile, WorkloadProfile
from allot.profile.catalog import Expected, FlavorSpec, load_catalog
from allot.profile.health import Measurement, baseline, judge
from allot.profile.recommend import Measured, recommend, step_on
from allot.profile.roofline import Roof, place

H100 = FlavorSpec("H100-SXM", {"bf16": 989.4, "fp32": 67}, 3350, 80, 900, 64, 12.29)
L4 = FlavorSpec("L4", {"bf16": 121, "fp32": 30.3}, 300, 24, None, 32, 0.8048)


def test_timelines_merge_intersect_and_measure() -> None:
    compute = timeline.union([0, 2, 1, 10], [3, 4, 2, 12])  # 0-4 and 10-12
    assert list(compute[0]) == [0, 10]
    assert list(compute[1]) == [4, 12]
    assert timeline.length(compute) == 6
    comm = timeline.union([3, 11], [6, 15])
    assert timeline.length(timeline.intersect(compute, comm)) == 1 + 1
    assert timeline.minus(comm, compute) == 7 - 2
    assert timeline.length(timeline.clip(compute, 1, 11)) == 3 + 1


def test_flops_and_bytes_of_products() -> None:
    # (512 x 128) @ (128 x 384) in fp32: 2*512*128*384 FLOPs; reads both, writes 512 x 384.
    dims, types = [[512, 128], [128, 384]], ["float", "float"]
    assert counting.flops("aten::mm", dims) == 2 * 512 * 128 * 384
    assert counting.traffic("aten::mm", dims, types) == 4 * (512 * 128 + 128 * 384 + 512 * 384)
    # addmm's bias comes first; bmm multiplies by the batch.
    assert counting.flops("aten::addmm", [[384], [512, 128], [128, 384], [], []]) == (
        2 * 512 * 128 * 384
    )
    assert counting.flops("aten::bmm", [[8, 32, 16], [8, 16, 32]]) == 2 * 8 * 32 * 16 * 32
    assert counting.dtype(["c10::BFloat16", "c10::BFloat16"]) == "bf16"
    # Views move nothing; an elementwise op reads its inputs and writes the largest.
    assert counting.traffic("aten::view", [[4, 4]], ["float"]) == 0
    assert counting.traffic("aten::add", [[10], [10]], ["float", "float"]) == 4 * 30
    assert counting.flops("aten::mm", [["odd"]]) == 0


def test_a_workload_on_a_roofline() -> None:
    # Ridge point of H100 bf16: 989.4e12 / 3.35e12 = 295 FLOP/byte.
    roof = Roof.of(H100, "bf16")
    assert roof.ridge == pytest.approx(295.34, rel=1e-3)
    # 1 TFLOP and 10 GB per step in 10 ms: intensity 100 (memory-bound), 100 TFLOP/s achieved.
    at = place(roof, flops_per_step=1e12, bytes_per_step=1e10, step_seconds=0.01,
               compute_seconds=0.008)  # fmt: skip
    assert at.intensity == 100
    assert at.bound == "memory"
    assert at.achieved == pytest.approx(100e12)
    assert at.achieved_in_compute == pytest.approx(125e12)
    assert at.attainable == pytest.approx(335e12)  # 100 FLOP/byte x 3.35 TB/s
    assert at.mfu == pytest.approx(100 / 989.4)
    with pytest.raises(ValueError, match="step_seconds: must be > 0"):
        place(roof, flops_per_step=1, bytes_per_step=1, step_seconds=0, compute_seconds=0)


def _gpu_profile() -> WorkloadProfile:
    """A step of 100 ms on an H100: 60 ms of bf16 products (30 TFLOP), 20 ms of elementwise
    work (33.5 GB), 10 ms of exposed communication and 10 ms idle."""
    matmul = OpClass("aten::mm", "matmul", "bf16", 10, 0.060, 30e12, 60e9)
    other = OpClass("aten::add", "other", "bf16", 100, 0.020, 0.0, 33.5e9)
    rank = RankProfile(
        rank=0, device="NVIDIA H100 80GB HBM3", steps=5, step_seconds=0.100, compute=0.080,
        communication=0.010, memory_copies=0.0, idle=0.010, communication_total=0.020,
        overlap=0.5, data_loader=0.001, data_loader_idle=0.0, flops=30e12, bytes=93.5e9,
        kernels_per_step=110, median_kernel_seconds=1e-4, peak_memory_bytes=30 << 30,
        top_kernels=(), classes=(matmul, other),
    )  # fmt: skip
    return WorkloadProfile((rank,))


def test_the_model_gives_back_the_measured_step_on_the_profiled_flavor() -> None:
    profile = _gpu_profile()
    catalog = load_catalog()
    h100 = catalog.find("H100-SXM")
    assert h100 is not None
    from allot.profile.recommend import efficiencies

    eff = efficiencies(profile, h100)
    # Products: 30 TFLOP at 989.4 TFLOP/s = 30.3 ms ideal over 60 ms measured.
    assert eff["matmul"] == pytest.approx(30e12 / 989.4e12 / 0.060)
    # Elementwise: 33.5 GB at 3.35 TB/s = 10 ms ideal over 20 ms measured.
    assert eff["other"] == pytest.approx(0.5)
    assert step_on(profile, h100, h100, eff) == pytest.approx(0.100)
    # On an L4 (no NVLink: communication kept as measured): products 30e12/121e12/eff,
    # elementwise 33.5e9/300e9/0.5, plus 10 ms communication and 10 ms idle.
    l4 = catalog.find("L4")
    assert l4 is not None
    expected = 30e12 / 121e12 / eff["matmul"] + 33.5e9 / 300e9 / 0.5 + 0.010 + 0.010
    assert step_on(profile, l4, h100, eff) == pytest.approx(expected)


def test_flavors_ranked_by_work_per_dollar_and_time() -> None:
    profile = _gpu_profile()
    result = recommend(
        profile, load_catalog(), flavor="H100-80GB-HBM3", gpus=8, steps=10_000,
        measured={"A100-80G": Measured(0.25, job_id=7)},
    )  # fmt: skip
    rows = {e.flavor: e for e in result.estimates}
    assert rows["H100-SXM"].basis == "profiled"
    assert rows["H100-SXM"].step_seconds == pytest.approx(0.100)
    assert rows["H100-SXM"].price_per_hour == pytest.approx(12.29 * 8)
    assert rows["H100-SXM"].hours_to_finish == pytest.approx(10_000 * 0.1 / 3600)
    assert rows["H100-SXM"].steps_per_dollar == pytest.approx(3600 / (0.1 * 12.29 * 8))
    assert (rows["A100-80G"].basis, rows["A100-80G"].note) == ("measured", "job 7")
    assert rows["A100-80G"].step_seconds == 0.25
    # 30 GiB of peak memory does not fit a 24 GiB L4 nor a 16 GiB T4: listed last.
    assert rows["L4"].fits_memory is False
    too_small = [e.flavor for e in result.estimates if e.fits_memory is False]
    assert set(too_small) == {"L4", "T4", "V100"}
    assert [e.flavor for e in result.estimates][-3:] == too_small
    priced = [e for e in result.estimates if e.steps_per_dollar and e.fits_memory]
    assert priced == sorted(priced, key=lambda e: -(e.steps_per_dollar or 0))
    assert rows["H200"].price_per_hour is None
    assert rows["H200"].rank_by_cost is None
    fastest = min(result.estimates, key=lambda e: e.step_seconds)
    assert fastest.rank_by_time == 1
    assert any("calibrated" in a for a in result.assumptions)


def test_a_node_check_against_its_flavor() -> None:
    # Recorded from a healthy H100 SXM node (illustrative figures of the size nvidia-smi era
    # benchmarks report): bf16 GEMM 720 TFLOP/s, HBM copy 2,900 GB/s, pinned copies 53 GB/s;
    # one GPU throttled to 310 TFLOP/s.
    measured = [
        Measurement("gemm_bf16", "cuda:0", 720.0),
        Measurement("gemm_bf16", "cuda:1", 310.0),
        Measurement("memory", "cuda:0", 2900.0),
        Measurement("host_to_device", "cuda:0", 53.0),
        Measurement("allreduce", "all", 360.0),
    ]
    verdict = judge(measured, H100, Expected())
    by_device = {(r.name, r.device): r for r in verdict.results}
    assert by_device["gemm_bf16", "cuda:0"].expected == pytest.approx(989.4 * 0.6)
    assert by_device["gemm_bf16", "cuda:0"].ok is True
    assert by_device["gemm_bf16", "cuda:1"].ok is False  # 310 < 0.8 x 593.6
    assert by_device["allreduce", "all"].expected == pytest.approx(900 * 0.35)
    assert verdict.healthy is False
    assert "worst gemm_bf16 on cuda:1" in verdict.summary
    healthy = judge([m for m in measured if m.device != "cuda:1"], H100, Expected())
    assert healthy.healthy is True


def test_a_flavor_without_figures_is_compared_with_its_peers() -> None:
    # Recorded on this project's 2-core CI machine (allot node check, no GPU).
    mine = [Measurement("gemm_fp32", "cpu", 0.070), Measurement("memory", "cpu", 19.9)]
    alone = judge(mine, None, Expected(), flavor="cpu")
    assert alone.healthy is None
    assert "nothing to compare with: cpu is not in the catalog" in alone.summary
    peers = baseline([[Measurement("memory", "cpu", 24.0)], [Measurement("memory", "cpu", 26.0)]])
    assert peers == {"memory": 25.0}
    verdict = judge(mine, None, Expected(), peers, flavor="cpu")
    assert verdict.healthy is False  # 19.9 < 0.8 x 25 = 20; gemm has nothing to compare with
    assert judge([Measurement("memory", "cpu", 21.0)], None, Expected(), peers).healthy
    assert judge([Measurement("memory", "cpu", 10.0)], None, Expected(), peers).healthy is False


def test_the_shipped_catalog_is_complete_and_bad_files_are_named(tmp_path: Path) -> None:
    catalog = load_catalog()
    names = {f.name for f in catalog.flavors}
    assert {"H100-SXM", "H200", "A100-80G", "A100-40G", "L4", "L40S", "V100", "T4"} <= names
    assert catalog.find("h100-80gb-hbm3") is catalog.find("H100-SXM")
    v100 = catalog.find("V100")
    assert v100 is not None
    assert v100.peak_flops("bf16") == 15.7e12
    bad = tmp_path / "flavors.yaml"
    bad.write_text("flavors:\n  - name: X\n    tflops: {bf16: -1}\n    memory_gbps: 10\n")
    with pytest.raises(ConfigError, match=r"flavors.yaml:3: field 'flavors\[0\].tflops.bf16'"):
        load_catalog(bad)
