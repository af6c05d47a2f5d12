"""The usage ledger rolled up per UTC day: what each record adds to each day it touches, and how
a report's segments split into whole days (read from the rollup) and pieces of days.

A record held ``[start, end)`` adds to every UTC day ``[d, d + DAY)`` it overlaps its amounts
times the overlap (milli-GPU-, milli-core- and MiB-seconds), and to every day it held from
midnight to midnight its amounts themselves (the day's *whole-day holdings*). So, for one group
and flavor, what the ledger holds within any piece ``[a, b)`` of a day ``d`` is

    (b - a) * whole-day holdings of d
    + the overlap with [a, b) of the records that start or end inside d (``partial_on``)

since a record overlapping ``d`` either held all of it or starts or ends inside it. A report
therefore reads, per segment of its window, the rollup's rows for the whole days inside it, and
for the pieces of days at its edges (a window's first and last day, a price change mid-day, time
buckets shorter than a day) the day's holdings and only the records starting or ending that
day: never more than a day's worth of records per edge, however long runs are.

Prices are applied by the report per segment (segments are cut at every price change), so the
rollup holds amounts only, and a new prices file needs no rewrite of it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from allot.metering.ledger import Sums

DAY = 86400.0


def day_of(at: float) -> float:
    """The UTC midnight starting the day of instant ``at`` (UNIX seconds)."""
    return math.floor(at / DAY) * DAY


def next_midnight(at: float) -> float:
    """``at`` itself when it is a midnight, else the next one."""
    day = day_of(at)
    return day if day == at else day + DAY


@dataclass(frozen=True, slots=True)
class DayShare:
    """What a record held of one day: its overlap in seconds, and whether that is all of it."""

    day: float
    seconds: float
    whole: bool


def day_shares(start: float, end: float) -> list[DayShare]:
    """The days ``[start, end)`` overlaps, in order, with the overlap of each."""
    out: list[DayShare] = []
    if not end > start:
        return out
    day = day_of(start)
    while day < end:
        following = day + DAY
        seconds = min(end, following) - max(start, day)
        if seconds > 0:
            out.append(DayShare(day, seconds, start <= day and end >= following))
        day = following
    return out


def partial_on(start: float, end: float, day: float) -> bool:
    """True when a record held ``[start, end)`` starts or ends inside ``day`` (and overlaps
    it): ``day < end < day + DAY``, or ``day < start < day + DAY <= end``."""
    following = day + DAY
    return day < end < following or (day < start < following and end >= following)


@dataclass(frozen=True, slots=True)
class Piece:
    """The part ``[lo, hi)`` of one day, shorter than the day, inside the report's segment
    that starts at ``segment``."""

    segment: float
    lo: float
    hi: float


@dataclass(frozen=True)
class Plan:
    """How a window's segments are read: ``whole`` as (segment start, first day, end day), the
    days ``first <= day < end`` inside the segment, and ``pieces`` per day of the rest."""

    whole: tuple[tuple[float, float, float], ...]
    pieces: dict[float, tuple[Piece, ...]]


def plan(cuts: Sequence[float]) -> Plan:
    """The whole days and the pieces of days of the segments of ``cuts``."""
    whole: list[tuple[float, float, float]] = []
    pieces: dict[float, list[Piece]] = {}
    for lo, hi in itertools.pairwise(cuts):
        if not hi > lo:
            continue
        first, last = next_midnight(lo), day_of(hi)
        edges = [(lo, hi)]
        if first < last:
            whole.append((lo, first, last))
            edges = [(lo, first), (last, hi)]
        for a, b in edges:
            day = day_of(a)
            while day < b:
                piece = Piece(lo, max(a, day), min(b, day + DAY))
                if piece.hi > piece.lo:
                    pieces.setdefault(day, []).append(piece)
                day += DAY
    return Plan(tuple(whole), {day: tuple(got) for day, got in sorted(pieces.items())})


@dataclass
class Tally:
    """Sums per (group, flavor, segment) being added up from rollup rows and records."""

    totals: dict[tuple[tuple[str, ...], str, float], list[float]] = field(default_factory=dict)

    def add(
        self, key: tuple[str, ...], flavor: str, segment: float, amounts: Iterable[float]
    ) -> None:
        slot = self.totals.setdefault((key, flavor, segment), [0.0, 0.0, 0.0])
        for i, amount in enumerate(amounts):
            slot[i] += amount

    def add_holdings(
        self,
        key: tuple[str, ...],
        flavor: str,
        pieces: Iterable[Piece],
        holdings: Sequence[float],
    ) -> None:
        """What holding ``holdings`` (milli-GPU, milli-cores, MiB) all day adds to ``pieces``."""
        if not any(holdings):
            return
        for piece in pieces:
            seconds = piece.hi - piece.lo
            self.add(key, flavor, piece.segment, (h * seconds for h in holdings))

    def sums(self) -> list[Sums]:
        """The sums, sorted, leaving out what adds up to nothing (as the ledger's sums do)."""
        return [
            Sums(key, flavor, segment, *amounts)
            for (key, flavor, segment), amounts in sorted(self.totals.items())
            if any(amounts)
        ]
