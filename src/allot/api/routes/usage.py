"""Routes of metering: ``/v1/usage`` (usage and cost per tenant, user, queue or flavor, like
``sreport``), ``/v1/jobs/{id}/cost`` and ``/v1/budgets``. Reads only: prices and budgets come
from the files the server was started with. Everyone may ask; the answers hold only the
tenants the caller belongs to (a cluster admin: every tenant), and asking for another tenant
is refused (403).

Thin like every route: parse, call metering as the authenticated caller, map.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from allot.api.auth import Caller
from allot.api.context import Control
from allot.api.problems import documented
from allot.api.routes.jobs import MAX_ID
from allot.control.metering import BudgetStanding, JobCost
from allot.core.model import SpecError
from allot.metering.budgets import parse_span
from allot.metering.report import Amounts, UsageReport
from allot.wire.metering import (
    AmountsOut,
    BudgetOut,
    JobCostOut,
    RunCostOut,
    UsageReportOut,
    UsageRowOut,
)

router = APIRouter(tags=["metering"])

Text = Annotated[str | None, Query(min_length=1, max_length=200)]
# A span (a positive whole number and a unit: 30d, 12h, 1w) or, for instants, UNIX seconds too.
SPAN = r"^[0-9]*[1-9][0-9]*[smhdw]$"
MAX_BUCKETS = 1000  # rows per group a report may have, so one request cannot take minutes
INSTANT = r"^([0-9]+(\.[0-9]+)?|[0-9]*[1-9][0-9]*[smhdw])$"


def _instant(field: str, text: str, now: float) -> float:
    """UNIX seconds, or a span back from now (``30d``, ``12h``)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return now - parse_span(text)
    except ValueError as exc:
        raise SpecError(field, f"must be UNIX seconds or a span like 30d: {exc}") from None


def amounts_out(a: Amounts) -> AmountsOut:
    return AmountsOut(
        gpu_hours=a.gpu_hours,
        cpu_hours=a.cpu_hours,
        memory_gib_hours=a.memory_gib_hours,
        cost=a.cost,
    )


def report_out(r: UsageReport, bucket: float | None) -> UsageReportOut:
    return UsageReportOut(
        by=list(r.by),
        bucket_seconds=bucket,
        since=r.since,
        until=r.until,
        currency=r.currency,
        rows=[
            UsageRowOut(
                key=list(row.key),
                used=amounts_out(row.used),
                idle_cost=row.idle_cost,
                total_cost=row.total_cost,
            )
            for row in r.rows
        ],
        idle_mode=str(r.idle_mode),
        idle=amounts_out(r.idle),
        unallocated_idle_cost=r.unallocated_idle_cost,
        capacity=amounts_out(r.capacity),
        unpriced=list(r.unpriced),
        total_cost=r.total_cost,
    )


def job_cost_out(c: JobCost) -> JobCostOut:
    return JobCostOut(
        job_id=c.job_id,
        currency=c.currency,
        gpu_hours=c.gpu_hours,
        cost=c.cost,
        runs=[
            RunCostOut(
                run_id=r.run_id,
                flavor=r.flavor,
                started_at=r.started_at,
                ended_at=r.ended_at,
                gpu_hours=r.gpu_hours,
                cost=r.cost,
            )
            for r in c.runs
        ],
    )


def budget_out(s: BudgetStanding) -> BudgetOut:
    b = s.budget
    return BudgetOut(
        tenant=b.tenant,
        user=b.user,
        period=b.period,
        period_label=s.period.label,
        period_start=s.period.start,
        period_end=s.period.end,
        hard_limit=b.hard_limit,
        soft_limit=b.soft_limit,
        on_exhausted=b.on_exhausted.value,
        spent=s.spent,
        currency=s.currency,
        state=s.state,
    )


@router.get("/usage", responses=documented(403, 422))
def usage_report(
    control: Control,
    caller: Caller,
    by: Annotated[str, Query(min_length=1, max_length=100)] = "tenant",
    since: Annotated[str, Query(min_length=1, max_length=40, pattern=INSTANT)] = "30d",
    until: Annotated[str | None, Query(min_length=1, max_length=40, pattern=INSTANT)] = None,
    bucket: Annotated[str | None, Query(min_length=1, max_length=40, pattern=SPAN)] = None,
    tenant: Text = None,
) -> UsageReportOut:
    """Usage and cost per group (``by``: tenant, user, queue or flavor, comma-separated)
    from ``since`` (UNIX seconds, or a span back from now: ``30d``) to ``until`` (default
    now), per time bucket (``bucket``: ``1d``) when asked, with idle capacity's cost."""
    now = control.clock.now()
    start = _instant("since", since, now)
    end = None if until is None else _instant("until", until, now)
    step = None
    if bucket is not None:
        try:
            step = parse_span(bucket)
        except ValueError as exc:
            raise SpecError("bucket", str(exc)) from None
    if step is not None:
        buckets = ((now if end is None else end) - start) / step
        if buckets > MAX_BUCKETS:
            raise SpecError(
                "bucket", f"makes {buckets:,.0f} buckets over the window; at most {MAX_BUCKETS:,}"
            )
    groups = [part.strip() for part in by.split(",") if part.strip()]
    try:
        report = control.metering.report(
            groups, start, end, bucket=step, tenant=tenant, principal=caller
        )
    except ValueError as exc:
        field, _, rule = str(exc).partition(": ")
        raise SpecError(field, rule or str(exc)) from None
    return report_out(report, step)


@router.get("/jobs/{job_id}/cost", responses=documented(404))
def job_cost(
    job_id: Annotated[int, Path(ge=1, le=MAX_ID, description="A job's id.")],
    control: Control,
    caller: Caller,
) -> JobCostOut:
    """What the job's runs held and cost so far, run by run."""
    record = control.get(job_id, principal=caller)
    return job_cost_out(control.metering.job_cost(record))


@router.get("/budgets")
def list_budgets(control: Control, caller: Caller) -> list[BudgetOut]:
    """Each budget of the caller's tenants and what it has spent in its current period."""
    return [budget_out(s) for s in control.metering.standings(principal=caller)]
