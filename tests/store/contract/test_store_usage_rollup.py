"""Reports read through the ledger's daily rollup equal the records' own sums: for random runs
(across midnights, lasting minutes to days, preempted and requeued, some starting or ending at
midnight exactly) and random windows, price changes (mid-day too), time buckets and groups,
``usage_sums`` and the report priced from it equal the overlap of every record with every
segment, computed from the records alone (``sums_of``), to float rounding."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allot.control.ports import Store
from allot.core.model import JobState
from allot.metering.ledger import GROUPS, Interval, Sums, cuts_of, every, sums_of
from allot.metering.prices import Price, PriceCatalog
from allot.metering.report import build_report
from allot.metering.rollup import DAY
from store_builders import new_job, run_for

START = 20_000 * DAY  # a UTC midnight (2024-10-04)
FLAVORS = ("H100-80G", "A100")


def _instant(rng: random.Random) -> float:
    if rng.random() < 0.15:
        return START + rng.randrange(6) * DAY  # a midnight exactly
    return START + rng.uniform(0, 5 * DAY)


def _fill(store: Store, seed: int) -> None:
    """Jobs of two tenants run, are preempted and requeued, and end; runs last from nothing
    to three days."""
    rng = random.Random(seed)
    for _ in range(14):
        tenant, user = rng.choice(("vision", "nlp")), rng.choice(("ada", "bo", "cy"))
        gpus, tasks = rng.choice((0, 1, 2, 8)), rng.choice((1, 2))
        job = new_job(tenant=tenant, user=user, queue=f"q-{tenant}", gpus=gpus, tasks=tasks)
        job_id = store.submit(job, at=START - DAY, actor=user)[0].id
        at = _instant(rng)
        for attempt in itertools.count(1):
            run_id = f"r{job_id}-{attempt}"
            nodes = tuple(f"n{i}" for i in range(tasks))
            flavor = rng.choice(FLAVORS)
            run = run_for(job_id, run_id, at=at, gpus=gpus, flavor=flavor, nodes=nodes)
            store.begin_run(run, actor="scheduler")
            choice = rng.random()
            if choice < 0.1:
                end = at  # ended as it started
            elif choice < 0.25:
                end = (int(at // DAY) + rng.randrange(1, 3)) * DAY  # at a midnight
            else:
                end = at + rng.expovariate(1 / (rng.choice((0.1, 1.0, 24.0)) * 3600.0))
            end = min(end, at + 3 * DAY)
            outcome = rng.choice((JobState.PENDING, JobState.PENDING, JobState.SUCCEEDED))
            if attempt == 4:
                outcome = JobState.FAILED
            store.end_run(run_id, outcome=outcome, exit_code=0, reason="x", at=end, actor="e")
            if outcome is not JobState.PENDING:
                break
            at = end + rng.choice((0.0, rng.uniform(0, 6 * 3600)))  # requeued, started again


def _raw(
    store: Store, by: tuple[str, ...], cuts: list[float], tenants: set[str] | None
) -> list[Sums]:
    intervals = [
        Interval(u.job_id, u.tenant, u.user, u.queue, u.flavor, u.started_at, u.ended_at,
                 u.gpu_milli, u.cpu_milli, u.memory_mib)
        for u in store.usage()
        if tenants is None or u.tenant in tenants
    ]  # fmt: skip
    return [s for s in sums_of(intervals, by, cuts) if s.gpu_milli_seconds or s.cpu_milli_seconds
            or s.memory_mib_seconds]  # fmt: skip


def _table(sums: list[Sums]) -> dict[tuple[tuple[str, ...], str, float], tuple[float, ...]]:
    out = {}
    for s in sums:
        assert (s.key, s.flavor, s.segment) not in out
        out[s.key, s.flavor, s.segment] = (
            s.gpu_milli_seconds,
            s.cpu_milli_seconds,
            s.memory_mib_seconds,
        )
    return out


offsets = st.one_of(
    st.integers(-1, 6).map(lambda d: d * DAY),  # midnights
    st.floats(-DAY, 6 * DAY, allow_nan=False),
)


@pytest.mark.parametrize("seed", [3, 4])
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # the store is only read
)
@given(
    window=st.tuples(offsets, offsets).filter(lambda w: w[0] != w[1]),
    change=offsets,
    bucket=st.sampled_from((None, DAY, 6 * 3600.0, 1800.0, 2 * DAY + 1.0)),
    by=st.lists(st.sampled_from(GROUPS), min_size=1, max_size=3, unique=True),
    tenants=st.sampled_from((None, {"vision"}, {"nlp", "vision"})),
)
def test_rollup_reports_equal_the_records_sums(
    store: Store,
    seed: int,
    window: tuple[float, float],
    change: float,
    bucket: float | None,
    by: list[str],
    tenants: set[str] | None,
) -> None:
    if not store.usage():
        _fill(store, seed)
    since, until = START + min(window), START + max(window)
    prices = PriceCatalog(
        (Price("H100-80G", 4.0), Price("H100-80G", 3.0, since=START + change), Price("A100", 2.0))
    )
    extra = prices.boundaries(since, until) + (
        [] if bucket is None else every(since, until, bucket)
    )
    cuts = cuts_of(since, until, extra)
    groups = tuple(by)
    got, want = store.usage_sums(groups, cuts, tenants), _raw(store, groups, cuts, tenants)
    got_table, want_table = _table(got), _table(want)
    assert got_table.keys() == want_table.keys()
    for slot, amounts in want_table.items():
        assert got_table[slot] == pytest.approx(amounts, rel=1e-9)
    kwargs = {"by": groups, "since": since, "until": until, "prices": prices, "cuts": cuts,
              "group_by_segment": bucket is not None}  # fmt: skip
    rolled, records = build_report(got, **kwargs), build_report(want, **kwargs)  # type: ignore[arg-type]
    assert [r.key for r in rolled.rows] == [r.key for r in records.rows]
    for a, b in zip(rolled.rows, records.rows, strict=True):
        assert a.used.cost == pytest.approx(b.used.cost, rel=1e-9)
        assert a.used.gpu_hours == pytest.approx(b.used.gpu_hours, rel=1e-9)
