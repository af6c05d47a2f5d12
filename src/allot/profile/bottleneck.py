"""One headline for a profiled job: the bottleneck that costs it most, in plain words, with
the figures that show it and what usually helps.

The rules go from causes outside the device to the device itself, and the first that holds
names the bottleneck (thresholds are shares of the step time):
1. input: the device waits for the data loader for >= 20% of a step, and that is at least
   half of its idle time;
2. communication: collectives not hidden behind compute take >= 25%;
3. memory copies: host-device copies not hidden behind other work take >= 20%;
4. host: the device is idle >= 40% for other reasons (Python, kernel launches, syncs);
5. otherwise compute: memory-bandwidth-bound when the workload sits left of its flavor's
   ridge point on the roofline, compute-bound to its right (or just "compute" when no
   roofline is known).
"""

from __future__ import annotations

from dataclasses import dataclass

from allot.profile.analysis import WorkloadProfile
from allot.profile.roofline import Placement

INPUT_SHARE = 0.2
COMMUNICATION_SHARE = 0.25
COPY_SHARE = 0.2
HOST_SHARE = 0.4
LOW_MFU = 0.3


@dataclass(frozen=True)
class Bottleneck:
    """The verdict: a ``kind`` (input, communication, memory_copies, host, memory_bandwidth,
    compute), the headline sentence, the evidence and the usual remedy."""

    kind: str
    headline: str
    evidence: tuple[str, ...]
    remedy: str


def seconds(value: float) -> str:
    """A duration as a person reads it: ``12.3 ms``, ``850 µs``, ``1.52 s``."""
    if value >= 1:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def share(part: float, whole: float) -> str:
    """``part`` of ``whole`` as a percentage: ``37%`` (``<1%`` for a sliver)."""
    if whole <= 0:
        return "0%"
    value = part / whole
    return "<1%" if 0 < value < 0.005 else f"{value:.0%}"


def diagnose(profile: WorkloadProfile, placement: Placement | None = None) -> Bottleneck:
    """The headline bottleneck of ``profile`` (see the module docstring for the rules)."""
    step = profile.step_seconds
    compute = profile.mean("compute")
    comm = profile.mean("communication")
    copies = profile.mean("memory_copies")
    idle = profile.mean("idle")
    loader_idle = profile.mean("data_loader_idle")
    what = "GPU" if profile.on_gpu else "CPU"
    split = (
        f"per {seconds(step)} step: compute {share(compute, step)}, communication "
        f"{share(comm, step)}, memory copies {share(copies, step)}, idle {share(idle, step)}"
        f" ({len(profile.ranks)} rank{'s' if len(profile.ranks) > 1 else ''})"
    )
    evidence = [split]
    top = profile.ranks[0].top_kernels
    if top:
        evidence.append(
            f"top {'kernel' if profile.on_gpu else 'operator'}: {top[0].name} "
            f"({share(top[0].seconds, compute)} of compute)"
        )
    if loader_idle >= INPUT_SHARE * step and loader_idle >= 0.5 * idle:
        return Bottleneck(
            "input",
            f"Input-bound: the {what} waits for the data loader {share(loader_idle, step)} of"
            " each step.",
            (*evidence, f"data loader: {seconds(profile.mean('data_loader'))} per step"),
            "load batches in the background: DataLoader(num_workers=N, pin_memory=True,"
            " prefetch_factor=...), or move preprocessing out of the loop",
        )
    if comm >= COMMUNICATION_SHARE * step:
        overlap = profile.ranks[0].overlap
        hidden = "none" if overlap is None else f"{overlap:.0%}"
        return Bottleneck(
            "communication",
            f"Communication-bound: collectives take {share(comm, step)} of each step with no"
            " compute to hide behind.",
            (*evidence, f"share of collective time overlapped with compute: {hidden}"),
            "overlap communication with compute (DDP bucketing, FSDP prefetch), use fewer"
            " larger messages or a larger batch per GPU, or a flavor with a faster"
            " interconnect",
        )
    if copies >= COPY_SHARE * step:
        return Bottleneck(
            "memory_copies",
            f"Copy-bound: host-device memory copies take {share(copies, step)} of each step.",
            tuple(evidence),
            "pin host memory and copy with non_blocking=True, keep tensors on the device"
            " between steps, avoid .item() and .cpu() inside the loop",
        )
    if idle >= HOST_SHARE * step:
        rank = profile.ranks[0]
        launches = (
            f"{rank.kernels_per_step:.0f} {'kernels' if profile.on_gpu else 'operators'} per"
            f" step, median {seconds(rank.median_kernel_seconds)} each"
        )
        where = "waiting for the host" if profile.on_gpu else "outside any operator"
        return Bottleneck(
            "host",
            f"Host-bound: the {what} is idle {share(idle, step)} of each step, {where}"
            " (Python, framework overhead, many small operations).",
            (*evidence, launches),
            "do more work per operation: a larger batch, torch.compile or CUDA graphs to fuse"
            " small kernels, fewer synchronisations (.item(), prints) per step",
        )
    if placement is None:
        return Bottleneck(
            "compute",
            f"Compute-bound: compute takes {share(compute, step)} of each step.",
            tuple(evidence),
            "profile on a flavor of the catalog (or run allot node check on this node) to"
            " place it on a roofline",
        )
    roof = placement.roof
    mfu = f"MFU {placement.mfu:.1%} of {roof.label}'s {roof.dtype} peak"
    figures = (
        f"arithmetic intensity {placement.intensity:.3g} FLOP/byte; ridge point"
        f" {roof.ridge:.3g}; achieved {placement.achieved / 1e12:.3g} TFLOP/s; {mfu}"
    )
    if placement.bound == "memory":
        return Bottleneck(
            "memory_bandwidth",
            f"Memory-bandwidth-bound: compute takes {share(compute, step)} of each step and"
            f" its intensity ({placement.intensity:.3g} FLOP/byte) is below {roof.label}'s"
            f" ridge point ({roof.ridge:.3g}); {mfu}.",
            (*evidence, figures),
            "fuse elementwise operations (torch.compile), use bf16 to halve the bytes, or a"
            " larger batch to raise intensity; a flavor with more memory bandwidth helps most",
        )
    remedy = "a flavor with a higher peak, or more GPUs"
    if placement.mfu < LOW_MFU:
        remedy = (
            "raise MFU first: bf16 autocast on tensor cores, larger matrix sizes (batch,"
            " hidden size multiples of 64), fused attention"
        )
    return Bottleneck(
        "compute",
        f"Compute-bound: compute takes {share(compute, step)} of each step; {mfu}.",
        (*evidence, figures),
        remedy,
    )
