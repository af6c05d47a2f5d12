"""Prices: money per billing unit-hour per flavor, each with the instant it takes effect, and
the billing weights that turn what a job holds into billing units.

Billing units follow Slurm's ``TRESBillingWeights`` (slurm.conf): a job's billing is the
weighted sum of what it holds,

    units = w_gpu * GPUs + w_cpu * CPU cores + w_mem * memory GiB

(defaults ``w_gpu = 1``, ``w_cpu = w_mem = 0``: one unit per GPU, so the price is a price per
GPU-hour), and the cost of holding it from ``t0`` to ``t1`` on flavor ``f`` is

    cost = sum over price periods p of f overlapping [t0, t1):
           units * price_p * overlap_seconds / 3600

so a price change splits a running job's cost at its effective instant. A flavor without any
price costs nothing (and reports say so: ``priced`` is False). Effective instants are seconds
(UNIX time live; virtual seconds in the simulator); files may write them as dates.

Invariants: a catalog's periods per flavor are sorted by ``since`` with no two equal; the
price before the first period of a flavor is that first period's price only when it has no
``since`` (written as ``since: null`` or left out), else nothing.
"""

from __future__ import annotations

import datetime as dt
import itertools
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from allot.config.yamldoc import YamlMap, YamlNode, load_yaml, parse_yaml

EARLIEST = float("-inf")
SECONDS_PER_HOUR = 3600.0
MIB_PER_GIB = 1024.0


@dataclass(frozen=True, slots=True)
class BillingWeights:
    """Billing units per GPU, per CPU core and per GiB of memory (Slurm's
    ``TRESBillingWeights``: ``GRES/gpu``, ``CPU``, ``Mem``)."""

    gpu: float = 1.0
    cpu: float = 0.0
    memory_gib: float = 0.0

    def units(self, gpu_milli: float, cpu_milli: float, memory_mib: float) -> float:
        """Billing units of holding these amounts (milli-GPU, milli-core, MiB)."""
        return (
            self.gpu * gpu_milli / 1000.0
            + self.cpu * cpu_milli / 1000.0
            + self.memory_gib * memory_mib / MIB_PER_GIB
        )


@dataclass(frozen=True, slots=True)
class Price:
    """From ``since`` on (until the flavor's next price), one billing unit-hour of ``flavor``
    costs ``per_hour``."""

    flavor: str
    per_hour: float
    since: float = EARLIEST


