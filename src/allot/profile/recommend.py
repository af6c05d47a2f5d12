"""Hardware recommendation: a profiled job's step time on every flavor of the catalog, ranked
by work per dollar and by time to finish.

The model (every time per step):
- each operator class of the profile (``analysis.OpClass``: calls, FLOPs, bytes, device time)
  takes ``max(FLOPs / peak, bytes / bandwidth) / efficiency`` on a flavor (its roofline time),
  and at least one kernel launch per call (``LAUNCH_SECONDS``);
- the efficiency of products and of other operators is calibrated on the run itself when it
  ran on a flavor of the catalog (roofline time on that flavor over the measured time, so the
  model gives back the measured step there); a run on a CPU or an unknown flavor uses
  ``DEFAULT_EFFICIENCY`` instead;
- collectives scale with the interconnect and copies with the host link, when both flavors
  give one; the host's own time between operators runs alongside the device (the step takes
  the longer of the two); the time the device sat idle waiting for the host is kept as it was;
- where allot has measured the same job class on a flavor (a profiled run there), the
  measurement replaces the estimate.
Work is counted in steps: time to finish is ``steps x step time``; work per dollar is steps
per dollar at the flavor's price for the job's GPUs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from allot.profile.analysis import OpClass, WorkloadProfile
from allot.profile.catalog import Catalog, FlavorSpec

LAUNCH_SECONDS = 5e-6  # the least a kernel takes from launch to done on a GPU
DEFAULT_EFFICIENCY = {"matmul": 0.5, "other": 0.5}
EFFICIENCY_RANGE = (0.01, 1.0)
SECONDS_PER_HOUR = 3600.0
GIB = 1 << 30


@dataclass(frozen=True)
class Measured:
    """A step time allot measured for the job class on a flavor, and the job it came from."""

    step_seconds: float
    job_id: int | None = None


@dataclass(frozen=True)
class Estimate:
    """One flavor's row of the recommendation."""

    flavor: str
    step_seconds: float
    basis: str  # "profiled" (this run), "measured" (another run of the class), "estimated"
    price_per_hour: float | None  # for the job's GPUs
    steps_per_dollar: float | None
    hours_to_finish: float
    cost_to_finish: float | None
    fits_memory: bool | None
    speedup: float  # over the profiled run's step
    rank_by_cost: int | None = None
    rank_by_time: int = 0
    note: str = ""


@dataclass(frozen=True)
class Recommendation:
    """Every flavor's estimate, best work per dollar first (flavors without a price after
    them, fastest first), and the assumptions behind them."""

    estimates: tuple[Estimate, ...]
    steps: int
    gpus: float
    assumptions: tuple[str, ...] = field(default_factory=tuple)

    def best(self) -> Estimate | None:
        """The flavor with the most work per dollar, if any has a price."""
        priced = [e for e in self.estimates if e.steps_per_dollar is not None]
        return priced[0] if priced else None


def roofline_seconds(c: OpClass, spec: FlavorSpec) -> float:
    """The least time class ``c`` can take on ``spec``: its FLOPs at peak or its bytes at
    full bandwidth, whichever takes longer."""
    flops = c.flops / spec.peak_flops(c.dtype) if c.flops else 0.0
    return max(flops, c.bytes / spec.bandwidth)


def efficiencies(profile: WorkloadProfile, source: FlavorSpec | None) -> dict[str, float]:
    """Achieved over roofline time, per kind, on the run's own flavor (defaults without one)."""
    if source is None or not profile.on_gpu:
        return dict(DEFAULT_EFFICIENCY)
    found = dict(DEFAULT_EFFICIENCY)
    lo, hi = EFFICIENCY_RANGE
    for kind in found:
        members = [c for c in profile.classes() if c.kind == kind and c.seconds > 0]
        measured = sum(c.seconds for c in members)
        ideal = sum(roofline_seconds(c, source) for c in members)
        if measured > 0 and ideal > 0:
            found[kind] = min(hi, max(lo, ideal / measured))
    return found


def step_on(
    profile: WorkloadProfile,
    target: FlavorSpec,
    source: FlavorSpec | None,
    efficiency: Mapping[str, float],
) -> float:
    """The model's step time for ``profile`` on ``target`` (see the module docstring)."""
    classes = profile.classes()
    device = 0.0
    for c in classes:
        ideal = roofline_seconds(c, target) / efficiency.get(c.kind, 1.0)
        launches = c.calls * LAUNCH_SECONDS if (c.flops or c.bytes) else 0.0
        device += max(ideal, launches)
    if source is not None and profile.on_gpu:
        # Kernels with no FLOPs or bytes counted (unattributed, custom) keep their time,
        # scaled by bandwidth as most such kernels are memory-bound.
        uncounted = sum(c.seconds for c in classes if not (c.flops or c.bytes))
        device += uncounted * source.memory_gbps / target.memory_gbps
        host = 0.0
    else:
        # A CPU run: operators that move no data (dispatch, autograd, views) stay on the host.
        host = sum(c.seconds for c in classes if not (c.flops or c.bytes))
    comm = profile.mean("communication")
    if source is not None and source.interconnect_gbps and target.interconnect_gbps:
        comm *= source.interconnect_gbps / target.interconnect_gbps
    copies = profile.mean("memory_copies")
    if source is not None and source.host_gbps and target.host_gbps:
        copies *= source.host_gbps / target.host_gbps
    return max(device + comm + copies, host) + profile.mean("idle")


