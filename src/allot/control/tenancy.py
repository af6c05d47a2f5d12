"""Administration of who may do what: users, their roles in tenants, API tokens, tenants,
cohorts, queues and their quotas, the tenants' grants, and reading the audit log.

Who may do it:
- a cluster admin: everything;
- a tenant admin: create and change its tenant's queues within the tenant's grant (below),
  and read its tenant's audit entries;
- anyone: see itself, create, list and revoke its own tokens.

A grant is what a cluster admin gave a tenant: per flavor and resource, the most nominal quota
the tenant's queues may hold together, and the highest borrowing limit one of them may have
(none: no cap). A tenant admin's change to a queue is accepted only when, after it, the
tenant's queues stay within the grant (a tenant without a grant gets no quota from its
admins), the queue is constrained (only a cluster admin makes a queue without quotas), and the
queue joins no cohort but one the tenant's queues are already in.

Every change is checked whole before it is stored (a ``QuotaConfig`` that does not validate is
refused with the field and the rule, as a quota file would be) and changes nothing when
refused. ``on_change`` is called after a change that affects who is who or what exists, so the
API drops cached principals and the control plane re-reads queues.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from allot.control.credentials import hash_token, new_token
from allot.control.ports import Clock, ConflictError, NotFoundError, Store
from allot.control.principal import TENANT_ROLES, ForbiddenError, Principal, Role
from allot.control.records import AuditEntry, AuditFilter, TokenRecord, UserRecord
from allot.control.services import RejectedError
from allot.core.model import SpecError
from allot.core.quota.config import (
    CohortSpec,
    FlavorResource,
    QueueSpec,
    QuotaConfig,
    Quotas,
    ResourceQuota,
    TenantSpec,
)

DEFAULT_TOKEN_DAYS = 90.0
MAX_TOKEN_DAYS = 3650.0
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just made: its record and its secret (shown once, never stored)."""

    record: TokenRecord
    secret: str


