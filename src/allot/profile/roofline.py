"""The roofline model (Williams, Waterman and Patterson, "Roofline", CACM 2009): a flavor can
do at most ``min(peak FLOP/s, arithmetic intensity x memory bandwidth)``; a workload with
intensity below the ridge point (peak / bandwidth) is memory-bound there, above it
compute-bound.

``place`` puts one profiled job on a flavor's roofline: its FLOPs and bytes per step give its
arithmetic intensity, FLOPs over step time its achieved FLOP/s, and achieved over peak its
model FLOPs utilisation (MFU, as in the PaLM paper: the FLOPs the model needs, not those the
hardware ran, over the peak of the dtype the products ran in). ``plot`` draws it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from allot.profile.analysis import OpClass, WorkloadProfile
from allot.profile.catalog import FlavorSpec

MATMUL = "matmul"


@dataclass(frozen=True)
class Roof:
    """A flavor's roofline: peak FLOP/s in one dtype and memory bandwidth in bytes/s."""

    label: str
    dtype: str
    peak_flops: float
    bandwidth: float

    @classmethod
    def of(cls, spec: FlavorSpec, dtype: str) -> Roof:
        """The roofline of catalog entry ``spec`` for ``dtype``."""
        return cls(spec.name, dtype, spec.peak_flops(dtype), spec.bandwidth)

    @property
    def ridge(self) -> float:
        """The intensity (FLOP/byte) where the memory roof meets the compute roof."""
        return self.peak_flops / self.bandwidth

    def attainable(self, intensity: float) -> float:
        """The most FLOP/s a workload of this intensity can reach here."""
        return min(self.peak_flops, intensity * self.bandwidth)


@dataclass(frozen=True)
class Placement:
    """A workload on a roofline (rates in FLOP/s, intensity in FLOP/byte)."""

    roof: Roof
    flops_per_step: float
    bytes_per_step: float
    step_seconds: float
    compute_seconds: float
    intensity: float
    achieved: float  # FLOPs per step over the whole step
    achieved_in_compute: float  # over the time compute ran
    attainable: float
    mfu: float
    bound: str  # "memory" or "compute": which roof is above the workload

    @property
    def of_attainable(self) -> float:
        """Achieved over what the roofline allows at this intensity."""
        return self.achieved / self.attainable if self.attainable > 0 else 0.0


def dominant_dtype(classes: Sequence[OpClass]) -> str:
    """The dtype most of the products' FLOPs ran in (``fp32`` when there were none)."""
    flops: dict[str, float] = {}
    for c in classes:
        if c.kind == MATMUL:
            flops[c.dtype] = flops.get(c.dtype, 0.0) + c.flops
    return max(flops, key=lambda d: flops[d]) if flops else "fp32"


def place(
    roof: Roof,
    *,
    flops_per_step: float,
    bytes_per_step: float,
    step_seconds: float,
    compute_seconds: float,
) -> Placement:
    """Put a workload on ``roof``. Raises ValueError for a step time or byte count <= 0."""
    if step_seconds <= 0:
        raise ValueError(f"step_seconds: must be > 0, got {step_seconds}")
    if bytes_per_step <= 0:
        raise ValueError(f"bytes_per_step: must be > 0, got {bytes_per_step}")
    intensity = flops_per_step / bytes_per_step
    achieved = flops_per_step / step_seconds
    in_compute = flops_per_step / compute_seconds if compute_seconds > 0 else 0.0
    return Placement(
        roof=roof,
        flops_per_step=flops_per_step,
        bytes_per_step=bytes_per_step,
        step_seconds=step_seconds,
        compute_seconds=compute_seconds,
        intensity=intensity,
        achieved=achieved,
        achieved_in_compute=in_compute,
        attainable=roof.attainable(intensity),
        mfu=achieved / roof.peak_flops,
        bound="memory" if intensity < roof.ridge else "compute",
    )


def place_profile(
    profile: WorkloadProfile,
    roof: Roof,
    *,
    flops_per_step: float | None = None,
    bytes_per_step: float | None = None,
) -> Placement:
    """Put a profiled run on ``roof``: per-rank FLOPs and bytes (counted, or given), the
    slowest rank's step time and the ranks' mean compute time."""
    return place(
        roof,
        flops_per_step=profile.mean("flops") if flops_per_step is None else flops_per_step,
        bytes_per_step=profile.mean("bytes") if bytes_per_step is None else bytes_per_step,
        step_seconds=profile.step_seconds,
        compute_seconds=profile.mean("compute"),
    )


def plot(placement: Placement, path: str | Path, *, title: str = "") -> Path:
    """Draw the roofline and the workload (log-log) into a PNG at ``path``; returns it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    roof = placement.roof
    lo = min(placement.intensity, roof.ridge) / 100
    hi = max(placement.intensity, roof.ridge) * 100
    x = np.logspace(np.log10(lo), np.log10(hi), 200)
    y = np.minimum(roof.peak_flops, x * roof.bandwidth) / 1e12
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.loglog(x, y, color="black", label=f"{roof.label} roofline ({roof.dtype})")
    ax.axvline(roof.ridge, color="grey", linestyle=":", linewidth=1)
    ax.scatter(
        [placement.intensity],
        [placement.achieved / 1e12],
        color="tab:red",
        zorder=3,
        label=f"whole step: {placement.achieved / 1e12:.3g} TFLOP/s, MFU {placement.mfu:.1%}",
    )
    if placement.achieved_in_compute > 0:
        ax.scatter(
            [placement.intensity],
            [placement.achieved_in_compute / 1e12],
            color="tab:orange",
            marker="^",
            zorder=3,
            label=f"compute time only: {placement.achieved_in_compute / 1e12:.3g} TFLOP/s",
        )
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("TFLOP/s")
    ax.set_title(title or f"Roofline on {roof.label}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out
