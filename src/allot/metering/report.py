"""Usage reports: the ledger's sums priced, per group (tenant, user, queue, flavor, and
optionally time bucket), with the idle capacity and who pays for it.

Cost of a group = sum over its sums s (one flavor, one segment) of
``units(s) * price(flavor, segment start) / 3600`` (``allot.metering.prices``; segments are cut
at every price change, so each segment has one price per flavor).

Idle (per flavor, per segment, per resource): ``idle = capacity * seconds - allocated``, so
allocated + idle = capacity x time for every resource and period. Its cost is priced like
usage. ``idle: share`` spreads each flavor's idle cost over the groups in proportion to what
they paid on that flavor in the window (OpenCost's default idle sharing, "share idle by
cost"): ``idle_cost(g) = sum_f idle_cost(f) * cost(g, f) / cost(f)``; a flavor nobody paid for
keeps its idle cost unallocated. ``idle: unallocated`` reports it on a line of its own.
Capacity is the nodes known now, over the whole window.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from allot.metering.ledger import Sums
from allot.metering.prices import SECONDS_PER_HOUR, PriceCatalog


class IdleMode(StrEnum):
    """What becomes of idle capacity's cost."""

    SHARE = "share"  # spread over the groups in proportion to their cost
    UNALLOCATED = "unallocated"  # reported on a line of its own


@dataclass(frozen=True, slots=True)
class Capacity:
    """What a flavor's nodes hold: milli-GPU, milli-cores, MiB."""

    flavor: str
    gpu_milli: int
    cpu_milli: int
    memory_mib: int


@dataclass(frozen=True, slots=True)
class Amounts:
    """GPU-hours, CPU core-hours, memory GiB-hours and their cost."""

    gpu_hours: float = 0.0
    cpu_hours: float = 0.0
    memory_gib_hours: float = 0.0
    cost: float = 0.0

    def plus(self, other: Amounts) -> Amounts:
        return Amounts(
            self.gpu_hours + other.gpu_hours,
            self.cpu_hours + other.cpu_hours,
            self.memory_gib_hours + other.memory_gib_hours,
            self.cost + other.cost,
        )


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One group's usage: what it held, its cost, and its share of idle cost."""

    key: tuple[str, ...]
    used: Amounts
    idle_cost: float = 0.0

    @property
    def total_cost(self) -> float:
        return self.used.cost + self.idle_cost


@dataclass(frozen=True)
class UsageReport:
    """A priced report over ``[since, until)``."""

    by: tuple[str, ...]
    since: float
    until: float
    currency: str
    rows: tuple[ReportRow, ...]
    idle_mode: IdleMode = IdleMode.UNALLOCATED
    idle: Amounts = field(default_factory=Amounts)  # all idle capacity and its cost
    unallocated_idle_cost: float = 0.0  # the idle cost no group was given
    capacity: Amounts = field(default_factory=Amounts)
    unpriced: tuple[str, ...] = ()  # flavors used that have no price

    @property
    def total_cost(self) -> float:
        return sum(r.total_cost for r in self.rows) + self.unallocated_idle_cost


def _amounts(
    prices: PriceCatalog, flavor: str, at: float, gpu_ms: float, cpu_ms: float, mem_s: float
) -> Amounts:
    units_seconds = prices.weights.units(gpu_ms, cpu_ms, mem_s)
    return Amounts(
        gpu_ms / 1000.0 / SECONDS_PER_HOUR,
        cpu_ms / 1000.0 / SECONDS_PER_HOUR,
        mem_s / 1024.0 / SECONDS_PER_HOUR,
        units_seconds * prices.rate_at(flavor, at) / SECONDS_PER_HOUR,
    )


def price_sums(
    sums: Iterable[Sums], prices: PriceCatalog
) -> dict[tuple[tuple[str, ...], str], Amounts]:
    """Amounts per (group, flavor) over every segment."""
    out: dict[tuple[tuple[str, ...], str], Amounts] = {}
    for s in sums:
        got = _amounts(
            prices,
            s.flavor,
            s.segment,
            s.gpu_milli_seconds,
            s.cpu_milli_seconds,
            s.memory_mib_seconds,
        )
        slot = (s.key, s.flavor)
        out[slot] = out[slot].plus(got) if slot in out else got
    return out


