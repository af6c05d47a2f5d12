"""Wire models of metering (``/v1/usage``, ``/v1/jobs/{id}/cost``, ``/v1/budgets``): usage and
cost per group, a job's cost per run, and each budget's standing. Pydantic and the standard
library only, like ``allot.wire.schemas``. Amounts: GPU-hours, CPU core-hours, memory
GiB-hours; money in the report's ``currency``; instants in UNIX seconds.
"""

from typing import Literal

from allot.wire.model import WireModel


class AmountsOut(WireModel):
    """What was held, and its cost."""

    gpu_hours: float
    cpu_hours: float
    memory_gib_hours: float
    cost: float


class UsageRowOut(WireModel):
    """One group's usage: ``key`` holds the values of the report's ``by`` fields, in order
    (preceded by the bucket's start, in UNIX seconds, for a report by time bucket)."""

    key: list[str]
    used: AmountsOut
    idle_cost: float  # its share of idle capacity's cost (idle: share)
    total_cost: float


class UsageReportOut(WireModel):
    """Usage and cost per group over ``[since, until)``."""

    by: list[str]
    bucket_seconds: float | None = None
    since: float
    until: float
    currency: str
    rows: list[UsageRowOut]
    idle_mode: str  # "share" or "unallocated"
    idle: AmountsOut  # all idle capacity and its cost
    unallocated_idle_cost: float
    capacity: AmountsOut
    unpriced: list[str]  # flavors used that have no price (they cost nothing here)
    total_cost: float


class RunCostOut(WireModel):
    """One run of a job and what it cost."""

    run_id: str
    flavor: str
    started_at: float
    ended_at: float | None
    gpu_hours: float
    cost: float


class JobCostOut(WireModel):
    """A job's cost over all its runs so far (a running one until now)."""

    job_id: int
    currency: str
    gpu_hours: float
    cost: float
    runs: list[RunCostOut]


class BudgetOut(WireModel):
    """A budget and what it has spent in its current period (ended runs and what running
    jobs accrued)."""

    tenant: str
    user: str | None
    period: str  # "month" or a rolling window ("30d")
    period_label: str  # "2026-12", "the last 30d"
    period_start: float
    period_end: float | None
    hard_limit: float | None
    soft_limit: float | None
    # At the hard limit: "hold" keeps new jobs waiting; "preempt" also stops running ones.
    on_exhausted: Literal["hold", "preempt"] = "hold"
    spent: float
    currency: str
    state: str  # ok, warning (past the soft limit), exhausted (at the hard limit)
