"""The metering commands: ``usage`` (usage and cost per tenant, user, queue or flavor over a
window, like Slurm's ``sreport``; as a table, CSV or JSON) and ``budgets`` (each budget and
what it spent this period). Each is one SDK call; what the server may show the caller is the
server's rule (only the caller's tenants).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from allot.cli import output
from allot.cli.output import OutputFormat, OutputOption, TokenOption, UrlOption, reported

if TYPE_CHECKING:
    from allot.client import UsageReportOut


class UsageFormat(StrEnum):
    """How ``allot usage`` prints its report."""

    table = "table"
    csv = "csv"
    json = "json"


_COLUMNS = ("GPU_HOURS", "CPU_HOURS", "MEM_GIB_HOURS", "COST", "IDLE_SHARE", "TOTAL")


def _day(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")


def usage(
    by: Annotated[
        str,
        typer.Option(
            "--by", help="tenant, user, queue or flavor (comma-separated: tenant,flavor)."
        ),
    ] = "tenant",
    since: Annotated[
        str, typer.Option("--since", help="A span back from now (30d, 12h) or UNIX seconds.")
    ] = "30d",
    until: Annotated[
        str | None,
        typer.Option("--until", help="The end, like --since (default: now).", show_default=False),
    ] = None,
    bucket: Annotated[
        str | None,
        typer.Option(
            "--bucket", help="One row per group per time bucket (1d, 1w).", show_default=False
        ),
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", help="Only this tenant.", show_default=False),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: Annotated[
        UsageFormat,
        typer.Option("--output", "-o", metavar="FORMAT", help="table, csv or json."),
    ] = UsageFormat.table,
) -> None:
    """Usage and cost per tenant, user, queue or flavor over a window, like sreport.

    Idle capacity's cost is shared by what each paid, or shown on its own line."""
    shown = OutputFormat.json if fmt is UsageFormat.json else OutputFormat.table
    with reported(fmt=shown), output.make_client(url, token) as allot:
        report = allot.usage(by, since, until, bucket, tenant)
    if fmt is UsageFormat.json:
        output.print_json(report)
        return
    head = (["BUCKET"] if bucket else []) + [name.upper() for name in report.by]
    rows = _rows(report)
    if fmt is UsageFormat.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([h.lower() for h in (*head, *_COLUMNS)] + ["currency"])
        for row in rows:
            writer.writerow([*row, report.currency])
        output.write(buffer.getvalue())
        return
    output.say(
        f"[bold]Usage[/bold] {_day(report.since)} to {_day(report.until)} UTC, in"
        f" {escape(report.currency)}"
    )
    grid = output.table(*head, *_COLUMNS)
    for row in rows:
        grid.add_row(*(escape(v) for v in row))
    output.print_table(grid)
    idle = report.idle
    output.say(
        f"idle: {idle.gpu_hours:.2f} of {report.capacity.gpu_hours:.2f} GPU-hours,"
        f" {idle.cost:.2f} {escape(report.currency)} ({report.idle_mode});"
        f" unallocated {report.unallocated_idle_cost:.2f}; total {report.total_cost:.2f}"
    )
    if report.unpriced:
        output.say(f"unpriced flavors (cost 0 here): {escape(', '.join(report.unpriced))}")


def _rows(report: UsageReportOut) -> list[list[str]]:
    out = []
    for row in report.rows:
        key = list(row.key)
        if report.bucket_seconds:
            key[0] = _day(float(key[0]))
        u = row.used
        out.append(
            [
                *key,
                f"{u.gpu_hours:.2f}",
                f"{u.cpu_hours:.2f}",
                f"{u.memory_gib_hours:.2f}",
                f"{u.cost:.2f}",
                f"{row.idle_cost:.2f}",
                f"{row.total_cost:.2f}",
            ]
        )
    return out


def budgets(
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Each budget of your tenants and what it spent this period."""
    with reported(fmt=fmt), output.make_client(url, token) as allot:
        found = allot.budgets()
    if fmt is OutputFormat.json:
        output.print_json(found)
        return
    grid = output.table(
        "TENANT", "USER", "PERIOD", "SPENT", "SOFT", "HARD", "AT HARD LIMIT", "STATE"
    )
    for b in found:
        grid.add_row(
            escape(b.tenant),
            escape(b.user or "-"),
            escape(b.period_label),
            f"{b.spent:.2f} {escape(b.currency)}",
            "-" if b.soft_limit is None else f"{b.soft_limit:.2f}",
            "-" if b.hard_limit is None else f"{b.hard_limit:.2f}",
            "-" if b.hard_limit is None else b.on_exhausted,
            b.state,
        )
    output.print_table(grid)
