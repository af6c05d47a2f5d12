"""Wire models of profiling, version 1: a job's profiling request, its profile report, the
hardware recommendation, node checks and the recorded per-flavor step times.

Units: seconds (per step, unless named otherwise), FLOPs and bytes per step, TFLOP/s and
GB/s for rates, shares as fractions (0.25 is 25%). Pydantic and the standard library only,
like ``allot.wire.schemas``.
"""

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field, StrictBool

from allot.wire.model import WireModel

CheckName = Literal[
    "gemm_bf16", "gemm_fp16", "gemm_fp32", "memory", "host_to_device", "device_to_host",
    "allreduce",
]  # fmt: skip


class ProfileSettings(WireModel):
    """Run the job under the PyTorch profiler: record ``steps`` optimizer steps after the
    first ``skip`` (plus one warm-up step). Needs PyTorch in the job's Python."""

    model_config = ConfigDict(defer_build=False, extra="forbid", strict=True, frozen=True)

    steps: int = Field(default=5, ge=1, le=100, description="Steps to record.")
    skip: int = Field(default=3, ge=1, le=100_000, description="Steps to run first, unrecorded.")


class KernelOut(WireModel):
    """A kernel (on a CPU run: an operator) by name, per step."""

    name: str
    calls: float
    seconds: float
    share: float = Field(description="Of the rank's compute time.")


class RankOut(WireModel):
    """One rank's profiled steps; the four parts add up to ``step_seconds``."""

    rank: int
    device: str = Field(description="The GPU's name, or cpu.")
    steps: int = Field(description="Steps recorded.")
    step_seconds: float
    compute: float
    communication: float = Field(description="Collectives not hidden behind compute.")
    memory_copies: float = Field(description="Copies not hidden behind other work.")
    idle: float
    communication_overlap: float | None = Field(
        description="Share of collective time that ran alongside compute (null: none ran)."
    )
    data_loader: float = Field(description="Seconds per step in the data loader.")
    data_loader_idle: float = Field(description="Of which the device had nothing to do.")
    flops: float
    bytes: float
    kernels_per_step: float
    peak_memory_bytes: int | None
    top_kernels: list[KernelOut]


class RooflineOut(WireModel):
    """The job on its flavor's roofline."""

    flavor: str = Field(description="Whose roofline: a catalog flavor, or a measured node.")
    source: str = Field(description="Where the peak figures came from.")
    dtype: str
    peak_tflops: float
    memory_gbps: float
    ridge_point: float = Field(description="FLOP/byte where the two roofs meet.")
    intensity: float = Field(description="The job's arithmetic intensity, FLOP/byte.")
    achieved_tflops: float = Field(description="FLOPs per step over the step time.")
    achieved_in_compute_tflops: float = Field(description="Over the compute time only.")
    attainable_tflops: float = Field(description="The roofline at the job's intensity.")
    mfu: float = Field(description="Model FLOPs utilisation: achieved over peak.")
    bound: Literal["memory", "compute"]


class BottleneckOut(WireModel):
    """The headline bottleneck in plain words, its evidence, and what usually helps."""

    kind: str
    headline: str
    evidence: list[str]
    remedy: str


class ProfileOut(WireModel):
    """A profiled job's analysis."""

    job_id: int
    run_id: str
    flavor: str
    node: str
    traces: int = Field(description="Trace files analysed (one per rank).")
    step_seconds: float = Field(description="The slowest rank's step.")
    flops_per_step: float
    bytes_per_step: float
    counted: bool = Field(description="FLOPs and bytes were counted from the trace, not given.")
    total_steps: int | None = Field(description="Optimizer steps the run made, when known.")
    unprofiled_step_seconds: float | None = Field(
        description="Mean step outside the profiled window (without the profiler's overhead)."
    )
    ranks: list[RankOut]
    roofline: RooflineOut | None
    roofline_missing: str = Field(default="", description="Why there is no roofline.")
    bottleneck: BottleneckOut


class RecommendRequest(WireModel):
    """What to rank flavors for: the work left (steps), and FLOPs or bytes per step when the
    counted ones should be overridden."""

    model_config = ConfigDict(defer_build=False, extra="forbid", allow_inf_nan=False)

    steps: int | None = Field(
        default=None, ge=1, le=10**12, description="Steps to finish (default: the run's)."
    )
    flops_per_step: float | None = Field(default=None, gt=0)
    bytes_per_step: float | None = Field(default=None, gt=0)


class FlavorEstimateOut(WireModel):
    """One flavor's row of a recommendation."""

    flavor: str
    in_cluster: bool = Field(description="This cluster has nodes of it.")
    step_seconds: float
    basis: Literal["profiled", "measured", "estimated"]
    note: str
    speedup: float = Field(description="Over the profiled run's step.")
    price_per_hour: float | None = Field(description="For the job's GPUs, USD.")
    steps_per_dollar: float | None
    hours_to_finish: float
    cost_to_finish: float | None
    fits_memory: bool | None
    rank_by_cost: int | None
    rank_by_time: int


class RecommendationOut(WireModel):
    """Every catalog flavor for a profiled job, best work per dollar first."""

    job_id: int
    job_class: str = Field(description="Jobs of one class share measured speeds: the name.")
    profiled_on: str
    steps: int
    gpus: float
    estimates: list[FlavorEstimateOut]
    assumptions: list[str]
    recorded: int = Field(description="Per-flavor step times recorded for placement.")


class MeasurementIn(WireModel):
    """One microbenchmark result."""

    model_config = ConfigDict(defer_build=False, extra="forbid", allow_inf_nan=False)

    name: CheckName
    device: str = Field(min_length=1, max_length=64)
    value: float = Field(gt=0, description="TFLOP/s for gemm_*, GB/s for the others.")


class NodeCheckIn(WireModel):
    """What ``allot node check`` measured on a node."""

    model_config = ConfigDict(defer_build=False, extra="forbid", allow_inf_nan=False)

    device: str = Field(min_length=1, max_length=200, description="The GPUs' name, or cpu.")
    measurements: list[MeasurementIn] = Field(min_length=1, max_length=1024)
    drain: StrictBool = Field(
        default=False, description="Drain the node when it is below expected."
    )


class CheckResultOut(WireModel):
    """A measurement against what the flavor should reach."""

    name: str
    device: str
    value: float
    unit: str
    expected: float | None
    ok: bool | None


class NodeCheckOut(WireModel):
    """A node check as stored."""

    node: str
    flavor: str
    checked_at: datetime
    healthy: bool | None = Field(description="null: nothing to compare with.")
    summary: str
    device: str
    results: list[CheckResultOut]
    drained: bool


class FlavorSpeedOut(WireModel):
    """A job class's step time on a flavor, for throughput-aware placement."""

    job_class: str
    flavor: str
    step_seconds: float
    basis: Literal["measured", "estimated"]
    job_id: int | None
    recorded_at: datetime