def recommend(
    profile: WorkloadProfile,
    catalog: Catalog,
    *,
    flavor: str,
    gpus: float,
    steps: int,
    measured: Mapping[str, Measured] | None = None,
) -> Recommendation:
    """Rank every flavor of ``catalog`` for ``profile``, a run on ``flavor`` of a job holding
    ``gpus`` GPUs (a CPU-only job counts one GPU per task) that does ``steps`` steps."""
    if steps < 1:
        raise ValueError(f"steps: must be >= 1, got {steps}")
    if gpus <= 0:
        raise ValueError(f"gpus: must be > 0, got {gpus}")
    measured = measured or {}
    source = catalog.find(flavor)
    efficiency = efficiencies(profile, source)
    peak = max((r.peak_memory_bytes or 0) for r in profile.ranks) or None
    rows: list[Estimate] = []
    profiled = profile.step_seconds
    for spec in catalog.flavors:
        note = ""
        if source is not None and spec.name == source.name:
            step, basis = profiled, "profiled"
        elif spec.name in measured:
            step, basis = measured[spec.name].step_seconds, "measured"
            if measured[spec.name].job_id is not None:
                note = f"job {measured[spec.name].job_id}"
        else:
            step, basis = step_on(profile, spec, source, efficiency), "estimated"
        price = None if spec.price_per_gpu_hour is None else spec.price_per_gpu_hour * gpus
        hours = steps * step / SECONDS_PER_HOUR
        fits = None if peak is None or not spec.memory_gib else peak <= spec.memory_gib * GIB
        rows.append(
            Estimate(
                flavor=spec.name,
                step_seconds=step,
                basis=basis,
                price_per_hour=price,
                steps_per_dollar=None if price is None else SECONDS_PER_HOUR / (step * price),
                hours_to_finish=hours,
                cost_to_finish=None if price is None else hours * price,
                fits_memory=fits,
                speedup=profiled / step if step > 0 else 0.0,
                note=note,
            )
        )
    return Recommendation(
        _ranked(rows), steps, gpus, _assumptions(profile, source, flavor, efficiency, catalog)
    )


def _ranked(rows: list[Estimate]) -> tuple[Estimate, ...]:
    by_time = {e.flavor: i + 1 for i, e in enumerate(sorted(rows, key=lambda e: e.step_seconds))}
    priced = sorted(
        (e for e in rows if e.steps_per_dollar is not None),
        key=lambda e: -(e.steps_per_dollar or 0.0),
    )
    by_cost = {e.flavor: i + 1 for i, e in enumerate(priced)}
    ranked = [
        Estimate(
            **{
                **e.__dict__,
                "rank_by_cost": by_cost.get(e.flavor),
                "rank_by_time": by_time[e.flavor],
            }
        )
        for e in rows
    ]
    usable = [e for e in ranked if e.fits_memory is not False]
    too_small = [e for e in ranked if e.fits_memory is False]
    usable.sort(key=lambda e: (e.rank_by_cost is None, e.rank_by_cost or 0, e.rank_by_time))
    too_small.sort(key=lambda e: e.rank_by_time)
    return tuple(usable + too_small)


def _assumptions(
    profile: WorkloadProfile,
    source: FlavorSpec | None,
    flavor: str,
    efficiency: Mapping[str, float],
    catalog: Catalog,
) -> tuple[str, ...]:
    eff = ", ".join(f"{k} {v:.0%}" for k, v in efficiency.items())
    notes = [
        "work is counted in training steps (optimizer steps); a step moves the same FLOPs and"
        " bytes on every flavor",
        f"each operator class runs at its roofline time (FLOPs at peak or bytes at full"
        f" bandwidth) over an efficiency of {eff}, and a kernel launch takes at least"
        f" {LAUNCH_SECONDS * 1e6:.0f} µs",
        "time the device sat idle waiting for the host (Python, data loading) is the same on"
        " every flavor",
        f"prices and peaks from the catalog {catalog.source or '(built in)'}",
    ]
    if source is None:
        where = "the CPU" if not profile.on_gpu else f"flavor {flavor!r}, not in the catalog"
        notes.insert(
            2,
            f"the run was profiled on {where}: efficiencies are defaults, not calibrated on a"
            " GPU, so treat GPU estimates as rough (within a factor of a few)",
        )
    else:
        notes.insert(2, f"efficiencies calibrated on this run's flavor, {source.name}")
    return tuple(notes)
