"""Budgets: money a tenant (or one user of it) may spend per period, a calendar month (UTC)
or a rolling window; the hard limit blocks admission (``allot.core.budget``), the soft limit
warns. Also what the admission check needs each cycle: each budget's spending so far and the
rates of every flavor at ``now``.

A budgets file::

    default_runtime: 1h        # the run time projected for a job with no estimate or limit
    budgets:
      - tenant: vision
        period: month          # or a rolling window: 30d, 7d, 12h
        hard_limit: 10000
        soft_limit: 8000
      - tenant: vision
        user: alice
        period: 7d
        hard_limit: 500
        on_exhausted: preempt  # hold (default): new jobs wait; preempt: running jobs stop too

Invariants: a budget has a hard or a soft limit (or both, soft <= hard); ``on_exhausted:
preempt`` needs a hard limit; no two budgets of a file have the same owner and period.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from allot.config.yamldoc import YamlMap, YamlNode, load_yaml, parse_yaml
from allot.core.budget import BudgetCheck, BudgetLimit, OnExhausted, Rate
from allot.metering.ledger import Interval
from allot.metering.prices import SECONDS_PER_HOUR, PriceCatalog

MONTH = "month"
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SPAN = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_span(text: str) -> float:
    """Seconds in a span like ``30d``, ``12h``, ``1w``; raises ValueError saying the rule."""
    match = _SPAN.fullmatch(text.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"must be a span like 30d, 7d, 12h or 1w, or 'month', got {text!r}")
    return float(match.group(1)) * _SECONDS[match.group(2)]


@dataclass(frozen=True, slots=True)
class Budget:
    """Money ``tenant`` (or ``user`` of it) may spend per ``period``: ``"month"`` or a rolling
    window of ``window`` seconds."""

    tenant: str
    hard_limit: float | None = None
    soft_limit: float | None = None
    user: str | None = None
    period: str = MONTH
    window: float | None = None  # seconds, for a rolling period
    on_exhausted: OnExhausted = OnExhausted.HOLD

    @property
    def owner(self) -> str:
        return self.tenant if self.user is None else f"{self.tenant}/{self.user}"


@dataclass(frozen=True)
class BudgetBook:
    """The budgets of a site and the run time projected for jobs without one."""

    budgets: tuple[Budget, ...] = ()
    default_runtime: float = 3600.0


@dataclass(frozen=True, slots=True)
class Period:
    """One budget's current period: ``[start, end)``; ``end`` is None for a rolling window
    (it ends now)."""

    start: float
    end: float | None
    label: str


def period_of(budget: Budget, now: float, *, calendar: bool = True) -> Period:
    """The period of ``budget`` that holds ``now``. A month is the UTC calendar month (with
    ``calendar`` False, for virtual time: the 30-day span from a multiple of 30 days)."""
    if budget.period != MONTH:
        assert budget.window is not None
        return Period(now - budget.window, None, f"the last {budget.period}")
    if not calendar:
        span = 30 * 86400.0
        start = (now // span) * span
        return Period(start, start + span, f"days {start / 86400:.0f}-{(start + span) / 86400:.0f}")
    at = dt.datetime.fromtimestamp(now, dt.UTC)
    first = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return Period(first.timestamp(), following.timestamp(), first.strftime("%Y-%m"))


def rates_at(prices: PriceCatalog, flavors: Iterable[str], now: float) -> dict[str, Rate]:
    """Money per second per milli-GPU, milli-core and MiB on each flavor at ``now``."""
    w = prices.weights
    out: dict[str, Rate] = {}
    for flavor in flavors:
        per_second = prices.rate_at(flavor, now) / SECONDS_PER_HOUR
        out[flavor] = (
            per_second * w.gpu / 1000.0,
            per_second * w.cpu / 1000.0,
            per_second * w.memory_gib / 1024.0,
        )
    return out


def interval_cost(prices: PriceCatalog, interval: Interval, start: float, end: float) -> float:
    """What ``interval`` cost between ``start`` and ``end``."""
    return prices.cost(
        interval.flavor,
        max(start, interval.start),
        min(end, interval.end),
        interval.gpu_milli,
        interval.cpu_milli,
        interval.memory_mib,
    )


def owns(budget: Budget, interval: Interval) -> bool:
    """True when ``interval`` is spending of ``budget``'s owner."""
    return interval.tenant == budget.tenant and (
        budget.user is None or interval.user == budget.user
    )


