"""Reading the usage ledger in bulk: the amounts held within each segment of a window, per
group and flavor, summed by the database (``GROUP BY``), so a month's report over a million
records reads a few hundred rows; and the one kind of event about no job that metering writes.

A record counts in a segment ``[lo, hi)`` for its overlap ``min(ended_at, hi) -
max(started_at, lo)`` (written with ``CASE``, which SQLite and PostgreSQL both have); only
records overlapping the segment are read (``ended_at > lo`` uses the ledger's index).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from typing import Any, cast

from sqlalchemy import BindParameter, Connection, Double, Table, bindparam, case, func, select

from allot.metering.ledger import Sums, check_groups
from allot.store import events
from allot.store.tables import UsageRow

_USAGE = cast(Table, UsageRow.__table__)


def usage_sums(
    conn: Connection,
    by: Sequence[str],
    cuts: Sequence[float],
    tenants: Collection[str] | None = None,
) -> list[Sums]:
    """The ledger's sums per group of ``by``, flavor and segment of ``cuts`` (consecutive
    instants), of ``tenants`` only when given."""
    groups = check_groups(by)
    columns = [_USAGE.c[name] for name in groups]
    keys = [*columns, *([] if "flavor" in groups else [_USAGE.c.flavor])]
    lo: BindParameter[float] = bindparam("lo", type_=Double())
    hi: BindParameter[float] = bindparam("hi", type_=Double())
    start = case((_USAGE.c.started_at > lo, _USAGE.c.started_at), else_=lo)
    end = case((_USAGE.c.ended_at < hi, _USAGE.c.ended_at), else_=hi)
    span = end - start
    query = (
        select(
            *keys,
            func.sum(span * _USAGE.c.gpu_milli),
            func.sum(span * _USAGE.c.cpu_milli),
            func.sum(span * _USAGE.c.memory_mib),
        )
        .where(_USAGE.c.ended_at > lo, _USAGE.c.started_at < hi)
        .group_by(*keys)
    )
    if tenants is not None:
        query = query.where(_USAGE.c.tenant.in_(sorted(tenants)))
    flavor_at = groups.index("flavor") if "flavor" in groups else len(groups)
    out: list[Sums] = []
    for a, b in itertools.pairwise(cuts):
        for row in conn.execute(query, {"lo": float(a), "hi": float(b)}):
            values = tuple(row)
            out.append(
                Sums(
                    tuple(str(v) for v in values[: len(groups)]),
                    str(values[flavor_at]),
                    float(a),
                    float(values[-3] or 0.0),
                    float(values[-2] or 0.0),
                    float(values[-1] or 0.0),
                )
            )
    return out


def record_event(
    conn: Connection, *, kind: str, at: float, actor: str, reason: str, data: dict[str, Any]
) -> None:
    """Append an event about no job (a budget's warning)."""
    events.append(
        conn,
        events.event_values(
            at=at,
            kind=kind,
            job_id=None,
            from_state=None,
            to_state=None,
            actor=actor,
            reason=reason,
            data=data,
        ),
    )
