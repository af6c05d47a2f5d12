"""Fair-share history for the live loop, derived from what the store recorded: the usage
ledger (one record per ended run) and the runs still active. Nothing of it lives only in
memory, so a restart of the server changes no fair-share ordering.

Decayed usage at ``now`` is the sum, over every interval a tenant's (and user's) jobs held
GPUs, of ``held_usage`` (the exact integral of Slurm's half-life decay,
``allot.core.quota.fair_share``). Ended runs are folded once into ``closed`` (decayed usage as
of the last cycle) and then only decayed; the ledger is read from the last record seen on, so
a cycle reads only what ended since the previous one. Active runs are added from their start
each cycle. Records older than ``HORIZON_HALF_LIVES`` half-lives weigh less than a millionth of
their size and are not read at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from allot.control.ports import Store
from allot.control.records import JobRecord, UsageRecord
from allot.core.model import MILLI_PER_GPU
from allot.core.quota.fair_share import UsageHistory, UserKey, held_usage

HORIZON_HALF_LIVES = 20


class LedgerHistory:
    """Decayed usage per tenant and user from the usage ledger and the active runs."""

    def __init__(self, store: Store, half_life: float, now: float) -> None:
        self.store = store
        self.half_life = half_life
        self._tenants: dict[str, float] = {}
        self._users: dict[UserKey, float] = {}
        self._as_of = now
        self._last_id = 0
        self._fold(store.usage(ended_after=now - HORIZON_HALF_LIVES * half_life), now)

    def _fold(self, records: Sequence[UsageRecord], now: float) -> None:
        for record in records:
            amount = held_usage(
                record.gpu_milli / MILLI_PER_GPU,
                record.started_at,
                min(record.ended_at, now),
                now,
                self.half_life,
            )
            self._tenants[record.tenant] = self._tenants.get(record.tenant, 0.0) + amount
            key = (record.tenant, record.user)
            self._users[key] = self._users.get(key, 0.0) + amount
        if records:
            self._last_id = max(self._last_id, records[-1].id)

    def _decay_to(self, now: float) -> None:
        if now <= self._as_of:
            return
        closed = UsageHistory(self._as_of, self._tenants, self._users).decayed(now, self.half_life)
        self._tenants, self._users = dict(closed.tenants), dict(closed.users)
        self._as_of = now

    def at(self, now: float, active: Iterable[JobRecord]) -> UsageHistory:
        """The history at ``now``: the ledger so far, plus the runs in ``active`` from their
        start."""
        self._decay_to(now)
        self._fold(self.store.usage(after=self._last_id), self._as_of)
        tenants = dict(self._tenants)
        users = dict(self._users)
        for record in active:
            run = record.run
            if run is None:
                continue
            gpus = sum(t.gpu_milli for t in record.job.tasks) / MILLI_PER_GPU
            amount = held_usage(gpus, run.started_at, now, now, self.half_life)
            job = record.job
            tenants[job.tenant] = tenants.get(job.tenant, 0.0) + amount
            users[job.tenant, job.user] = users.get((job.tenant, job.user), 0.0) + amount
        return UsageHistory(now, tenants, users)