def idle_of(
    sums: Sequence[Sums],
    capacity: Iterable[Capacity],
    cuts: Sequence[float],
    prices: PriceCatalog,
) -> dict[str, tuple[Amounts, Amounts]]:
    """Per flavor: (capacity, idle) over the segments of ``cuts``; idle never below zero
    (capacity is the nodes known now: a flavor that shrank since can show more use)."""
    used: dict[tuple[str, float], list[float]] = {}
    for s in sums:
        slot = used.setdefault((s.flavor, s.segment), [0.0, 0.0, 0.0])
        slot[0] += s.gpu_milli_seconds
        slot[1] += s.cpu_milli_seconds
        slot[2] += s.memory_mib_seconds
    out: dict[str, tuple[Amounts, Amounts]] = {}
    for cap in capacity:
        total, idle = Amounts(), Amounts()
        for lo, hi in itertools.pairwise(cuts):
            seconds = hi - lo
            held = cap.gpu_milli * seconds, cap.cpu_milli * seconds, cap.memory_mib * seconds
            u = used.get((cap.flavor, lo), [0.0, 0.0, 0.0])
            free = [max(0.0, h - x) for h, x in zip(held, u, strict=True)]
            total = total.plus(_amounts(prices, cap.flavor, lo, *held))
            idle = idle.plus(_amounts(prices, cap.flavor, lo, *free))
        if cap.flavor in out:
            prev_total, prev_idle = out[cap.flavor]
            total, idle = prev_total.plus(total), prev_idle.plus(idle)
        out[cap.flavor] = (total, idle)
    return out


def build_report(
    sums: Sequence[Sums],
    *,
    by: Sequence[str],
    since: float,
    until: float,
    prices: PriceCatalog,
    cuts: Sequence[float],
    capacity: Iterable[Capacity] = (),
    idle_mode: IdleMode = IdleMode.UNALLOCATED,
    group_by_segment: bool = False,
    paid_on: Mapping[str, float] | None = None,
) -> UsageReport:
    """Price ``sums`` and account for idle capacity (see the module docstring). With
    ``group_by_segment`` each row's key starts with its segment's start (time buckets; idle
    is then reported, never shared). ``paid_on``: what every group paid per flavor, when
    ``sums`` hold only some groups (idle is shared by what all paid)."""
    if group_by_segment:
        sums = [Sums((f"{s.segment:.0f}", *s.key), s.flavor, s.segment, *_raw(s)) for s in sums]
    priced = price_sums(sums, prices)
    rows: dict[tuple[str, ...], Amounts] = {}
    cost_on: dict[str, float] = {}
    for (key, flavor), got in priced.items():
        rows[key] = rows[key].plus(got) if key in rows else got
        cost_on[flavor] = cost_on.get(flavor, 0.0) + got.cost
    idle_by_flavor = idle_of(sums, capacity, cuts, prices)
    idle_total, cap_total = Amounts(), Amounts()
    for cap, idle in idle_by_flavor.values():
        cap_total, idle_total = cap_total.plus(cap), idle_total.plus(idle)
    shares: dict[tuple[str, ...], float] = {}
    unallocated = idle_total.cost
    share = idle_mode is IdleMode.SHARE and not group_by_segment
    if share:
        for (key, flavor), got in priced.items():
            paid = (cost_on if paid_on is None else paid_on).get(flavor, 0.0)
            if flavor in idle_by_flavor and paid > 0:
                part = idle_by_flavor[flavor][1].cost * got.cost / paid
                shares[key] = shares.get(key, 0.0) + part
        unallocated = idle_total.cost - sum(shares.values())
    used_flavors = {s.flavor for s in sums}
    return UsageReport(
        tuple(by),
        since,
        until,
        prices.currency,
        tuple(
            ReportRow(key, amounts, shares.get(key, 0.0)) for key, amounts in sorted(rows.items())
        ),
        idle_mode,
        idle_total,
        max(0.0, unallocated),
        cap_total,
        tuple(sorted(f for f in used_flavors if not prices.priced(f))),
    )


def _raw(s: Sums) -> tuple[float, float, float]:
    return s.gpu_milli_seconds, s.cpu_milli_seconds, s.memory_mib_seconds