class Tenancy:
    """The administration use cases (see the module docstring)."""

    def __init__(self, store: Store, clock: Clock, on_change: Callable[[], None]) -> None:
        self.store = store
        self.clock = clock
        self.on_change = on_change
        self._quota_lock = threading.Lock()  # one read-change-write of the quotas at a time

    # ------------------------------------------------------------------ users

    def users(self, *, principal: Principal) -> list[UserRecord]:
        """Every user with its roles (cluster admins only)."""
        principal.check_admin("users")
        return self.store.users()

    def add_user(self, name: str, *, cluster_admin: bool, principal: Principal) -> UserRecord:
        """A new user without tenants; raises ConflictError when the name is taken."""
        principal.check_admin("users")
        return self.store.add_user(name, cluster_admin=cluster_admin, at=self.clock.now())

    def set_role(
        self, user: str, tenant: str, role: Role | None, *, principal: Principal
    ) -> UserRecord:
        """Give ``user`` ``role`` in ``tenant`` (None: take it out of the tenant)."""
        principal.check_admin("users")
        if role is not None and role not in TENANT_ROLES:
            raise RejectedError("role", f"must be one of {', '.join(TENANT_ROLES)}, got {role}")
        if role is not None and tenant not in {t.name for t in self.store.quotas().tenants}:
            raise NotFoundError(f"tenant {tenant!r} does not exist")
        record = self.store.set_membership(user, tenant, role)
        self.on_change()
        return record

    # ------------------------------------------------------------------ tokens

    def create_token(
        self,
        user: str,
        name: str,
        *,
        expires_in_days: float | None,
        principal: Principal,
    ) -> NewToken:
        """A new token of ``user`` (any user's for a cluster admin, else only the caller's
        own), expiring after ``expires_in_days`` (None: the default, 90 days)."""
        if user != principal.user:
            principal.check_admin("user")
        days = DEFAULT_TOKEN_DAYS if expires_in_days is None else expires_in_days
        if not 0 < days <= MAX_TOKEN_DAYS:
            raise RejectedError("expires_in_days", f"must be in (0, {MAX_TOKEN_DAYS:g}]")
        now = self.clock.now()
        secret = new_token()
        record = self.store.add_token(
            user, name, hash_token(secret), at=now, expires_at=now + days * DAY
        )
        return NewToken(record, secret)

    def tokens(self, user: str | None, *, principal: Principal) -> list[TokenRecord]:
        """Tokens (a cluster admin: any user's, or all; others: their own)."""
        if not principal.is_cluster_admin:
            if user not in (None, principal.user):
                principal.check_admin("user")
            user = principal.user
        return self.store.tokens(user)

    def revoke_token(self, token_id: int, *, principal: Principal) -> TokenRecord:
        """Revoke a token (a cluster admin: any; others: their own, and another's is as
        unknown as one that does not exist)."""
        if not principal.is_cluster_admin:
            own = {t.id for t in self.store.tokens(principal.user)}
            if token_id not in own:
                raise NotFoundError(f"token {token_id} does not exist")
        record = self.store.revoke_token(token_id, at=self.clock.now())
        self.on_change()
        return record

    # ------------------------------------------------------------------ tenants and quotas

    def add_tenant(self, name: str, share: float, *, principal: Principal) -> TenantSpec:
        """A new tenant (no queues yet)."""
        principal.check_admin("tenant")
        spec = TenantSpec(name, share)

        def add(config: QuotaConfig) -> QuotaConfig:
            if any(t.name == name for t in config.tenants):
                raise ConflictError(f"tenant {name!r} already exists")
            return replace(config, tenants=(*config.tenants, spec))

        self._change(add, "tenant")
        return spec

    def add_cohort(self, spec: CohortSpec, *, principal: Principal) -> CohortSpec:
        """A new cohort."""
        principal.check_admin("cohort")

        def add(config: QuotaConfig) -> QuotaConfig:
            if any(c.name == spec.name for c in config.cohorts):
                raise ConflictError(f"cohort {spec.name!r} already exists")
            return replace(config, cohorts=(*config.cohorts, spec))

        self._change(add, "cohort")
        return spec

    def set_grant(
        self, tenant: str, quotas: Quotas | None, *, principal: Principal
    ) -> dict[FlavorResource, ResourceQuota] | None:
        """Replace what ``tenant``'s admins may hand out (None: nothing)."""
        principal.check_admin("grant")
        if tenant not in {t.name for t in self.store.quotas().tenants}:
            raise NotFoundError(f"tenant {tenant!r} does not exist")
        for (flavor, resource), quota in (quotas or {}).items():
            try:
                quota.check(f"quotas.{flavor}.{resource}")
            except SpecError as err:
                raise RejectedError(err.field, err.rule) from None
        self.store.set_grant(tenant, quotas)
        return None if quotas is None else dict(quotas)

    def grants(self, *, principal: Principal) -> dict[str, dict[FlavorResource, ResourceQuota]]:
        """The grants of the tenants the caller may see (every one for a cluster admin)."""
        every = self.store.grants()
        return {t: g for t, g in every.items() if principal.may_read(t)}

    def put_queue(self, queue: QueueSpec, *, principal: Principal) -> QueueSpec:
        """Create ``queue`` or replace the queue of that name (see the module docstring for
        what a tenant admin may do)."""
        principal.check_tenant_admin(queue.tenant, "queue")

        def change(config: QuotaConfig) -> QuotaConfig:
            old = config.queue_by_name.get(queue.name)
            if old is not None and old.tenant != queue.tenant:
                principal.check_tenant_admin(old.tenant, "queue")
            if not principal.is_cluster_admin:
                self._within_grant(config, queue)
            if old is None:
                return replace(config, queues=(*config.queues, queue))
            queues = tuple(queue if q.name == queue.name else q for q in config.queues)
            return replace(config, queues=queues)

        self._change(change, "queue")
        return queue

    def _within_grant(self, config: QuotaConfig, queue: QueueSpec) -> None:
        """Raise ForbiddenError when a tenant admin's ``queue`` leaves its tenant's grant."""
        if queue.quotas is None:
            raise ForbiddenError("quotas: only a cluster admin may make a queue without quotas")
        mine = [q for q in config.queues if q.tenant == queue.tenant and q.name != queue.name]
        cohorts = {q.cohort for q in mine if q.cohort is not None}
        if queue.cohort is not None and queue.cohort not in cohorts:
            raise ForbiddenError(
                f"cohort: tenant {queue.tenant!r} has no queue in cohort {queue.cohort!r}; only"
                " a cluster admin may place a queue there"
            )
        grant = self.store.grants().get(queue.tenant, {})
        totals: dict[FlavorResource, int] = {}
        for q in [*mine, queue]:
            for key, quota in (q.quotas or {}).items():
                totals[key] = totals.get(key, 0) + quota.nominal
        for (flavor, resource), total in totals.items():
            given = grant.get((flavor, resource), ResourceQuota(0))
            where = f"quotas.{flavor}.{resource}"
            if total > given.nominal:
                raise ForbiddenError(
                    f"{where}.nominal: tenant {queue.tenant!r}'s queues would hold {total} in"
                    f" all; its grant is {given.nominal}"
                )
            limit = (queue.quotas or {}).get((flavor, resource))
            if given.borrowing_limit is not None and limit is not None:
                borrowing = limit.borrowing_limit
                if borrowing is None or borrowing > given.borrowing_limit:
                    raise ForbiddenError(
                        f"{where}.borrowing_limit: must be at most {given.borrowing_limit}, the"
                        f" tenant's grant"
                    )

    def _change(self, change: Callable[[QuotaConfig], QuotaConfig], what: str) -> None:
        """Apply ``change`` to the stored quotas and store the result if it is valid."""
        with self._quota_lock:
            config = self.store.quotas()
            try:
                changed = change(config)
            except (RejectedError, ConflictError):
                raise
            except SpecError as err:
                raise RejectedError(err.field, err.rule) from None
            except ValueError as err:
                raise RejectedError(what, str(err)) from None
            flavors = {n.flavor for n in self.store.nodes()}
            try:
                changed.check_flavors(flavors)
            except SpecError as err:
                raise RejectedError(err.field, err.rule) from None
            self.store.save_quotas(changed, at=self.clock.now())
        self.on_change()

    # ------------------------------------------------------------------ audit

    def audit(self, where: AuditFilter, *, principal: Principal) -> list[AuditEntry]:
        """Audit entries: every one for a cluster admin; a tenant admin's tenants' for a
        tenant admin; refused to anyone else."""
        if principal.is_cluster_admin:
            return self.store.audit(where)
        administered = frozenset(
            t for t, role in principal.memberships.items() if role is Role.TENANT_ADMIN
        )
        if not administered:
            raise ForbiddenError("audit: only a cluster admin or a tenant admin may read it")
        if where.tenants is not None:
            administered &= where.tenants
        return self.store.audit(replace(where, tenants=administered))


__all__ = ["ConflictError", "NewToken", "Tenancy"]
