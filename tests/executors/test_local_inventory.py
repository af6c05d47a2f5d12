"""Inventory: detected GPUs are reported as detected, declared ones as declared, and a
machine without NVML or a GPU is CPU-only rather than an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from allot.executors.inventory import Detected, detect, flavor_of
from allot.executors.local import LocalExecutor

NO_NVML = Detected(error="NVML Shared Library Not Found")


@pytest.mark.parametrize(
    ("name", "flavor"),
    [
        ("NVIDIA H200", "H200"),
        ("NVIDIA A100-SXM4-80GB", "A100-SXM4-80GB"),
        ("NVIDIA H100 80GB HBM3", "H100-80GB-HBM3"),
        ("Tesla V100-SXM2-16GB", "V100-SXM2-16GB"),
        ("NVIDIA GeForce RTX 4090", "RTX-4090"),
        ("NVIDIA RTX A6000", "RTX-A6000"),
    ],
)
def test_device_names_become_compact_flavors(name: str, flavor: str) -> None:
    assert flavor_of(name) == flavor


def test_detected_gpus_form_one_node() -> None:
    found = detect(None, "box", devices=Detected(("NVIDIA H200",) * 2))
    (node,) = found.nodes
    assert (node.name, node.flavor, node.gpus) == ("box", "H200", 2)
    assert node.cpu_milli >= 1000
    assert node.memory_mib > 0
    assert (found.source, found.detail) == ("nvml", "detected 2 x NVIDIA H200 with NVML")


def test_a_declaration_below_what_is_detected_is_honoured_and_said() -> None:
    found = detect(2, "box", devices=Detected(("NVIDIA H100 80GB HBM3",) * 8))
    assert found.nodes[0].gpus == 2
    assert found.source == "nvml"
    assert found.detail == "declared 2 of 8 detected H100-80GB-HBM3 (--gpus 2)"


def test_a_declaration_never_exceeds_what_is_detected() -> None:
    found = detect(16, "box", devices=Detected(("NVIDIA H100",) * 8))
    assert found.nodes[0].gpus == 8
    assert "only 8 H100; using 8" in found.detail


def test_a_mixed_machine_is_reported_as_such() -> None:
    found = detect(None, "box", devices=Detected(("NVIDIA H100", "NVIDIA A100")))
    assert (found.nodes[0].flavor, found.nodes[0].gpus) == ("H100", 2)
    assert "mixed GPU types" in found.detail


def test_declared_gpus_without_nvml_are_declared_not_detected() -> None:
    found = detect(4, "box", devices=NO_NVML)
    assert (found.nodes[0].flavor, found.nodes[0].gpus, found.source) == ("gpu", 4, "declared")
    assert found.detail == (
        "declared 4 GPUs (--gpus 4); no GPU was detected (NVML: NVML Shared Library Not Found)"
    )


def test_without_nvml_or_a_declaration_the_node_is_cpu_only() -> None:
    found = detect(None, "box", devices=NO_NVML)
    assert (found.nodes[0].flavor, found.nodes[0].gpus, found.source) == ("cpu", 0, "none")
    assert found.detail == "no GPU detected (NVML: NVML Shared Library Not Found); CPU-only"


def test_a_negative_declaration_is_refused() -> None:
    with pytest.raises(ValueError, match="gpus: must be >= 0"):
        detect(-1, "box", devices=NO_NVML)


def test_this_machine_is_detected_without_failing(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path, node_name="here")
    report = executor.inventory_report()
    (node,) = executor.inventory()
    assert node.name == "here"
    if report.source == "nvml":
        assert node.gpus > 0
        assert report.detail.startswith("detected ")
    else:  # no NVML library, no driver or no GPU: reported, never raised
        assert (node.gpus, node.flavor, report.source) == (0, "cpu", "none")
        assert report.detail.startswith("no GPU detected (NVML: ")


def test_the_hostname_names_the_node_by_default() -> None:
    assert detect(None, None, devices=NO_NVML).nodes[0].name
