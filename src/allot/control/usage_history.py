"""Fair-share history for the live loop, derived from what the store recorded: the usage
ledger (one record per ended run) and the runs still active. Nothing of it lives only in
memory, so a restart of the server changes no fair-share ordering.

Decayed usage at ``now`` is the sum, over every interval a tenant's (and user's) jobs held
resources, of what the interval counts, decayed: GPU-seconds (``held_usage``, the exact
integral of Slurm's half-life decay, ``allot.core.quota.fair_share``), or with
``fair_share_usage: billed`` the money it was billed (``allot.metering.billing``: billing
units times the flavor's price, split at price changes). Ended runs are folded once into
``closed`` (decayed usage as of the last cycle) and then only decayed; the ledger is read from
the last record seen on, so a cycle reads only what ended since the previous one. Active runs
are added from their start each cycle. Records older than ``HORIZON_HALF_LIVES`` half-lives
weigh less than a millionth of their size and are not read at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from allot.control.ports import Store
from allot.control.records import JobRecord, UsageRecord
from allot.core.model import MILLI_PER_GPU
from allot.core.quota.fair_share import FairShareUsage, UsageHistory, UserKey, held_usage
from allot.metering.billing import billed_usage
from allot.metering.prices import PriceCatalog

HORIZON_HALF_LIVES = 20
Prices = Callable[[Sequence[str]], PriceCatalog]  # the prices in force for these flavors


class LedgerHistory:
    """Decayed usage per tenant and user from the usage ledger and the active runs.

    ``usage`` says what an interval counts; ``prices`` (needed for ``billed``) gives the
    prices in force for the flavors asked about."""

    def __init__(
        self,
        store: Store,
        half_life: float,
        now: float,
        *,
        usage: FairShareUsage = FairShareUsage.GPU_SECONDS,
        prices: Prices | None = None,
    ) -> None:
        if usage is FairShareUsage.BILLED and prices is None:
            raise ValueError("fair_share_usage: billed needs the prices in force")
        self.store = store
        self.half_life = half_life
        self.usage = usage
        self._prices = prices
        self._tenants: dict[str, float] = {}
        self._users: dict[UserKey, float] = {}
        self._as_of = now
        self._last_id = 0
        self._fold(store.usage(ended_after=now - HORIZON_HALF_LIVES * half_life), now)

    def _catalog(self, flavors: Iterable[str]) -> PriceCatalog | None:
        if self.usage is not FairShareUsage.BILLED or self._prices is None:
            return None
        return self._prices(sorted(set(flavors)))

    def _amount(
        self,
        prices: PriceCatalog | None,
        flavor: str,
        amounts: tuple[int, int, int],
        start: float,
        end: float,
        now: float,
    ) -> float:
        if prices is None:
            return held_usage(amounts[0] / MILLI_PER_GPU, start, end, now, self.half_life)
        return billed_usage(prices, flavor, amounts, start, end, now, self.half_life)

    def _fold(self, records: Sequence[UsageRecord], now: float) -> None:
        if not records:
            return
        prices = self._catalog(r.flavor for r in records)
        for record in records:
            amount = self._amount(
                prices,
                record.flavor,
                (record.gpu_milli, record.cpu_milli, record.memory_mib),
                record.started_at,
                min(record.ended_at, now),
                now,
            )
            self._tenants[record.tenant] = self._tenants.get(record.tenant, 0.0) + amount
            key = (record.tenant, record.user)
            self._users[key] = self._users.get(key, 0.0) + amount
        self._last_id = max(self._last_id, records[-1].id)

    def _decay_to(self, now: float) -> None:
        if now <= self._as_of:
            return
        closed = UsageHistory(self._as_of, self._tenants, self._users).decayed(now, self.half_life)
        self._tenants, self._users = dict(closed.tenants), dict(closed.users)
        self._as_of = now

    def at(self, now: float, active: Sequence[JobRecord]) -> UsageHistory:
        """The history at ``now``: the ledger so far, plus the runs in ``active`` from their
        start."""
        self._decay_to(now)
        self._fold(self.store.usage(after=self._last_id), self._as_of)
        tenants = dict(self._tenants)
        users = dict(self._users)
        flavors = [r.run.flavor for r in active if r.run is not None]
        prices = self._catalog(flavors) if flavors else None
        for record in active:
            run = record.run
            if run is None:
                continue
            tasks = record.job.tasks
            amounts = (
                sum(t.gpu_milli for t in tasks),
                sum(t.cpu_milli for t in tasks),
                sum(t.memory_mib for t in tasks),
            )
            amount = self._amount(prices, run.flavor, amounts, run.started_at, now, now)
            job = record.job
            tenants[job.tenant] = tenants.get(job.tenant, 0.0) + amount
            users[job.tenant, job.user] = users.get((job.tenant, job.user), 0.0) + amount
        return UsageHistory(now, tenants, users)
