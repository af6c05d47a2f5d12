"""Entitlement met, share series and the share plot, on small timelines worked out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from allot.sim.fairness import entitlement_met, plot_shares, tenant_share_series
from allot.sim.result import SimResult, TenantSeries

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(
    allocated: dict[str, TenantSeries],
    demand: dict[str, TenantSeries],
    *,
    end_time: float,
    cluster_gpus: int = 10,
    policy: str = "fifo",
) -> SimResult:
    """A result whose per-tenant series are given in milli-GPU."""
    result = SimResult(policy=policy, cluster_gpus=cluster_gpus, end_time=end_time)
    result.timeline.tenant_allocated.update(allocated)
    result.timeline.tenant_demand.update(demand)
    return result


@pytest.fixture
def two_tenants() -> SimResult:
    """Over 100 s, each entitled to 4 GPUs:
    - ``modest`` asks for 2 GPUs and holds them throughout: owed 2 x 100, met 2 x 100;
    - ``hungry`` asks for 8 and holds 2 for 50 s, then 4: owed 4 x 100, met 2 x 50 + 4 x 50;
    - ``borrower`` (no entitlement) holds 4 GPUs it borrowed: owed nothing.
    """
    return run(
        allocated={
            "modest": [(0.0, 2000)],
            "hungry": [(0.0, 2000), (50.0, 4000)],
            "borrower": [(0.0, 4000)],
        },
        demand={
            "modest": [(0.0, 2000)],
            "hungry": [(0.0, 8000)],
            "borrower": [(0.0, 4000)],
        },
        end_time=100.0,
    )


ENTITLED = {"modest": 4.0, "hungry": 4.0, "idle": 4.0}


def test_a_tenant_that_asks_less_than_its_entitlement_and_gets_it_is_fully_met(
    two_tenants: SimResult,
) -> None:
    assert entitlement_met(two_tenants, ENTITLED).per_tenant["modest"] == pytest.approx(1.0)


def test_half_the_entitlement_for_half_the_time_is_three_quarters(
    two_tenants: SimResult,
) -> None:
    assert entitlement_met(two_tenants, ENTITLED).per_tenant["hungry"] == pytest.approx(0.75)


def test_a_tenant_that_never_asks_is_excluded(two_tenants: SimResult) -> None:
    figures = entitlement_met(two_tenants, ENTITLED)
    assert figures.per_tenant["idle"] is None
    assert "borrower" not in figures.per_tenant  # no entitlement given: owed nothing
    assert figures.worst is not None
    assert figures.worst[0] == "hungry"
    assert figures.worst[1] == pytest.approx(0.75)


def test_overall_weighs_tenants_by_what_they_were_owed(two_tenants: SimResult) -> None:
    # (200 + 300) GPU-s met of (200 + 400) owed, not the mean of 100 % and 75 %.
    assert entitlement_met(two_tenants, ENTITLED).overall == pytest.approx(500 / 600)


def test_jain_is_over_the_tenants_that_were_owed_something(two_tenants: SimResult) -> None:
    # (1 + 0.75)^2 / (2 x (1 + 0.5625)) = 3.0625 / 3.125
    assert entitlement_met(two_tenants, ENTITLED).jain == pytest.approx(0.98)


def test_borrowed_gpus_count_only_up_to_what_is_owed() -> None:
    # Holds 6 GPUs with an entitlement of 2 while asking for 6: met 2 of 2.
    result = run({"a": [(0.0, 6000)]}, {"a": [(0.0, 6000)]}, end_time=10.0)
    assert entitlement_met(result, {"a": 2.0}).per_tenant["a"] == pytest.approx(1.0)


def test_series_start_at_the_first_sample_and_hold_to_the_end() -> None:
    # Arrives at 20 asking for 4 (entitled 4), starts 2 at 30, drops demand to 2 at 60 while
    # still holding 2, and the run ends at 100: owed 4 x 40 + 2 x 40 = 240, met 2 x 70 = 140.
    result = run(
        {"a": [(30.0, 2000)]},
        {"a": [(20.0, 4000), (60.0, 2000)]},
        end_time=100.0,
    )
    assert entitlement_met(result, {"a": 4.0}).per_tenant["a"] == pytest.approx(140 / 240)


def test_nothing_owed_gives_nones() -> None:
    figures = entitlement_met(run({}, {}, end_time=10.0), {"a": 1.0})
    assert figures.overall is None
    assert figures.worst is None
    assert figures.jain is None
    assert figures.per_tenant == {"a": None}


def test_a_negative_entitlement_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"entitled_gpus\['a'\]"):
        entitlement_met(run({}, {}, end_time=1.0), {"a": -1.0})


@given(
    st.lists(
        st.tuples(
            st.integers(1, 50),  # seconds since the previous change
            st.integers(0, 8),  # GPUs held
            st.integers(0, 8),  # GPUs waiting
        ),
        min_size=1,
        max_size=30,
    ),
    st.integers(0, 10),
    st.integers(0, 60),
)
def test_entitlement_met_matches_a_second_by_second_count(
    changes: list[tuple[int, int, int]], entitled: int, tail: int
) -> None:
    allocated: TenantSeries = []
    demand: TenantSeries = []
    per_second: list[tuple[int, int]] = []  # (held, asked) in each second of the run
    current = (0, 0)  # before the first sample the tenant holds and asks for nothing
    time = 0
    for gap, held, waiting in changes:
        per_second.extend([current] * gap)
        time += gap
        current = (held, held + waiting)
        allocated.append((float(time), held * 1000))
        demand.append((float(time), (held + waiting) * 1000))
    end = time + tail
    per_second.extend([current] * tail)
    owed = sum(min(asked, entitled) for held, asked in per_second)
    met = sum(min(held, asked, entitled) for held, asked in per_second)
    figures = entitlement_met(run({"a": allocated}, {"a": demand}, end_time=end), {"a": entitled})
    expected = met / owed if owed else None
    assert figures.per_tenant["a"] == pytest.approx(expected)


def test_shares_are_time_weighted_means_on_a_regular_grid() -> None:
    # 10 GPUs from 2 s, 5 GPUs from 12 s, on a 10-GPU cluster until 25 s, in 10 s steps:
    # [0, 10): 10 x 8 / 10 = 8 GPUs; [10, 20): (10 x 2 + 5 x 8) / 10 = 6; [20, 25): 5.
    result = run({"a": [(2.0, 10_000), (12.0, 5000)]}, {}, end_time=25.0)
    starts, shares = tenant_share_series(result, "a", 10.0)
    np.testing.assert_allclose(starts, [0.0, 10.0, 20.0])
    np.testing.assert_allclose(shares, [0.8, 0.6, 0.5])


def test_a_step_with_many_changes_averages_them() -> None:
    # Alternates 0 and 10 GPUs every second for 100 s: every 20 s step averages 5 GPUs.
    samples: TenantSeries = [(float(t), (t % 2) * 10_000) for t in range(100)]
    starts, shares = tenant_share_series(run({"a": samples}, {}, end_time=100.0), "a", 20.0)
    np.testing.assert_allclose(starts, [0.0, 20.0, 40.0, 60.0, 80.0])
    np.testing.assert_allclose(shares, [0.5] * 5)


def test_shares_of_an_unknown_tenant_are_zero_and_empty_runs_are_empty() -> None:
    starts, shares = tenant_share_series(run({}, {}, end_time=30.0), "nobody", 10.0)
    np.testing.assert_allclose(shares, [0.0, 0.0, 0.0])
    assert starts.size == 3
    starts, shares = tenant_share_series(run({}, {}, end_time=0.0), "nobody", 10.0)
    assert starts.size == shares.size == 0


def test_a_step_must_be_positive() -> None:
    with pytest.raises(ValueError, match="step_seconds"):
        tenant_share_series(run({}, {}, end_time=30.0), "a", 0.0)


def test_plot_writes_a_png(tmp_path: Path, two_tenants: SimResult) -> None:
    other = run(
        two_tenants.timeline.tenant_allocated,
        two_tenants.timeline.tenant_demand,
        end_time=100.0,
        policy="backfill",
    )
    path = tmp_path / "shares.png"
    plot_shares([two_tenants, other], ENTITLED, 10, path, ["hungry", "modest"], step_seconds=20)
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1000


def test_plot_of_a_long_run(tmp_path: Path) -> None:
    samples: TenantSeries = [(t * 60.0, (t * 7919 % 768) * 1000) for t in range(100_000)]
    result = run({"a": samples}, {"a": samples}, end_time=6e6, cluster_gpus=768)
    path = tmp_path / "shares.png"
    plot_shares([result], {"a": 100.0}, 768, path, ["a"])
    assert path.read_bytes()[:8] == PNG_SIGNATURE
