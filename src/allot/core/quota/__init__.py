"""Quotas: the cohort tree with borrowing and lending limits (``tree``), its configuration
(``config``), and fair share (dominant resource share in ``tree``, decayed usage in
``fair_share``)."""

from __future__ import annotations

from allot.core.model import JobSpec
from allot.core.quota.config import FlavorResource


def request_of(spec: JobSpec, flavor: str) -> dict[FlavorResource, int]:
    """What ``spec`` counts against a queue's quota when admitted on ``flavor``."""
    total = spec.total
    return {
        (flavor, "gpu"): total.gpu_milli,
        (flavor, "cpu"): total.cpu_milli,
        (flavor, "memory"): total.memory_mib,
    }
