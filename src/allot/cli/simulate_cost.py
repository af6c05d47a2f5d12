"""What ``allot simulate`` says about cost: the price list a replay uses (the prices file, or
the flavor catalog's list prices for the cluster's flavors, so there is one price list) and
the table of cost per tenant and policy, with idle capacity and, when budgets were replayed,
how long each tenant's jobs waited on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from allot.metering.prices import PriceCatalog, load_prices
from allot.profile.catalog import load_catalog

if TYPE_CHECKING:
    from allot.sim.cost import CostReport


def sim_prices(path: Path | None, flavors: Iterable[str]) -> PriceCatalog:
    """The prices file at ``path`` (None: none), completed with the flavor catalog's list
    prices for ``flavors`` it leaves unpriced. Raises ConfigError for a bad file."""
    chosen = PriceCatalog() if path is None else load_prices(path)
    catalog = load_catalog()
    defaults: dict[str, float] = {}
    for flavor in flavors:
        spec = catalog.find(flavor)
        if spec is not None and spec.price_per_gpu_hour is not None:
            defaults[flavor] = spec.price_per_gpu_hour
    return chosen.with_defaults(defaults)


def cost_table(costs: Mapping[str, CostReport], budgets: bool) -> Table:
    """Cost per tenant and policy: GPU-hours, cost, idle share, cost per work GPU-hour, and
    the time jobs waited on a budget when ``budgets`` were replayed."""
    currency = next(iter(costs.values())).currency if costs else ""
    table = Table(title=f"Cost per tenant ({currency}; idle shared by cost)")
    for header in ("policy", "tenant", "GPU-h", "cost", "idle share", "per work GPU-h"):
        table.add_column(header, justify="left" if header in ("policy", "tenant") else "right")
    if budgets:
        table.add_column("held back (job-h, jobs)", justify="right")
    for policy, report in costs.items():
        for t in report.tenants:
            per = t.cost_per_work_hour
            row = [
                policy,
                t.tenant,
                f"{t.gpu_hours:,.0f}",
                f"{t.cost:,.0f}",
                f"{t.idle_cost:,.0f}",
                "—" if per is None else f"{per:,.2f}",
            ]
            if budgets:
                row.append(f"{t.held_back_hours:,.0f}, {t.held_back_jobs}")
            table.add_row(*row)
        table.add_row(
            policy,
            "(idle)",
            f"{report.idle_gpu_hours:,.0f}",
            f"{report.idle_cost:,.0f}",
            f"{report.idle_share:.1%} of capacity",
            "",
            *([""] if budgets else []),
            end_section=True,
        )
    return table