@dataclass(frozen=True)
class PriceCatalog:
    """Every flavor's prices over time, the billing weights and the currency."""

    prices: tuple[Price, ...] = ()
    weights: BillingWeights = field(default_factory=BillingWeights)
    currency: str = "USD"
    _by_flavor: dict[str, tuple[list[float], list[float]]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by: dict[str, list[Price]] = {}
        for price in self.prices:
            by.setdefault(price.flavor, []).append(price)
        index: dict[str, tuple[list[float], list[float]]] = {}
        for flavor, prices in by.items():
            prices.sort(key=lambda p: p.since)
            for a, b in itertools.pairwise(prices):
                if a.since == b.since:
                    raise ValueError(f"prices: flavor {flavor} has two prices from {a.since}")
            index[flavor] = ([p.since for p in prices], [p.per_hour for p in prices])
        object.__setattr__(self, "_by_flavor", index)

    @property
    def flavors(self) -> frozenset[str]:
        """The flavors with at least one price."""
        return frozenset(self._by_flavor)

    def priced(self, flavor: str) -> bool:
        """True when ``flavor`` has a price."""
        return flavor in self._by_flavor

    def rate_at(self, flavor: str, at: float) -> float:
        """Money per billing unit-hour of ``flavor`` at instant ``at`` (0 where unpriced)."""
        found = self._by_flavor.get(flavor)
        if found is None:
            return 0.0
        sinces, rates = found
        i = bisect_right(sinces, at) - 1
        return rates[i] if i >= 0 else 0.0

    def boundaries(self, start: float, end: float) -> list[float]:
        """The instants in ``(start, end)`` where some flavor's price changes, sorted."""
        found = {s for sinces, _ in self._by_flavor.values() for s in sinces if start < s < end}
        return sorted(found)

    def segments(self, start: float, end: float) -> list[tuple[float, float]]:
        """``[start, end)`` cut at every price change: within a segment every price holds."""
        cuts = [start, *self.boundaries(start, end), end]
        return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]

    def cost(
        self,
        flavor: str,
        start: float,
        end: float,
        gpu_milli: float,
        cpu_milli: float = 0.0,
        memory_mib: float = 0.0,
    ) -> float:
        """What holding these amounts of ``flavor`` from ``start`` to ``end`` costs, split at
        every price change of the flavor in between."""
        if end <= start or flavor not in self._by_flavor:
            return 0.0
        units = self.weights.units(gpu_milli, cpu_milli, memory_mib)
        if units == 0.0:
            return 0.0
        sinces, rates = self._by_flavor[flavor]
        total = 0.0
        i = max(0, bisect_right(sinces, start) - 1)
        while i < len(sinces):
            lo = max(start, sinces[i])
            hi = min(end, sinces[i + 1]) if i + 1 < len(sinces) else end
            if lo >= end:
                break
            if hi > lo:
                total += rates[i] * (hi - lo)
            i += 1
        return units * total / SECONDS_PER_HOUR

    def with_defaults(self, per_gpu_hour: Mapping[str, float]) -> PriceCatalog:
        """This catalog plus a constant price for every flavor in ``per_gpu_hour`` it does
        not price (the flavor catalog's list prices fill what a prices file leaves out)."""
        extra = tuple(
            Price(flavor, rate) for flavor, rate in per_gpu_hour.items() if not self.priced(flavor)
        )
        return PriceCatalog((*self.prices, *extra), self.weights, self.currency)


def _instant(node: YamlNode) -> float:
    """An effective instant: a number of seconds, a date (midnight UTC) or a date-time."""
    if node.is_null:
        return EARLIEST
    value = node.node.value
    try:
        if node.node.tag.endswith((":int", ":float")):
            return node.as_float()
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise node.error(
            f"must be a date (2026-12-01), a date-time or seconds, got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def parse_prices(text: str, source: str = "<prices>") -> PriceCatalog:
    """A prices document (see ``docs/metering.md``); raises ConfigError naming the field."""
    return _catalog(parse_yaml(text, source))


def load_prices(path: str | Path) -> PriceCatalog:
    """The prices file at ``path``; raises ConfigError for a bad file."""
    return _catalog(load_yaml(path))


def _catalog(doc: YamlMap) -> PriceCatalog:
    doc.check_keys(("currency", "weights", "prices"), required=("prices",))
    weights = BillingWeights()
    if "weights" in doc:
        w = doc.get_map("weights")
        w.check_keys(("gpu", "cpu", "memory_gib"))
        weights = BillingWeights(
            w.get_float("gpu", minimum=0.0, default=1.0),
            w.get_float("cpu", minimum=0.0, default=0.0),
            w.get_float("memory_gib", minimum=0.0, default=0.0),
        )
    prices: list[Price] = []
    seen: dict[tuple[str, float], int] = {}
    for item in doc.get_list("prices"):
        entry = item.as_map()
        entry.check_keys(("flavor", "per_hour", "since"), required=("flavor", "per_hour"))
        flavor = entry.get_str("flavor")
        since = EARLIEST
        node = entry.optional("since")
        if node is not None:
            since = _instant(node)
        if (flavor, since) in seen:
            raise item.error(
                f"flavor {flavor} has a price from the same instant on line {seen[flavor, since]}"
            )
        seen[flavor, since] = item.line
        prices.append(Price(flavor, entry.get_float("per_hour", minimum=0.0), since))
    currency = doc.get_str("currency", default="USD")
    return PriceCatalog(tuple(prices), weights, currency)


def flat_prices(per_gpu_hour: Iterable[tuple[str, float]]) -> PriceCatalog:
    """A catalog of constant prices per GPU-hour (the flavor catalog's list prices)."""
    return PriceCatalog(tuple(Price(flavor, rate) for flavor, rate in per_gpu_hour))
