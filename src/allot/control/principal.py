"""Who is calling: the ``Principal`` that authentication yields (a user, the tenants it belongs
to with its role in each, and whether it is a cluster admin), decided once per request by the
API and handed to every use case. Nothing trusts an identity written in a request body: a
job's user is the caller, its tenant the one its queue belongs to, and the use cases refuse a
tenant the caller is not in.

Roles, per tenant (a user may be a member of one tenant and a viewer of another):
- ``cluster_admin`` (of the whole cluster, not of a tenant): may do everything;
- ``tenant_admin``: submits to its tenant's queues, acts on every job of its tenant, manages
  its tenant's queues within the tenant's grant, and reads its tenant's audit log;
- ``member``: submits to its tenant's queues, sees every job of its tenant and acts (cancel,
  hold, release) on its own (Slurm's rule: a user cancels only its own jobs, a coordinator
  any job of its account);
- ``viewer``: reads its tenant's jobs, events and logs, and changes nothing.

Failures: a job the caller may not see is answered as if it did not exist (``NotFoundError``,
decided by the use cases); an action beyond the caller's role on something it may see raises
``ForbiddenError``. Neither message says anything about another tenant's data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Role(StrEnum):
    """What a principal may do (``CLUSTER_ADMIN`` everywhere, the others within a tenant)."""

    CLUSTER_ADMIN = "cluster_admin"
    TENANT_ADMIN = "tenant_admin"
    MEMBER = "member"
    VIEWER = "viewer"


TENANT_ROLES = (Role.TENANT_ADMIN, Role.MEMBER, Role.VIEWER)
_WRITERS = frozenset({Role.TENANT_ADMIN, Role.MEMBER})


class ForbiddenError(PermissionError):
    """The caller may not do this (the message says what and why, never about other tenants'
    data)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: ``memberships`` maps each of its tenants to its role there."""

    user: str
    memberships: Mapping[str, Role] = field(default_factory=dict)
    cluster_admin: bool = False

    def __post_init__(self) -> None:
        # Read-only, so a principal shared between requests (the token cache) cannot change.
        object.__setattr__(self, "memberships", MappingProxyType(dict(self.memberships)))

    def __hash__(self) -> int:
        return hash((self.user, frozenset(self.memberships.items()), self.cluster_admin))

    @classmethod
    def admin(cls, user: str) -> Principal:
        """A cluster admin."""
        return cls(user, {}, cluster_admin=True)

    @property
    def is_cluster_admin(self) -> bool:
        return self.cluster_admin

    @property
    def tenants(self) -> frozenset[str]:
        """The tenants the caller is a member of (in any role)."""
        return frozenset(self.memberships)

    @property
    def roles(self) -> frozenset[Role]:
        """Every role the caller holds, in any tenant."""
        held = set(self.memberships.values())
        if self.cluster_admin:
            held.add(Role.CLUSTER_ADMIN)
        return frozenset(held)

    def visible_tenants(self) -> frozenset[str] | None:
        """The tenants whose jobs the caller sees; None: every tenant (a cluster admin)."""
        return None if self.cluster_admin else self.tenants

    def may_read(self, tenant: str) -> bool:
        """True when the caller may see ``tenant``'s jobs, events and logs."""
        return self.cluster_admin or tenant in self.memberships

    def may_submit_to(self, tenant: str) -> bool:
        """True when the caller may submit jobs for ``tenant``."""
        return self.cluster_admin or self.memberships.get(tenant) in _WRITERS

    def may_act_on(self, tenant: str, owner: str) -> bool:
        """True when the caller may cancel, hold or release a job of ``owner`` in ``tenant``."""
        role = self.memberships.get(tenant)
        if self.cluster_admin or role is Role.TENANT_ADMIN:
            return True
        return role is Role.MEMBER and owner == self.user

    def administers(self, tenant: str) -> bool:
        """True when the caller manages ``tenant`` (its queues, its audit log)."""
        return self.cluster_admin or self.memberships.get(tenant) is Role.TENANT_ADMIN

    def check_submit(self, tenant: str) -> None:
        """Raise ForbiddenError unless the caller may submit for ``tenant``."""
        if not self.may_submit_to(tenant):
            raise ForbiddenError(f"tenant: {self.user} may not submit jobs for tenant {tenant!r}")

    def check_act(self, tenant: str, owner: str, what: str) -> None:
        """Raise ForbiddenError unless the caller may act on a job of ``owner`` in ``tenant``
        (call it only for a job the caller may see)."""
        if not self.may_act_on(tenant, owner):
            role = self.memberships.get(tenant)
            why = (
                "a viewer only reads"
                if role is Role.VIEWER
                else "a member acts only on its own jobs (a tenant admin on every job of its"
                " tenant)"
            )
            raise ForbiddenError(f"{what}: {self.user} may not do this: {why}")

    def check_tenant_admin(self, tenant: str, what: str) -> None:
        """Raise ForbiddenError unless the caller administers ``tenant``."""
        if not self.administers(tenant):
            raise ForbiddenError(
                f"{what}: only a cluster admin or an admin of tenant {tenant!r} may do this"
            )

    def check_admin(self, what: str) -> None:
        """Raise ForbiddenError unless the caller is a cluster admin."""
        if not self.cluster_admin:
            raise ForbiddenError(f"{what}: only a cluster admin may do this")
