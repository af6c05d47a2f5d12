"""The daily rollup of the usage ledger in the database (``usage_daily``, see
``allot.metering.rollup``): adding records to it, and reading it back for a report.

``add`` is called in the transaction that appends the records, so a record and its rollup rows
are committed together or not at all: a server killed (even with ``kill -9``) between the two
cannot leave the rollup short of a record or counting one twice. Rows are only ever added to
(an upsert adding the record's amounts), in key order, so two transactions ending runs of the
same group on PostgreSQL lock the rows they share in the same order and never deadlock.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Double,
    Executable,
    Table,
    case,
    func,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from allot.metering.rollup import day_shares
from allot.store.tables import UsageDayRow

DAILY = cast(Table, UsageDayRow.__table__)
KEY = ("day", "tenant", "user", "queue", "flavor")
AMOUNTS = ("gpu_milli_seconds", "cpu_milli_seconds", "memory_mib_seconds")
HOLDINGS = ("whole_gpu_milli", "whole_cpu_milli", "whole_memory_mib")
CASE_RANGES = 8  # whole-day ranges mapped to segments in SQL; more: summed per day
_UPSERTS: dict[str, Executable] = {}


def _upsert(dialect: str) -> Executable:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` adding to the amounts (both databases)."""
    if dialect not in _UPSERTS:
        ins = postgresql.insert(DAILY) if dialect == "postgresql" else sqlite.insert(DAILY)
        _UPSERTS[dialect] = ins.on_conflict_do_update(
            index_elements=[DAILY.c[name] for name in KEY],
            set_={name: DAILY.c[name] + ins.excluded[name] for name in AMOUNTS + HOLDINGS},
        )
    return _UPSERTS[dialect]


def day_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What ``records`` (``usage_records`` values) add to each day and group, in key order."""
    totals: dict[tuple[Any, ...], list[float]] = {}
    for r in records:
        amounts = (r["gpu_milli"], r["cpu_milli"], r["memory_mib"])
        for share in day_shares(r["started_at"], r["ended_at"]):
            key = (share.day, r["tenant"], r["user"], r["queue"], r["flavor"])
            slot = totals.setdefault(key, [0.0, 0.0, 0.0, 0, 0, 0])
            for i, amount in enumerate(amounts):
                slot[i] += amount * share.seconds
                if share.whole:
                    slot[3 + i] += amount
    return [
        dict(zip(KEY + AMOUNTS + HOLDINGS, (*key, *slot), strict=True))
        for key, slot in sorted(totals.items())
    ]


def add(conn: Connection, records: Iterable[Mapping[str, Any]]) -> None:
    """Add ``records`` (being appended to ``usage_records`` in this transaction) to the
    rollup."""
    rows = day_rows(records)
    if rows:
        conn.execute(_upsert(conn.dialect.name), rows)


def _keys(groups: Sequence[str]) -> list[ColumnElement[Any]]:
    keys: list[ColumnElement[Any]] = [DAILY.c[name] for name in groups]
    if "flavor" not in groups:
        keys.append(DAILY.c.flavor)
    return keys


def _rows(
    conn: Connection,
    groups: Sequence[str],
    label: ColumnElement[Any],
    columns: Sequence[str],
    where: ColumnElement[bool],
    tenants: Collection[str] | None,
) -> Iterator[tuple[tuple[str, ...], str, float, tuple[float, float, float]]]:
    keys = _keys(groups)
    query = (
        select(*keys, label, *(func.sum(DAILY.c[name]) for name in columns))
        .where(where)
        .group_by(*keys, label)
    )
    if tenants is not None:
        query = query.where(DAILY.c.tenant.in_(sorted(tenants)))
    flavor_at = groups.index("flavor") if "flavor" in groups else len(groups)
    width = len(keys)
    for row in conn.execute(query):
        values = tuple(row)
        if values[width] is None:
            continue
        g, c, m = (float(v or 0.0) for v in values[width + 1 :])
        key = tuple(str(v) for v in values[: len(groups)])
        yield key, str(values[flavor_at]), float(values[width]), (g, c, m)


def whole_days(
    conn: Connection,
    groups: Sequence[str],
    ranges: Sequence[tuple[float, float, float]],
    tenants: Collection[str] | None,
) -> Iterator[tuple[tuple[str, ...], str, float, tuple[float, float, float]]]:
    """Per group, flavor and segment: the rollup's amounts over the days of ``ranges``
    ((segment start, first day, end day), disjoint and in order)."""
    if not ranges:
        return
    day = DAILY.c.day
    where = (day >= literal(ranges[0][1], Double())) & (day < literal(ranges[-1][2], Double()))
    if len(ranges) <= CASE_RANGES:
        # Days between two ranges (pieces of a day cut by a price change) get no label.
        label: ColumnElement[Any] = case(
            *(
                (
                    (day >= literal(first, Double())) & (day < literal(end, Double())),
                    literal(segment, Double()),
                )
                for segment, first, end in ranges
            )
        )
        yield from _rows(conn, groups, label, AMOUNTS, where, tenants)
        return
    starts = [first for _, first, _ in ranges]
    for key, flavor, at, amounts in _rows(conn, groups, day, AMOUNTS, where, tenants):
        i = bisect.bisect_right(starts, at) - 1
        segment, _, end = ranges[i]
        if at < end:
            yield key, flavor, segment, amounts


def holdings(
    conn: Connection,
    groups: Sequence[str],
    days: Sequence[float],
    tenants: Collection[str] | None,
) -> Iterator[tuple[tuple[str, ...], str, float, tuple[float, float, float]]]:
    """Per group, flavor and one of ``days``: the amounts of the records that held all of it."""
    if not days:
        return
    where = DAILY.c.day.in_([literal(d, Double()) for d in days])
    yield from _rows(conn, groups, DAILY.c.day, HOLDINGS, where, tenants)
