"""Billed usage for fair share: the money an interval was billed, decayed by Slurm's half-life,
for the quota file's ``fair_share_usage: billed`` (``allot.core.quota.fair_share``).

An interval holding ``units = w_gpu * GPUs + w_cpu * cores + w_mem * GiB`` billing units on
flavor ``f`` accrues ``units * price_f(t) / 3600`` per second (``allot.metering.prices``), so
its billed usage is exactly what metering charges for it, and its decayed billed usage at
``now`` is the integral of that rate times ``2 ** (-(now - t) / h)``: ``held_usage`` per stretch
of time in which the flavor's price holds. A flavor priced nowhere accrues nothing, as it costs
nothing.

Invariant: summed over recorded intervals it equals the step-by-step accrual of
``UsageHistory.advanced`` with the rates of ``billed_rate`` held between price changes (the
simulator advances that way), so the live loop and the simulator agree.
"""

from __future__ import annotations

from allot.core.quota.fair_share import held_usage
from allot.metering.prices import SECONDS_PER_HOUR, PriceCatalog


def billed_rate(
    prices: PriceCatalog,
    flavor: str,
    gpu_milli: float,
    cpu_milli: float,
    memory_mib: float,
    at: float,
) -> float:
    """Money per second that holding these amounts of ``flavor`` is billed at instant ``at``."""
    rate = prices.rate_at(flavor, at)
    if rate == 0.0:
        return 0.0
    return prices.weights.units(gpu_milli, cpu_milli, memory_mib) * rate / SECONDS_PER_HOUR


def billed_usage(
    prices: PriceCatalog,
    flavor: str,
    amounts: tuple[float, float, float],
    start: float,
    end: float,
    now: float,
    half_life: float,
) -> float:
    """Decayed billed usage at ``now`` of holding ``amounts`` (milli-GPU, milli-core, MiB) of
    ``flavor`` from ``start`` to ``end`` (both at most ``now``)."""
    if end <= start or not prices.priced(flavor):
        return 0.0
    total = 0.0
    for a, b in prices.segments(start, end):
        rate = billed_rate(prices, flavor, *amounts, a)
        if rate > 0.0:
            total += held_usage(rate, a, b, now, half_life)
    return total
