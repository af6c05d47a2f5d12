"""Reading the usage ledger in bulk: the amounts held within each segment of a window, per
group and flavor, summed by the database (``GROUP BY``); and the one kind of event about no job
that metering writes.

A record counts in a segment ``[lo, hi)`` for its overlap ``min(ended_at, hi) -
max(started_at, lo)`` when it overlaps it at all. ``usage_sums`` reads the daily rollup
(``usage_daily``, ``allot.store.rollup``) for the whole UTC days inside each segment, and for
the pieces of days at the segments' edges the day's whole-day holdings times the piece's length
plus the records that start or end that day (``allot.metering.rollup``): a month's report over
a million records reads some thousands of rollup rows and a day or two of records, and equals
the sum over the records (to float rounding). ``ledger_sums`` sums the records themselves: up
to ``ONE_PASS`` segments in one pass, each segment three sums per row; more one query per
segment.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from typing import cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Double,
    Table,
    and_,
    case,
    func,
    literal,
    select,
)

from allot.metering.ledger import Sums, check_groups
from allot.metering.rollup import DAY, Piece, Tally, plan
from allot.store import rollup
from allot.store.tables import UsageRow

_USAGE = cast(Table, UsageRow.__table__)


ONE_PASS = 4  # segments summed in one pass over the ledger; more: one query per segment
DAY_PASS = 24  # pieces of one day summed in one pass over its records (a day's worth)
SHORT_WINDOW = 86400.0  # SQLite: windows up to a day read through the ``ended_at`` index


def usage_sums(
    conn: Connection,
    by: Sequence[str],
    cuts: Sequence[float],
    tenants: Collection[str] | None = None,
) -> list[Sums]:
    """The ledger's sums per group of ``by``, flavor and segment of ``cuts`` (consecutive
    instants), of ``tenants`` only when given, read through the daily rollup."""
    groups = check_groups(by)
    read = plan(cuts)
    tally = Tally()
    for key, flavor, segment, amounts in rollup.whole_days(conn, groups, read.whole, tenants):
        tally.add(key, flavor, segment, amounts)
    days = list(read.pieces)
    for key, flavor, day, held in rollup.holdings(conn, groups, days, tenants):
        tally.add_holdings(key, flavor, read.pieces[day], held)
    for day, pieces in read.pieces.items():
        started, ended = _USAGE.c.started_at, _USAGE.c.ended_at
        lo: BindParameter[float] = literal(day, Double())
        hi: BindParameter[float] = literal(day + DAY, Double())
        # The records ending inside the day (read from a covering index alone), and those
        # starting inside it that end after it (a range of the start index): a day's worth.
        ending = and_(ended > lo, ended < hi)
        starting = and_(started > lo, started < hi, ended >= hi)
        for at in range(0, len(pieces), DAY_PASS):
            chosen: Sequence[Piece] = pieces[at : at + DAY_PASS]
            segment_of = {p.lo: p.segment for p in chosen}  # a day's pieces start apart
            for within in (ending, starting):
                for s in _sums(conn, groups, [(p.lo, p.hi) for p in chosen], tenants, within):
                    tally.add(s.key, s.flavor, segment_of[s.segment], _amounts(s))
    return tally.sums()


def _amounts(s: Sums) -> tuple[float, float, float]:
    return s.gpu_milli_seconds, s.cpu_milli_seconds, s.memory_mib_seconds


def ledger_sums(
    conn: Connection,
    by: Sequence[str],
    cuts: Sequence[float],
    tenants: Collection[str] | None = None,
) -> list[Sums]:
    """The same sums as ``usage_sums``, from the records alone (what reports read before the
    rollup; benchmarks compare the two)."""
    groups = check_groups(by)
    segments = list(itertools.pairwise(cuts))
    if not segments:
        return []
    if len(segments) <= ONE_PASS:
        return _sums(conn, groups, segments, tenants)
    out: list[Sums] = []
    for segment in segments:
        out += _sums(conn, groups, [segment], tenants)
    return out


def _sums(
    conn: Connection,
    groups: tuple[str, ...],
    segments: Sequence[tuple[float, float]],
    tenants: Collection[str] | None,
    within: ColumnElement[bool] | None = None,
) -> list[Sums]:
    """One query: per group and flavor, three sums (GPU, CPU, memory) per segment, of the
    records overlapping them (and matching ``within``, when given)."""
    sqlite = conn.dialect.name == "sqlite"
    keys = [_USAGE.c[name] for name in groups]
    if "flavor" not in groups:
        keys.append(_USAGE.c.flavor)
    started, ended = _USAGE.c.started_at, _USAGE.c.ended_at
    sums = []
    for a, b in segments:
        lo: BindParameter[float] = literal(a, Double())
        hi: BindParameter[float] = literal(b, Double())
        # NULL (left out of the sum) for a record outside the segment. CASE rather than
        # min()/max(): SQLite evaluates it a quarter faster, and both databases have it.
        span = case(
            (
                and_(ended > lo, started < hi),
                case((ended < hi, ended), else_=hi) - case((started > lo, started), else_=lo),
            )
        )
        sums += [
            func.sum(span * _USAGE.c.gpu_milli),
            func.sum(span * _USAGE.c.cpu_milli),
            func.sum(span * _USAGE.c.memory_mib),
        ]
    first, last = segments[0][0], segments[-1][1]
    ended_filter: ColumnElement[float] = ended
    if sqlite and last - first > SHORT_WINDOW:
        # A long window holds most of the ledger: one pass over the covering report index
        # beats a walk of the ``ended_at`` index and a table lookup per row (``+ 0`` keeps
        # SQLite's planner off that index).
        ended_filter = ended + 0
    query = select(*keys, *sums).group_by(*keys)
    if within is None:
        query = query.where(
            ended_filter > literal(first, Double()), started < literal(last, Double())
        )
    else:
        # Alone, so the planner reads its index ranges (an overlap test beside it could
        # lead the planner to walk every record ending after the piece instead).
        query = query.where(within)
    if tenants is not None:
        query = query.where(_USAGE.c.tenant.in_(sorted(tenants)))
    flavor_at = groups.index("flavor") if "flavor" in groups else len(groups)
    width = len(keys)
    out: list[Sums] = []
    for row in conn.execute(query):
        values = tuple(row)
        key = tuple(str(v) for v in values[: len(groups)])
        for i, (a, _) in enumerate(segments):
            gpu, cpu, mem = (float(v or 0.0) for v in values[width + 3 * i : width + 3 * i + 3])
            if gpu or cpu or mem:
                out.append(Sums(key, str(values[flavor_at]), float(a), gpu, cpu, mem))
    return out
