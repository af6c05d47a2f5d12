"""Synthetic workloads: spec validation with lines, reproducible generation, the shipped example."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from allot.config.errors import ConfigError
from allot.core.model import Resources, SpecError
from allot.sim.traces.synthetic import (
    LognormalDuration,
    SyntheticSpec,
    generate,
    load_synthetic_spec,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SPEC = """\
seed: 3
num_jobs: 500
arrival_rate_per_hour: 60
duration:
  median_seconds: 600
  sigma: 1.0
  min_seconds: 30
  max_seconds: 7200
gpus:
  0.5: 0.2
  1: 0.5
  16: 0.3
gpus_per_node: 8
tenants:
  a: 3
  b: 1
cpu_per_gpu: 4
memory_gib_per_gpu: 16
flavors: [A100, H100]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "synthetic.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_spec(tmp_path: Path) -> None:
    spec = load_synthetic_spec(write(tmp_path, SPEC))
    assert spec == SyntheticSpec(
        seed=3,
        num_jobs=500,
        arrival_rate_per_hour=60.0,
        duration=LognormalDuration(600.0, 1.0, 30.0, 7200.0),
        gpus=((0.5, 0.2), (1.0, 0.5), (16.0, 0.3)),
        gpus_per_node=8,
        tenants=(("a", 3.0), ("b", 1.0)),
        cpu_per_gpu=4.0,
        memory_gib_per_gpu=16.0,
        flavors=("A100", "H100"),
    )


def test_generation_is_reproducible_and_shaped_by_the_spec(tmp_path: Path) -> None:
    spec = load_synthetic_spec(write(tmp_path, SPEC))
    jobs = generate(spec)
    assert jobs == generate(spec)
    assert generate(spec, limit=20) == jobs[:20]
    assert jobs != generate(dataclasses.replace(spec, seed=4))
    assert [j.spec.id for j in jobs] == list(range(1, 501))
    times = [j.spec.submit_time for j in jobs]
    assert times == sorted(times)
    assert times[0] > 0
    assert all(30.0 <= j.duration <= 7200.0 for j in jobs)
    shapes = Counter(j.spec.tasks for j in jobs)
    assert set(shapes) == {
        (Resources(500, 2000, 8192),),
        (Resources(1000, 4000, 16384),),
        (Resources(8000, 32000, 131072),) * 2,
    }
    tenants = Counter(j.spec.tenant for j in jobs)
    assert tenants["a"] > tenants["b"] > 0
    assert all(j.spec.flavors == ("A100", "H100") for j in jobs)
    assert all(j.spec.user == j.spec.queue == j.spec.tenant for j in jobs)


def test_arrival_rate_sets_the_span(tmp_path: Path) -> None:
    spec = dataclasses.replace(load_synthetic_spec(write(tmp_path, SPEC)), num_jobs=5000)
    jobs = generate(spec)
    hours = jobs[-1].spec.submit_time / 3600
    assert 5000 / hours == pytest.approx(60, rel=0.1)


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "rule"),
    [
        ("seed: 3", "seed: -1", 1, "seed", "must be an integer >= 0"),
        ("num_jobs: 500", "num_jobs: many", 2, "num_jobs", "must be an integer"),
        (
            "arrival_rate_per_hour: 60",
            "arrival_rate_per_hour: 0",
            3,
            "arrival_rate_per_hour",
            "> 0",
        ),
        ("  sigma: 1.0", "  sigma: -1", 6, "duration.sigma", "must be a number >= 0"),
        (
            "  min_seconds: 30",
            "  min_seconds: 9000",
            8,
            "duration.max_seconds",
            "min_seconds <= max",
        ),
        ("  max_seconds: 7200", "  max_secs: 7200", 8, "duration.max_secs", "unknown key"),
        ("  16: 0.3", "  16: 0.2", 10, "gpus", "probabilities must sum to 1, got 0.9"),
        ("  16: 0.3", "  16: -0.3", 12, "gpus.16", "must be a number >= 0"),
        ("  0.5: 0.2", "  1.5: 0.2", 10, "gpus", "counts of 1 or more must be whole GPUs"),
        ("  0.5: 0.2", "  0.0005: 0.2", 10, "gpus", "whole milli-GPUs"),
        ("  0.5: 0.2", "  1.0: 0.2", 11, "gpus.1", "repeats the one on line 10"),
        ("  0.5: 0.2", "  x: 0.2", 10, "gpus.x", "must be a number"),
        ("gpus_per_node: 8", "gpus_per_node: 0", 13, "gpus_per_node", ">= 1"),
        ("  b: 1", "  b: -1", 16, "tenants.b", "must be a number >= 0"),
        ("  a: 3\n  b: 1", "  a: 0\n  b: 0", 15, "tenants", "weights must not all be 0"),
        ("cpu_per_gpu: 4", "cpu_per_gpu: four", 17, "cpu_per_gpu", "must be a number"),
        ("flavors: [A100, H100]", "flavors: [A100, A100]", 19, "flavors", "distinct"),
        ("flavors: [A100, H100]", "flavours: [A100]", 19, "flavours", "unknown key; allowed keys"),
        ("seed: 3\n", "", 1, "seed", "is required"),
    ],
)
def test_errors_name_file_line_and_field(
    tmp_path: Path, old: str, new: str, line: int, field: str, rule: str
) -> None:
    assert old in SPEC
    path = write(tmp_path, SPEC.replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_synthetic_spec(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: field '{field}':"), message
    assert rule in message


def test_spec_rules_hold_outside_files_too() -> None:
    with pytest.raises(SpecError, match="gpus: probabilities must sum to 1"):
        SyntheticSpec(
            seed=1,
            num_jobs=1,
            arrival_rate_per_hour=1.0,
            duration=LognormalDuration(1.0, 0.0, 1.0, 1.0),
            gpus=((1.0, 0.5),),
            gpus_per_node=8,
            tenants=(("a", 1.0),),
            cpu_per_gpu=1.0,
            memory_gib_per_gpu=1.0,
        )


def test_example_spec() -> None:
    spec = load_synthetic_spec(EXAMPLES / "synthetic.yaml")
    jobs = generate(spec)
    assert 1500 <= len(jobs) <= 2500
    assert len({j.spec.tenant for j in jobs}) == 4
    sizes = Counter(j.spec.total.gpu_milli for j in jobs)
    assert sizes[1000] > len(jobs) / 2
    assert sizes[500] > 0
    assert sizes[16000] > 0
    assert max(len(j.spec.tasks) for j in jobs) == 2
    # Offered GPU load on the 64-GPU example cluster: busy, yet below capacity.
    span = jobs[-1].spec.submit_time
    offered = sum(j.duration * j.spec.total.gpu_milli / 1000 for j in jobs) / span
    assert 0.5 * 64 < offered < 0.9 * 64
