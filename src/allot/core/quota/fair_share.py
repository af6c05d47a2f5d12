"""Decayed-usage fair share across tenants and, within a tenant, across users.

Source: Slurm's multifactor priority plugin, "classic" fair share
(https://slurm.schedmd.com/priority_multifactor.html):
- usage decays with a half-life ``h``: a GPU-second consumed ``a`` seconds ago counts
  ``2 ** (-a / h)``. With ``lambda = ln 2 / h`` and a constant rate ``r`` (GPUs held) over
  ``dt`` seconds, ``U(t + dt) = U(t) * exp(-lambda * dt) + r * (1 - exp(-lambda * dt)) / lambda``
  (the exact integral, so the result does not depend on how often it is advanced);
- ``U_t`` is tenant t's decayed usage divided by all tenants' decayed usage, ``S_t`` its share
  divided by the sum of shares of tenants that have used anything or are asking;
- the fair-share factor is ``F = 2 ** (-U / S)``: 1 for a tenant that used nothing, 0.5 for one
  that used exactly its share, towards 0 for heavy users. Users within a tenant get the same
  factor over their tenant's usage, with equal shares.

What usage counts (``FairShareUsage``, the quota file's ``fair_share_usage``): GPU-seconds by
default, or billed usage, Slurm's billing TRES (``TRESBillingWeights``: with weights set, fair
share charges the billing of what a job holds, not its raw TRES). Billed usage is the money
metering charges: for an interval on flavor ``f``, ``units * price_f(t) / 3600`` per second
with ``units = w_gpu * GPUs + w_cpu * cores + w_mem * GiB`` (``allot.metering.prices``), decayed
the same way; the driver computes it, so ``UsageHistory`` holds either kind in the same fields.

Higher factor goes first. The values are plain data: the driver (simulator or control loop)
advances them between cycles; the core only reads them.

Between queues of a cohort, fair share is instead the dominant resource share of Kueue KEP-1714
(https://github.com/kubernetes-sigs/kueue/tree/main/keps/1714-fair-sharing),
``share(n) = max over r of sum_f max(0, usage(n, f/r) - subtree(n, f/r)) / lendable(parent(n),
r) / weight(n)``; it depends on the quota tree, so it lives with it in ``allot.core.quota.tree``
(full statement there).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

UserKey = tuple[str, str]  # (tenant, user)


class FairShareUsage(StrEnum):
    """What decayed usage counts: GPU-seconds held, or the money billed for what was held."""

    GPU_SECONDS = "gpu_seconds"
    BILLED = "billed"


def decay(usage: float, dt: float, half_life: float) -> float:
    """``usage`` after ``dt`` seconds of decay."""
    return usage * math.exp(-math.log(2.0) * dt / half_life)


def accrue(usage: float, rate: float, dt: float, half_life: float) -> float:
    """``usage`` after ``dt`` seconds of decay while ``rate`` GPUs were held throughout."""
    if dt <= 0:
        return usage
    lam = math.log(2.0) / half_life
    kept = math.exp(-lam * dt)
    return usage * kept + rate * (1.0 - kept) / lam


def held_usage(amount: float, start: float, end: float, now: float, half_life: float) -> float:
    """Decayed usage at ``now`` of holding ``amount`` GPUs from ``start`` to ``end`` (both at
    most ``now``): the exact integral of ``amount * 2 ** (-(now - t) / half_life)`` over the
    interval, so usage summed from recorded intervals equals usage accrued step by step."""
    if end <= start:
        return 0.0
    lam = math.log(2.0) / half_life
    return amount * (math.exp(-lam * (now - end)) - math.exp(-lam * (now - start))) / lam


@dataclass(frozen=True, slots=True)
class UsageHistory:
    """Decayed GPU-seconds per tenant and per (tenant, user) as of ``as_of``."""

    as_of: float = 0.0
    tenants: Mapping[str, float] = field(default_factory=dict)
    users: Mapping[UserKey, float] = field(default_factory=dict)

    def advanced(
        self,
        to: float,
        tenant_rates: Mapping[str, float],
        user_rates: Mapping[UserKey, float],
        half_life: float,
    ) -> UsageHistory:
        """The history at ``to``, given the GPUs each tenant and user held since ``as_of``."""
        dt = to - self.as_of
        if dt <= 0:
            return self
        tenants = {
            t: accrue(self.tenants.get(t, 0.0), tenant_rates.get(t, 0.0), dt, half_life)
            for t in set(self.tenants) | set(tenant_rates)
        }
        users = {
            u: accrue(self.users.get(u, 0.0), user_rates.get(u, 0.0), dt, half_life)
            for u in set(self.users) | set(user_rates)
        }
        return UsageHistory(to, tenants, users)

    def decayed(self, to: float, half_life: float) -> UsageHistory:
        """The history at ``to`` with nothing held since ``as_of``."""
        return self.advanced(to, {}, {}, half_life)

    def plus(self, tenant: str, user: str, amount: float) -> UsageHistory:
        """The history with ``amount`` more decayed usage for ``tenant`` and its ``user``."""
        tenants = dict(self.tenants)
        tenants[tenant] = tenants.get(tenant, 0.0) + amount
        users = dict(self.users)
        users[tenant, user] = users.get((tenant, user), 0.0) + amount
        return UsageHistory(self.as_of, tenants, users)


def _factors(usage: Mapping[str, float], shares: Mapping[str, float]) -> dict[str, float]:
    total_usage = sum(usage.get(k, 0.0) for k in shares)
    total_share = sum(shares.values())
    out: dict[str, float] = {}
    for key, share in shares.items():
        if total_usage <= 0 or share <= 0:
            out[key] = 1.0
            continue
        u = usage.get(key, 0.0) / total_usage
        s = share / total_share
        out[key] = 2.0 ** (-u / s)
    return out


@dataclass(frozen=True, slots=True)
class FairShareFactors:
    """Fair-share factors for one cycle: per tenant and per (tenant, user)."""

    tenants: Mapping[str, float]
    users: Mapping[UserKey, float]

    @classmethod
    def compute(
        cls,
        history: UsageHistory,
        tenant_shares: Mapping[str, float],
        asking: Iterable[UserKey],
    ) -> FairShareFactors:
        """Factors for the tenants and users in ``asking`` (and every tenant with usage).

        Tenants missing from ``tenant_shares`` get a share of 1.
        """
        asking = list(asking)
        tenants = set(history.tenants) | {t for t, _ in asking}
        shares = {t: tenant_shares.get(t, 1.0) for t in tenants}
        tenant_factors = _factors(history.tenants, shares)
        users_by_tenant: dict[str, set[str]] = {}
        for tenant, user in [*history.users, *asking]:
            users_by_tenant.setdefault(tenant, set()).add(user)
        user_factors: dict[UserKey, float] = {}
        for tenant, users in users_by_tenant.items():
            usage = {u: history.users.get((tenant, u), 0.0) for u in users}
            for user, factor in _factors(usage, dict.fromkeys(users, 1.0)).items():
                user_factors[tenant, user] = factor
        return cls(tenant_factors, user_factors)

    def tenant(self, name: str) -> float:
        """The factor of tenant ``name`` (1 when it has no history)."""
        return self.tenants.get(name, 1.0)

    def user(self, tenant: str, user: str) -> float:
        """The factor of ``user`` within ``tenant`` (1 when it has no history)."""
        return self.users.get((tenant, user), 1.0)
