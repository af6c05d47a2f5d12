"""Prices with effective dates and billing weights, reports by group with idle cost, budgets
files: the figures by hand, and every bad input named."""

from __future__ import annotations

import pytest

from allot.config.errors import ConfigError
from allot.core.budget import OnExhausted
from allot.metering.budgets import Budget, parse_budgets, period_of
from allot.metering.ledger import Interval, cuts_of, every, sums_of
from allot.metering.prices import BillingWeights, Price, PriceCatalog, parse_prices
from allot.metering.report import Capacity, IdleMode, build_report

DAY = 86400.0


def _iv(job: int, tenant: str, start: float, end: float, gpus: int = 1, **kw: object) -> Interval:
    return Interval(
        job,
        tenant,
        str(kw.get("user", "u")),
        "q",
        str(kw.get("flavor", "H100")),
        start,
        end,
        gpus * 1000,
        int(kw.get("cpu", 0)),  # type: ignore[call-overload]
        0,
    )


def test_a_price_change_splits_a_running_jobs_cost() -> None:
    prices = PriceCatalog((Price("H100", 2.0), Price("H100", 4.0, since=3600.0)))
    assert prices.cost("H100", 0.0, 7200.0, 1000) == pytest.approx(6.0)
    assert prices.cost("H100", 1800.0, 5400.0, 2000) == pytest.approx(2 * (1.0 + 2.0))
    assert prices.rate_at("H100", 3599.0) == 2.0
    assert prices.rate_at("H100", 3600.0) == 4.0
    assert prices.cost("A100", 0.0, 3600.0, 1000) == 0.0  # unpriced


def test_billing_weights_follow_slurms_weighted_sum() -> None:
    weights = BillingWeights(gpu=1.0, cpu=0.25, memory_gib=0.125)
    prices = PriceCatalog((Price("H100", 8.0),), weights)
    # 2 GPUs + 4 cores * 0.25 + 16 GiB * 0.125 = 5 units, at 8 an hour
    assert prices.cost("H100", 0.0, 3600.0, 2000, 4000, 16 * 1024) == pytest.approx(40.0)


def test_a_prices_file_reads_dates_and_names_bad_fields() -> None:
    prices = parse_prices(
        "currency: EUR\n"
        "weights: {gpu: 1, cpu: 0.5}\n"
        "prices:\n"
        "  - {flavor: H100, per_hour: 2.5}\n"
        "  - {flavor: H100, per_hour: 3, since: 2026-12-15}\n"
    )
    assert prices.currency == "EUR"
    assert prices.weights.cpu == 0.5
    assert prices.rate_at("H100", 1_797_292_799.0) == 2.5
    assert prices.rate_at("H100", 1_797_292_800.0) == 3.0  # 2026-12-15T00:00Z
    with pytest.raises(ConfigError, match=r"prices\[0\]\.per_hour.*>= 0"):
        parse_prices("prices:\n  - {flavor: H100, per_hour: -1}\n")
    with pytest.raises(ConfigError, match=r"since.*date"):
        parse_prices("prices:\n  - {flavor: H100, per_hour: 1, since: soon}\n")
    with pytest.raises(ConfigError, match="same instant"):
        parse_prices("prices:\n  - {flavor: H, per_hour: 1}\n  - {flavor: H, per_hour: 2}\n")


def test_a_report_prices_groups_and_shares_idle_by_cost() -> None:
    prices = PriceCatalog((Price("H100", 1.0),))
    intervals = [_iv(1, "a", 0, 3600, gpus=3), _iv(2, "b", 0, 3600, gpus=1)]
    cuts = cuts_of(0.0, 3600.0)
    sums = sums_of(intervals, ("tenant",), cuts)
    capacity = [Capacity("H100", 8000, 0, 0)]
    shared = build_report(
        sums,
        by=("tenant",),
        since=0,
        until=3600,
        prices=prices,
        cuts=cuts,
        capacity=capacity,
        idle_mode=IdleMode.SHARE,
    )
    assert [(r.key, r.used.cost, r.idle_cost) for r in shared.rows] == [
        (("a",), 3.0, 3.0),
        (("b",), 1.0, 1.0),
    ]
    assert shared.idle.gpu_hours == 4.0
    assert shared.total_cost == pytest.approx(8.0)  # the whole capacity is paid for
    alone = build_report(
        sums, by=("tenant",), since=0, until=3600, prices=prices, cuts=cuts, capacity=capacity
    )
    assert alone.unallocated_idle_cost == 4.0
    assert all(r.idle_cost == 0 for r in alone.rows)


def test_time_buckets_split_usage() -> None:
    prices = PriceCatalog((Price("H100", 1.0),))
    cuts = cuts_of(0.0, 2 * DAY, every(0.0, 2 * DAY, DAY))
    sums = sums_of([_iv(1, "a", DAY - 3600, DAY + 7200)], ("tenant",), cuts)
    report = build_report(
        sums,
        by=("tenant",),
        since=0,
        until=2 * DAY,
        prices=prices,
        cuts=cuts,
        group_by_segment=True,
    )
    assert [(r.key, r.used.gpu_hours) for r in report.rows] == [
        (("0", "a"), 1.0),
        (("86400", "a"), 2.0),
    ]


def test_budgets_file_and_periods() -> None:
    book = parse_budgets(
        "default_runtime: 2h\n"
        "budgets:\n"
        "  - {tenant: vision, hard_limit: 100, soft_limit: 80}\n"
        "  - {tenant: vision, user: alice, period: 7d, soft_limit: 5}\n"
    )
    assert book.default_runtime == 7200.0
    assert book.budgets[1] == Budget("vision", None, 5.0, "alice", "7d", 7 * DAY)
    month = period_of(book.budgets[0], 1_764_806_400.0)  # 2025-12-04
    assert month.label == "2025-12"
    assert month.end is not None
    assert month.end - month.start == 31 * DAY
    rolling = period_of(book.budgets[1], 10 * DAY)
    assert (rolling.start, rolling.end) == (3 * DAY, None)
    with pytest.raises(ConfigError, match=r"soft_limit.*at most hard_limit"):
        parse_budgets("budgets:\n  - {tenant: a, hard_limit: 1, soft_limit: 2}\n")
    with pytest.raises(ConfigError, match="needs a hard_limit"):
        parse_budgets("budgets:\n  - {tenant: a}\n")
    with pytest.raises(ConfigError, match=r"period.*span like 30d"):
        parse_budgets("budgets:\n  - {tenant: a, hard_limit: 1, period: fortnight}\n")
    with pytest.raises(ConfigError, match="repeats the budget"):
        parse_budgets("budgets:\n  - {tenant: a, hard_limit: 1}\n  - {tenant: a, hard_limit: 2}\n")


def test_budgets_say_what_happens_when_the_money_runs_out() -> None:
    book = parse_budgets(
        "budgets:\n"
        "  - {tenant: a, hard_limit: 10, on_exhausted: preempt}\n"
        "  - {tenant: b, hard_limit: 10}\n"
    )
    assert [b.on_exhausted for b in book.budgets] == [OnExhausted.PREEMPT, OnExhausted.HOLD]
    with pytest.raises(ConfigError, match=r"on_exhausted'?: must be one of hold, preempt"):
        parse_budgets("budgets:\n  - {tenant: a, hard_limit: 1, on_exhausted: kill}\n")
    with pytest.raises(ConfigError, match=r"on_exhausted'?: preempt needs a hard_limit"):
        parse_budgets("budgets:\n  - {tenant: a, soft_limit: 1, on_exhausted: preempt}\n")
