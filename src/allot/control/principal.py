"""Who is calling: the ``Principal`` that authentication yields (a user, the tenants it belongs
to, its roles), decided once per request by the API and handed to every use case. Nothing
trusts an identity written in a request body: a job's user is the caller, its tenant the one
its queue belongs to, and the use cases refuse a tenant the caller is not in
(``ForbiddenError``).

Roles (the tenancy model builds on them): ``cluster_admin`` may act everywhere; ``tenant_admin``,
``member`` and ``viewer`` act within their tenants (a viewer only reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """What a principal may do."""

    CLUSTER_ADMIN = "cluster_admin"
    TENANT_ADMIN = "tenant_admin"
    MEMBER = "member"
    VIEWER = "viewer"


class ForbiddenError(PermissionError):
    """The caller may not do this (the message says what and why, never about other tenants'
    data)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    user: str
    tenants: frozenset[str] = frozenset()
    roles: frozenset[Role] = frozenset()

    @classmethod
    def admin(cls, user: str) -> Principal:
        """A cluster admin (every token is one until tenants and roles are configured)."""
        return cls(user, frozenset(), frozenset({Role.CLUSTER_ADMIN}))

    @property
    def is_cluster_admin(self) -> bool:
        return Role.CLUSTER_ADMIN in self.roles

    def may_submit_to(self, tenant: str) -> bool:
        """True when the caller may submit jobs for ``tenant``."""
        if self.is_cluster_admin:
            return True
        writes = {Role.TENANT_ADMIN, Role.MEMBER} & self.roles
        return bool(writes) and tenant in self.tenants

    def check_submit(self, tenant: str) -> None:
        """Raise ForbiddenError unless the caller may submit for ``tenant``."""
        if not self.may_submit_to(tenant):
            raise ForbiddenError(f"tenant: {self.user} may not submit jobs for tenant {tenant!r}")

    def check_admin(self, what: str) -> None:
        """Raise ForbiddenError unless the caller is a cluster admin."""
        if not self.is_cluster_admin:
            raise ForbiddenError(f"{what}: only a cluster admin may do this")
