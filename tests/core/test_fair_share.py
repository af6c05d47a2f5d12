"""Decayed usage and Slurm's classic fair-share factor."""

from __future__ import annotations

import pytest

from allot.core.quota.fair_share import FairShareFactors, UsageHistory, accrue, decay

DAY = 86_400.0


def test_usage_halves_every_half_life() -> None:
    assert decay(100.0, DAY, DAY) == pytest.approx(50.0)
    assert decay(100.0, 2 * DAY, DAY) == pytest.approx(25.0)


def test_accrual_is_exact_whatever_the_step() -> None:
    one_step = accrue(0.0, 8.0, DAY, DAY)
    many = 0.0
    for _ in range(24):
        many = accrue(many, 8.0, DAY / 24, DAY)
    assert one_step == pytest.approx(many)
    # Holding 8 GPUs for a half-life from nothing: 8 * h / ln 2 * (1 - 1/2).
    assert one_step == pytest.approx(8.0 * DAY / 0.6931471805599453 * 0.5)


def test_history_advances_per_tenant_and_user() -> None:
    h = UsageHistory().advanced(100.0, {"a": 2.0}, {("a", "u"): 2.0}, 1e9)
    assert h.as_of == 100.0
    assert h.tenants["a"] == pytest.approx(200.0, rel=1e-6)
    assert h.users["a", "u"] == pytest.approx(200.0, rel=1e-6)
    assert h.advanced(50.0, {}, {}, 1e9) is h


def test_factor_is_one_without_usage_half_at_share_and_lower_above() -> None:
    h = UsageHistory(0.0, {"a": 50.0, "b": 50.0}, {})
    f = FairShareFactors.compute(h, {"a": 1.0, "b": 1.0, "c": 2.0}, [("c", "x")])
    assert f.tenant("a") == pytest.approx(2 ** (-0.5 / 0.25))
    assert f.tenant("c") == 1.0
    equal = FairShareFactors.compute(h, {"a": 1.0, "b": 1.0}, [])
    assert equal.tenant("a") == pytest.approx(0.5)
    assert equal.tenant("unknown") == 1.0


def test_user_factors_within_a_tenant() -> None:
    h = UsageHistory(0.0, {"a": 10.0}, {("a", "heavy"): 10.0})
    f = FairShareFactors.compute(h, {"a": 1.0}, [("a", "light")])
    assert f.user("a", "light") == 1.0
    assert f.user("a", "heavy") < f.user("a", "light")