def budget_check(
    book: BudgetBook,
    prices: PriceCatalog,
    spent: Mapping[Budget, float],
    running: Sequence[Interval],
    flavors: Iterable[str],
    now: float,
    *,
    calendar: bool = True,
) -> BudgetCheck:
    """The admission check for this cycle: ``spent`` is what ended runs cost within each
    budget's period; ``running`` the active runs (held until now)."""
    limits: dict[str, list[BudgetLimit]] = {}
    by_tenant: dict[str, list[Interval]] = {}
    for r in running:
        by_tenant.setdefault(r.tenant, []).append(r)
    for budget in book.budgets:
        if budget.hard_limit is None:
            continue
        period = period_of(budget, now, calendar=calendar)
        accrued = {
            r.job_id: interval_cost(prices, r, period.start, now)
            for r in by_tenant.get(budget.tenant, ())
            if owns(budget, r)
        }
        limits.setdefault(budget.tenant, []).append(
            BudgetLimit(
                budget.tenant,
                budget.hard_limit,
                spent.get(budget, 0.0),
                accrued,
                budget.user,
                period.label,
                period.end,
                budget.on_exhausted,
            )
        )
    return BudgetCheck(
        {tenant: tuple(found) for tenant, found in limits.items()},
        rates_at(prices, flavors, now),
        now,
        book.default_runtime,
        prices.currency,
    )


def parse_budgets(text: str, source: str = "<budgets>") -> BudgetBook:
    """A budgets document (see the module docstring); raises ConfigError naming the field."""
    return _book(parse_yaml(text, source))


def load_budgets(path: str | Path) -> BudgetBook:
    """The budgets file at ``path``; raises ConfigError for a bad file."""
    return _book(load_yaml(path))


def _duration(node: YamlNode) -> float:
    text = node.as_str()
    try:
        return parse_span(text)
    except ValueError as exc:
        raise node.error(str(exc)) from None


def _book(doc: YamlMap) -> BudgetBook:
    doc.check_keys(("default_runtime", "budgets"), required=("budgets",))
    default_runtime = 3600.0
    node = doc.optional("default_runtime")
    if node is not None:
        default_runtime = _duration(node)
    budgets: list[Budget] = []
    seen: dict[tuple[str, str | None, str], int] = {}
    for item in doc.get_list("budgets"):
        entry = item.as_map()
        entry.check_keys(
            ("tenant", "user", "period", "hard_limit", "soft_limit", "on_exhausted"),
            required=("tenant",),
        )
        hard = soft = None
        if entry.optional("hard_limit") is not None:
            hard = entry.get_float("hard_limit", minimum=0.0)
        if entry.optional("soft_limit") is not None:
            soft = entry.get_float("soft_limit", minimum=0.0)
        if hard is None and soft is None:
            raise item.error("a budget needs a hard_limit, a soft_limit or both")
        if hard is not None and soft is not None and soft > hard:
            raise entry.error("soft_limit", f"must be at most hard_limit ({hard}), got {soft}")
        period, window = MONTH, None
        pnode = entry.optional("period")
        if pnode is not None and pnode.as_str() != MONTH:
            period, window = pnode.as_str(), _duration(pnode)
        on_exhausted = OnExhausted.HOLD
        onode = entry.optional("on_exhausted")
        if onode is not None:
            text = onode.as_str()
            try:
                on_exhausted = OnExhausted(text)
            except ValueError:
                allowed = ", ".join(m.value for m in OnExhausted)
                raise onode.error(f"must be one of {allowed}, got {text!r}") from None
            if on_exhausted is OnExhausted.PREEMPT and hard is None:
                raise onode.error("preempt needs a hard_limit: it acts when that is reached")
        user = entry.get_str("user") if entry.optional("user") is not None else None
        tenant = entry.get_str("tenant")
        key = (tenant, user, period)
        if key in seen:
            raise item.error(f"repeats the budget on line {seen[key]} (same owner and period)")
        seen[key] = item.line
        budgets.append(Budget(tenant, hard, soft, user, period, window, on_exhausted))
    return BudgetBook(tuple(budgets), default_runtime)
