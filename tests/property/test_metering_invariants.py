"""Metering invariants (Hypothesis): ledger sums equal the allocation intervals, whatever the
segments (no interval counted twice, none lost); allocated + idle = capacity x time for every
resource and segment; a price change splits a cost exactly at its effective instant."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from allot.metering.ledger import Interval, cuts_of, sums_of
from allot.metering.prices import Price, PriceCatalog
from allot.metering.report import Capacity, idle_of

END = 10_000.0
times = st.floats(0, END, allow_nan=False).map(lambda t: round(t, 1))


@st.composite
def intervals(draw: st.DrawFn) -> list[Interval]:
    out = []
    for i in range(draw(st.integers(0, 12))):
        a, b = sorted((draw(times), draw(times)))
        out.append(
            Interval(
                i,
                draw(st.sampled_from("ab")),
                draw(st.sampled_from("xy")),
                "q",
                draw(st.sampled_from(("H100", "A100"))),
                a,
                b,
                draw(st.integers(0, 4000)),
                draw(st.integers(0, 8000)),
                draw(st.integers(0, 4096)),
            )
        )
    return out


@given(intervals(), st.lists(times, max_size=6))
def test_sums_over_any_segments_equal_the_intervals(ivs: list[Interval], cuts: list[float]) -> None:
    segments = cuts_of(0.0, END, cuts)
    for by in (("tenant",), ("tenant", "user"), ("flavor",)):
        sums = sums_of(ivs, by, segments)
        got = sum(s.gpu_milli_seconds for s in sums)
        want = sum(iv.gpu_milli * (iv.end - iv.start) for iv in ivs)
        assert abs(got - want) <= 1e-6 * max(1.0, want)
        cpu = sum(s.cpu_milli_seconds for s in sums)
        assert abs(cpu - sum(iv.cpu_milli * (iv.end - iv.start) for iv in ivs)) <= 1e-6 * max(
            1.0, cpu
        )


@given(st.lists(times, max_size=5), st.integers(1, 8))
def test_allocated_plus_idle_is_capacity_times_time(cuts: list[float], jobs: int) -> None:
    # jobs of one GPU, 2 cores, 1 GiB each on an 8-GPU flavor: never above capacity
    ivs = [
        Interval(i, "a", "x", "q", "H100", i * 100.0, END - i * 50.0, 1000, 2000, 1024)
        for i in range(jobs)
    ]
    segments = cuts_of(0.0, END, cuts)
    sums = sums_of(ivs, ("tenant",), segments)
    prices = PriceCatalog((Price("H100", 1.0),))
    cap = Capacity("H100", 8000, 64_000, 512 * 1024)
    for lo, hi in itertools.pairwise(segments):
        part = [s for s in sums if s.segment == lo]
        total, idle = idle_of(part, [cap], [lo, hi], prices)["H100"]
        used_gpu = sum(s.gpu_milli_seconds for s in part) / 1000 / 3600
        used_cpu = sum(s.cpu_milli_seconds for s in part) / 1000 / 3600
        used_mem = sum(s.memory_mib_seconds for s in part) / 1024 / 3600
        assert abs(used_gpu + idle.gpu_hours - total.gpu_hours) < 1e-9 * max(1, total.gpu_hours)
        assert abs(used_cpu + idle.cpu_hours - total.cpu_hours) < 1e-9 * max(1, total.cpu_hours)
        assert abs(used_mem + idle.memory_gib_hours - total.memory_gib_hours) < 1e-6
        assert abs(total.gpu_hours - 8 * (hi - lo) / 3600) < 1e-9 * max(1, total.gpu_hours)


@given(times, times, times, st.floats(0, 50), st.floats(0, 50))
def test_a_price_change_splits_the_cost_at_its_instant(
    a: float, b: float, change: float, before: float, after: float
) -> None:
    start, end = sorted((a, b))
    prices = PriceCatalog((Price("H100", before), Price("H100", after, since=change)))
    got = prices.cost("H100", start, end, 2000)
    first = max(0.0, min(end, change) - start)
    second = max(0.0, end - max(start, change))
    want = 2 * (before * first + after * second) / 3600
    assert abs(got - want) <= 1e-9 * max(1.0, want)
    mid = min(max(change, start), end)
    split = prices.cost("H100", start, mid, 2000) + prices.cost("H100", mid, end, 2000)
    assert abs(split - got) <= 1e-9 * max(1.0, got)
