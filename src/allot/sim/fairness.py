"""Entitlement-based fairness of one simulation run: did each tenant get what it was owed?

``metrics.jain_index`` over slowdowns says whether tenants' jobs were served alike; it does not
say whether a tenant got the GPUs it is entitled to. This module owns that second view, from the
per-tenant series of a ``SimResult`` (``Timeline.tenant_allocated`` and ``tenant_demand``,
milli-GPU samples taken when the value changes; a value holds until the tenant's next sample,
the last one until ``result.end_time``, and a tenant holds and asks for nothing before its
first sample) and the GPUs each tenant is entitled to (e.g. its nominal quota).

Definitions, for tenant ``t`` with entitlement ``E_t`` GPUs, demand ``D_t(tau)`` (GPUs held
plus GPUs its waiting jobs ask for) and allocation ``A_t(tau)`` (GPUs held), in GPUs:

- ``deserved_t(tau) = min(D_t(tau), E_t)``: a tenant is owed its entitlement only while it asks
  for that much; idle entitlement is lent to others and is not owed back.
- ``met_t(tau) = min(A_t(tau), deserved_t(tau))``: GPUs held above the entitlement (borrowed)
  count for nothing here.
- Entitlement met of ``t``: ``M_t = int met_t dtau / int deserved_t dtau`` over
  ``[t's first sample, result.end_time]``; None when ``int deserved_t = 0`` (it never asked,
  or it has no entitlement).
- Overall entitlement met: ``sum_t int met_t / sum_t int deserved_t``, so each tenant weighs
  by how much it was owed; None when nothing was ever owed.
- Jain's index over the tenants' ``M_t`` (the ones that are not None), ``(sum M)^2 / (n sum
  M^2)`` (Jain, Chiu, Hawe, DEC-TR-301, 1984; ``metrics.jain_index``), and the worst tenant's
  ``M_t``.
- Share over time: ``A_t(tau) / G`` with ``G`` the cluster's GPUs, against the entitlement
  ``E_t / G``. ``tenant_share_series`` averages it over a regular grid of steps.

The idea of measuring a scheduler by how much of each tenant's guaranteed share it delivers
while the tenant wants it follows Kueue's nominal quota semantics
(https://kueue.sigs.k8s.io/docs/concepts/cluster_queue/) and the "sharing incentive" of DRF
(Ghodsi et al., "Dominant Resource Fairness", NSDI 2011).

All integrals are vectorised: a tenant's two step series are merged on the union of their
sample times with ``searchsorted``, so runs with hundreds of thousands of samples take
milliseconds. ``plot_shares`` draws with matplotlib's ``Figure`` directly (no pyplot, no
global backend), so it is safe under Agg and in threads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from allot.sim.metrics import FloatArray, jain_index
from allot.sim.result import SimResult, TenantSeries

_MILLI = 1000.0
_DAY_S = 86_400.0
DEFAULT_SHARE_STEP_S = 6 * 3600.0
"""Width of the averaging step of the share plot (seconds)."""


@dataclass(frozen=True, slots=True)
class FairnessFigures:
    """Entitlement met by one run; see the module docstring for each definition.

    ``per_tenant`` has every tenant that was given an entitlement, with None for one that was
    never owed anything. ``worst`` is (tenant, M_t) of the lowest M_t, ties to the first name
    in sorted order.
    """

    overall: float | None = None
    worst: tuple[str, float] | None = None
    jain: float | None = None
    per_tenant: Mapping[str, float | None] = field(default_factory=dict)


def entitlement_met(result: SimResult, entitled_gpus: Mapping[str, float]) -> FairnessFigures:
    """How much of what each tenant was owed it got, from ``result``'s per-tenant series.

    ``entitled_gpus`` maps tenant -> entitlement in GPUs. Tenants of the run that are not in
    it are owed nothing and do not count. Raises ValueError naming a tenant whose entitlement
    is negative or not finite.
    """
    for tenant, gpus in entitled_gpus.items():
        if not (math.isfinite(gpus) and gpus >= 0):
            raise ValueError(f"entitled_gpus[{tenant!r}]: must be a finite number >= 0, got {gpus}")
    timeline = result.timeline
    met_sum = deserved_sum = 0.0
    per_tenant: dict[str, float | None] = {}
    for tenant in sorted(entitled_gpus):
        met, deserved = _met_and_deserved(
            timeline.tenant_allocated.get(tenant, []),
            timeline.tenant_demand.get(tenant, []),
            entitled_gpus[tenant],
            result.end_time,
        )
        met_sum += met
        deserved_sum += deserved
        per_tenant[tenant] = met / deserved if deserved > 0 else None
    known = {name: value for name, value in per_tenant.items() if value is not None}
    worst = min(known.items(), key=lambda item: (item[1], item[0])) if known else None
    return FairnessFigures(
        overall=met_sum / deserved_sum if deserved_sum > 0 else None,
        worst=worst,
        jain=jain_index(np.fromiter(known.values(), dtype=np.float64, count=len(known))),
        per_tenant=per_tenant,
    )


def _as_arrays(samples: TenantSeries) -> tuple[FloatArray, FloatArray]:
    """Sample times and values (in GPUs) of one change-only series."""
    if not samples:
        return np.empty(0), np.empty(0)
    # fromiter over the flattened pairs is several times faster than asarray on a list of
    # tuples, which dominates the cost on long runs.
    flat = np.fromiter(chain.from_iterable(samples), dtype=np.float64, count=2 * len(samples))
    return flat[0::2], flat[1::2] / _MILLI


def _value_at(times: FloatArray, values: FloatArray, at: FloatArray) -> FloatArray:
    """The step function (``times``, ``values``) at each of ``at``; 0 before its first sample."""
    index = np.searchsorted(times, at, side="right") - 1
    held = values[np.clip(index, 0, None)] if values.size else np.zeros(at.size)
    return np.where(index >= 0, held, 0.0)


def _met_and_deserved(
    allocated: TenantSeries, demand: TenantSeries, entitled: float, end_time: float
) -> tuple[float, float]:
    """(int met_t, int deserved_t) of one tenant, in GPU-seconds."""
    if entitled == 0 or not demand:
        return 0.0, 0.0
    alloc_times, alloc_values = _as_arrays(allocated)
    demand_times, demand_values = _as_arrays(demand)
    grid = np.union1d(alloc_times, demand_times)
    # A sample at or after end_time (or out of order) must not count negative time.
    held = np.clip(np.diff(grid, append=max(end_time, float(grid[-1]))), 0.0, None)
    deserved = np.minimum(_value_at(demand_times, demand_values, grid), entitled)
    met = np.minimum(_value_at(alloc_times, alloc_values, grid), deserved)
    return float(met @ held), float(deserved @ held)


def tenant_share_series(
    result: SimResult, tenant: str, step_seconds: float = DEFAULT_SHARE_STEP_S
) -> tuple[FloatArray, FloatArray]:
    """The tenant's share of the cluster's GPUs, ``A_t / result.cluster_gpus``, averaged over
    time in steps of ``step_seconds`` from time 0 to ``result.end_time``.

    Returns (start time of each step in seconds, mean share in that step). The last step may
    be shorter than the others; its mean is over the part before ``end_time``. Empty arrays
    when the run has no length. Raises ValueError when ``step_seconds`` is not positive.
    """
    if not (math.isfinite(step_seconds) and step_seconds > 0):
        raise ValueError(f"step_seconds: must be a finite number > 0, got {step_seconds}")
    end = result.end_time
    if end <= 0:
        return np.empty(0), np.empty(0)
    starts = np.arange(0.0, end, step_seconds)
    edges = np.minimum(np.append(starts, starts[-1] + step_seconds), end)
    times, values = _as_arrays(result.timeline.tenant_allocated.get(tenant, []))
    keep = times < end
    times, values = times[keep], values[keep]
    # The running integral of a step function is piecewise linear between its sample times
    # (and 0 before the first), so interpolating it at the edges is exact.
    knots = np.append(times, end)
    integral = np.concatenate(([0.0], np.cumsum(values * np.diff(knots))))
    gpu_seconds = np.diff(np.interp(edges, knots, integral, left=0.0))
    mean_gpus = gpu_seconds / np.diff(edges)
    cluster = result.cluster_gpus
    shares = mean_gpus / cluster if cluster > 0 else np.zeros_like(mean_gpus)
    return starts, shares


def plot_shares(
    results: Sequence[SimResult],
    entitled_gpus: Mapping[str, float],
    cluster_gpus: int,
    path: Path,
    tenants: Sequence[str],
    step_seconds: float = DEFAULT_SHARE_STEP_S,
) -> None:
    """Draw, for each run (one panel per policy, stacked, sharing a time axis in days), the
    share of the cluster's GPUs each of ``tenants`` held, averaged over ``step_seconds``, with
    its entitlement ``entitled_gpus[t] / cluster_gpus`` as a dashed line of the same colour."""
    panels = max(len(results), 1)
    figure = Figure(figsize=(11, 1.0 + 2.2 * panels), layout="constrained")
    axes_column = figure.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    hours = step_seconds / 3600.0
    for axes, result in zip(axes_column, results, strict=False):
        top = 0.0
        for number, tenant in enumerate(tenants):
            colour = f"C{number % 10}"
            starts, shares = tenant_share_series(result, tenant, step_seconds)
            if starts.size:
                # Each mean is drawn at the middle of its step (the last step may be short).
                middles = (starts + np.minimum(starts + step_seconds, result.end_time)) / 2
                axes.plot(middles / _DAY_S, shares, color=colour, linewidth=1.2, label=tenant)
                top = max(top, float(shares.max()))
            entitlement = entitled_gpus.get(tenant, 0.0) / cluster_gpus if cluster_gpus else 0.0
            axes.axhline(entitlement, color=colour, linestyle="--", linewidth=1)
            top = max(top, entitlement)
        axes.set_title(result.policy, loc="left", fontsize=10)
        axes.set_ylabel("GPU share")
        axes.set_ylim(0.0, max(top, 0.01) * 1.1)
        axes.grid(True, alpha=0.3)
    for axes in axes_column[len(results) :]:
        axes.text(0.5, 0.5, "no runs", ha="center", va="center")
    axes_column[-1].set_xlabel("time (days)")
    handles, labels = axes_column[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside right upper", title="tenant")
    figure.suptitle(
        f"Share of the cluster's GPUs per tenant ({hours:g}-hour means); dashed: entitlement"
    )
    figure.savefig(path, dpi=110)
