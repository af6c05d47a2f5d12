"""Inventory: what this machine offers the scheduler, detected with NVML or declared.

Invariants
- Never pretends: GPUs are reported as detected (``source="nvml"``) only when NVML saw them,
  a declared count never exceeds what NVML detected, and a declaration on a machine where
  nothing was detected is reported as declared, with the flavor ``gpu``.
- Never crashes on a machine without NVML, a driver or a GPU: every NVML failure becomes a
  sentence in ``detail`` and the machine is reported CPU-only (or as declared).
- ``pynvml`` (from ``nvidia-ml-py``) is imported lazily, inside the detection, so importing
  this module needs nothing beyond the standard library.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from allot.core.model import MILLI_PER_CPU, Node
from allot.core.units import quantity

Source = Literal["nvml", "declared", "none", "slurm"]
CPU_FLAVOR = "cpu"
DECLARED_FLAVOR = "gpu"
# Words in NVML device names that say who made the card, not which card it is.
VENDOR_WORDS = frozenset({"nvidia", "tesla", "geforce", "quadro"})


@dataclass(frozen=True, slots=True)
class Inventory:
    """The nodes an executor offers, where the GPU count came from, and a sentence saying so."""

    nodes: list[Node]
    source: Source
    detail: str


@dataclass(frozen=True, slots=True)
class Detected:
    """What NVML reported: the device names in index order, or why it could not tell."""

    names: tuple[str, ...] = ()
    error: str | None = None


def flavor_of(device_name: str) -> str:
    """A compact flavor token from an NVML device name: ``NVIDIA H200`` -> ``H200``,
    ``NVIDIA A100-SXM4-80GB`` -> ``A100-SXM4-80GB``, ``NVIDIA H100 80GB HBM3`` ->
    ``H100-80GB-HBM3``."""
    words = [w for w in device_name.split() if w.lower() not in VENDOR_WORDS]
    token = re.sub(r"[^A-Za-z0-9._-]", "", "-".join(words))
    return token or DECLARED_FLAVOR


def nvml_devices() -> Detected:
    """Ask NVML for the GPUs of this machine; any failure is returned as ``error``."""
    try:
        import pynvml  # type: ignore[import-untyped]
    except ImportError as err:
        return Detected(error=f"nvidia-ml-py is not installed ({err})")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        return Detected(error=str(err))
    except OSError as err:  # a broken library can fail below NVML's own error handling
        return Detected(error=str(err))
    try:
        names = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(index))
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        return Detected(tuple(names))
    except pynvml.NVMLError as err:
        return Detected(error=str(err))
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def cpu_milli() -> int:
    """The CPUs this process may run on, in milli-cores."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    return count * MILLI_PER_CPU


def memory_mib(meminfo: str = "/proc/meminfo") -> int:
    """Total memory in MiB from ``MemTotal`` (0 when it cannot be read)."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024  # the value is in kB
    except (OSError, ValueError, IndexError):
        pass
    return 0


def describe_devices(names: tuple[str, ...]) -> str:
    """``2 x NVIDIA H200``, or ``1 x NVIDIA H100, 1 x NVIDIA A100`` for a mixed machine."""
    return ", ".join(f"{n} x {name}" for name, n in Counter(names).items())


def detect(
    gpus: int | None,
    node_name: str | None,
    *,
    devices: Detected | None = None,
) -> Inventory:
    """This machine as one node. ``gpus`` is the administrator's declaration (``--gpus N``),
    ``node_name`` overrides the short hostname; ``devices`` stands in for NVML in tests."""
    if gpus is not None and gpus < 0:
        raise ValueError(f"gpus: must be >= 0 when declared, got {gpus}")
    name = node_name or socket.gethostname().split(".", 1)[0] or "localhost"
    found = nvml_devices() if devices is None else devices
    names = found.names
    if names:
        flavor = flavor_of(names[0])
        detected = len(names)
        mixed = len(set(names)) > 1
        if gpus is None or gpus == detected:
            count = detected
            detail = f"detected {describe_devices(names)} with NVML"
        elif gpus < detected:
            count = gpus
            detail = f"declared {gpus} of {detected} detected {flavor} (--gpus {gpus})"
        else:
            count = detected
            declared = quantity(gpus, "GPU")
            detail = (
                f"declared {declared} (--gpus {gpus}) but NVML detected only {detected} "
                f"{flavor}; using {detected}"
            )
        if mixed:
            detail += f"; mixed GPU types ({describe_devices(names)}), all reported as {flavor}"
        source: Source = "nvml"
        if count == 0:
            flavor = CPU_FLAVOR
    else:
        why = found.error or "NVML found no GPU"
        if gpus:
            count, flavor, source = gpus, DECLARED_FLAVOR, "declared"
            declared = quantity(gpus, "GPU")
            detail = f"declared {declared} (--gpus {gpus}); no GPU was detected (NVML: {why})"
        else:
            count, flavor, source = 0, CPU_FLAVOR, "none"
            detail = f"no GPU detected (NVML: {why}); CPU-only"
    node = Node(name, flavor, count, cpu_milli(), memory_mib())
    return Inventory([node], source, detail)
