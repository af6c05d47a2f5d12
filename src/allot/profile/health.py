"""Node health: a node check's measurements against what its flavor should reach.

Each measurement (``gemm_bf16``, ``gemm_fp16``, ``gemm_fp32`` in TFLOP/s; ``memory``,
``host_to_device``, ``device_to_host``, ``allreduce`` in GB/s) is compared with the flavor's
catalog peak times the share a healthy node reaches (``catalog.Expected``); for a flavor the
catalog lacks, with what other nodes of the same flavor measured (their median, a
``baseline``). A check below ``threshold`` of its expected figure fails, and a node with a
failed check is flagged. Pure: measurements in, verdict out.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from allot.profile.catalog import Expected, FlavorSpec

TFLOPS = "TFLOP/s"
GBPS = "GB/s"
UNITS = {
    "gemm_bf16": TFLOPS,
    "gemm_fp16": TFLOPS,
    "gemm_fp32": TFLOPS,
    "memory": GBPS,
    "host_to_device": GBPS,
    "device_to_host": GBPS,
    "allreduce": GBPS,
}


@dataclass(frozen=True)
class Measurement:
    """One microbenchmark's result on one device (``cuda:0``, ``cpu``, ``all`` for a
    collective across the node's GPUs)."""

    name: str
    device: str
    value: float

    @property
    def unit(self) -> str:
        """TFLOP/s or GB/s."""
        return UNITS.get(self.name, "")


@dataclass(frozen=True)
class CheckResult:
    """A measurement with its expected figure (None: nothing to compare with) and verdict."""

    name: str
    device: str
    value: float
    unit: str
    expected: float | None
    ok: bool | None

    @property
    def ratio(self) -> float | None:
        """Measured over expected."""
        return None if not self.expected else self.value / self.expected


@dataclass(frozen=True)
class Verdict:
    """The node's verdict: ``healthy`` is None when nothing could be compared."""

    results: tuple[CheckResult, ...]
    healthy: bool | None
    summary: str


def expected_value(name: str, spec: FlavorSpec, expected: Expected) -> float | None:
    """What a healthy GPU of ``spec`` reaches in check ``name`` (None: the catalog has no
    figure for it)."""
    if name.startswith("gemm_"):
        dtype = name.removeprefix("gemm_")
        peak = spec.tflops.get(dtype)
        return None if peak is None else peak * expected.gemm
    if name == "memory":
        return spec.memory_gbps * expected.memory
    if name in ("host_to_device", "device_to_host"):
        return None if spec.host_gbps is None else spec.host_gbps * expected.host
    if name == "allreduce":
        ic = spec.interconnect_gbps
        return None if ic is None else ic * expected.collective
    return None


def baseline(peers: Iterable[Sequence[Measurement]]) -> dict[str, float]:
    """The median of each check over other nodes' latest results (one sequence per node)."""
    values: dict[str, list[float]] = {}
    for measurements in peers:
        for m in measurements:
            values.setdefault(m.name, []).append(m.value)
    return {name: statistics.median(v) for name, v in values.items()}


def judge(
    measurements: Sequence[Measurement],
    spec: FlavorSpec | None,
    expected: Expected,
    peers: Mapping[str, float] | None = None,
    *,
    flavor: str = "",
) -> Verdict:
    """Compare ``measurements`` with ``spec`` (or, without one, with ``peers``: the fleet's
    medians for the flavor)."""
    results: list[CheckResult] = []
    for m in measurements:
        want: float | None = None
        if spec is not None:
            want = expected_value(m.name, spec, expected)
        elif peers and m.name in peers:
            want = peers[m.name]
        ok = None if want is None else m.value >= expected.threshold * want
        results.append(CheckResult(m.name, m.device, m.value, m.unit, want, ok))
    compared = [r for r in results if r.ok is not None]
    failed = [r for r in compared if not r.ok]
    against = f"flavor {spec.name}" if spec is not None else f"other {flavor or 'such'} nodes"
    if not measurements:
        return Verdict((), None, "no checks ran")
    if not compared:
        name = flavor or "this flavor"
        return Verdict(
            tuple(results),
            None,
            f"nothing to compare with: {name} is not in the catalog and no other"
            " node of it has been checked",
        )
    if failed:
        worst = min(failed, key=lambda r: r.ratio or 0.0)
        return Verdict(
            tuple(results),
            False,
            f"below expected: {len(failed)} of {len(compared)} checks under"
            f" {expected.threshold:.0%} of what {against} should reach; worst {worst.name} on"
            f" {worst.device} at {worst.value:.4g} {worst.unit}"
            f" ({(worst.ratio or 0.0):.0%} of {worst.expected:.4g})",
        )
    return Verdict(
        tuple(results),
        True,
        f"healthy: {len(compared)} checks at or above {expected.threshold:.0%} of what"
        f" {against} should reach",
    )
