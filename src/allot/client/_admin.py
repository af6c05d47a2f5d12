"""The SDK's calls of who may do what (``/v1/me``, users, tokens, tenants, cohorts, queues,
grants and the audit log), written once as ``Call`` values and offered by ``Client`` and
``AsyncClient`` through ``AdminCalls`` and ``AsyncAdminCalls``.

Quotas are given as ``{flavor: {resource: QuotaIn}}`` with resources ``gpu`` (GPUs), ``cpu``
(cores) and ``memory_mib``; ``quota_spec("H100-80G:gpu=8:4", ...)`` reads the command line's
form (``FLAVOR:RESOURCE=NOMINAL[:BORROWING_LIMIT]``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from allot.client._routes import Call, QueryValue, list_of
from allot.wire.tenancy import (
    AuditPage,
    FlavorQuotas,
    MeOut,
    QueueSpecOut,
    QuotaIn,
    TenantOut,
    TokenCreated,
    TokenOut,
    UserOut,
)

T = TypeVar("T")


def _name(value: str) -> str:
    return quote(value, safe="")


def _none(_: bytes) -> None:
    return None


def quota_spec(specs: Sequence[str]) -> dict[str, FlavorQuotas]:
    """``["H100-80G:gpu=8:4", "H100-80G:cpu=64"]`` as wire quotas; raises ValueError naming
    the spec that is not ``FLAVOR:RESOURCE=NOMINAL[:BORROWING_LIMIT]``."""
    out: dict[str, FlavorQuotas] = {}
    for spec in specs:
        flavor, _, rest = spec.partition(":")
        resource, _, amounts = rest.partition("=")
        nominal, _, borrowing = amounts.partition(":")
        if not flavor or resource not in ("gpu", "cpu", "memory_mib") or not nominal:
            raise ValueError(
                f"{spec!r}: write FLAVOR:RESOURCE=NOMINAL[:BORROWING_LIMIT], resource one of"
                " gpu, cpu, memory_mib (e.g. H100-80G:gpu=8:4)"
            )
        try:
            quota = QuotaIn(
                nominal=float(nominal), borrowing_limit=float(borrowing) if borrowing else None
            )
        except ValueError as err:
            raise ValueError(f"{spec!r}: amounts must be numbers >= 0 ({err})") from None
        out.setdefault(flavor, {})[resource] = quota  # type: ignore[index]
    return out


def me() -> Call[MeOut]:
    return Call("GET", "/v1/me", MeOut.model_validate_json)


def users() -> Call[list[UserOut]]:
    return Call("GET", "/v1/users", list_of(UserOut))


def create_user(name: str, cluster_admin: bool) -> Call[UserOut]:
    body = {"name": name, "cluster_admin": cluster_admin}
    return Call("POST", "/v1/users", UserOut.model_validate_json, body=body)


def set_role(user: str, tenant: str, role: str | None) -> Call[UserOut]:
    path = f"/v1/users/{_name(user)}/tenants/{_name(tenant)}"
    if role is None:
        return Call("DELETE", path, UserOut.model_validate_json, retry_safe=True)
    return Call("PUT", path, UserOut.model_validate_json, body={"role": role}, retry_safe=True)


def tokens(user: str | None) -> Call[list[TokenOut]]:
    params: list[tuple[str, QueryValue]] = [] if user is None else [("user", user)]
    return Call("GET", "/v1/tokens", list_of(TokenOut), params=httpx.QueryParams(params))


def create_token(name: str, user: str | None, expires_in_days: float | None) -> Call[TokenCreated]:
    body: dict[str, Any] = {"name": name}
    if user is not None:
        body["user"] = user
    if expires_in_days is not None:
        body["expires_in_days"] = expires_in_days
    return Call("POST", "/v1/tokens", TokenCreated.model_validate_json, body=body)


def revoke_token(token_id: int) -> Call[TokenOut]:
    path = f"/v1/tokens/{int(token_id)}/revoke"
    return Call("POST", path, TokenOut.model_validate_json, retry_safe=True)


def tenants() -> Call[list[TenantOut]]:
    return Call("GET", "/v1/tenants", list_of(TenantOut))


def create_tenant(name: str, share: float) -> Call[TenantOut]:
    body = {"name": name, "share": share}
    return Call("POST", "/v1/tenants", TenantOut.model_validate_json, body=body)


def set_grant(tenant: str, quotas: dict[str, FlavorQuotas]) -> Call[TenantOut]:
    body = {"quotas": _dump(quotas)}
    path = f"/v1/tenants/{_name(tenant)}/grant"
    return Call("PUT", path, TenantOut.model_validate_json, body=body, retry_safe=True)


def create_cohort(
    name: str, parent: str | None, quotas: dict[str, FlavorQuotas] | None
) -> Call[None]:
    body = {"name": name, "parent": parent, "quotas": _dump(quotas or {})}
    return Call("POST", "/v1/cohorts", _none, body=body)


def put_queue(
    name: str,
    tenant: str,
    quotas: dict[str, FlavorQuotas] | None,
    cohort: str | None,
    weight: float,
) -> Call[QueueSpecOut]:
    body = {
        "tenant": tenant,
        "cohort": cohort,
        "weight": weight,
        "quotas": None if quotas is None else _dump(quotas),
    }
    path = f"/v1/queues/{_name(name)}"
    return Call("PUT", path, QueueSpecOut.model_validate_json, body=body, retry_safe=True)


def audit(
    since: datetime | None,
    actor: str | None,
    job: int | None,
    tenant: str | None,
    limit: int,
    before: str | None,
) -> Call[AuditPage]:
    params: list[tuple[str, QueryValue]] = [("limit", limit)]
    if since is not None:
        params.append(("since", since.isoformat()))
    for key, value in (("actor", actor), ("job", job), ("tenant", tenant), ("before", before)):
        if value is not None:
            params.append((key, value))
    return Call("GET", "/v1/audit", AuditPage.model_validate_json, params=httpx.QueryParams(params))


def _dump(quotas: dict[str, FlavorQuotas]) -> dict[str, Any]:
    return {
        flavor: {r: q.model_dump(mode="json") for r, q in resources.items()}
        for flavor, resources in quotas.items()
    }


class AdminCalls:
    """``Client``'s administration methods (each raises like the job methods, and
    ``Unauthorized`` (403) when the caller's role does not allow it)."""

    def _send(self, call: Call[T]) -> T:
        raise NotImplementedError

    def me(self) -> MeOut:
        """Who the token speaks for: its user, cluster admin or not, its tenants and roles."""
        return self._send(me())

    def users(self) -> list[UserOut]:
        """Every user and its roles (cluster admins)."""
        return self._send(users())

    def create_user(self, name: str, *, cluster_admin: bool = False) -> UserOut:
        """A new user without tenants (cluster admins)."""
        return self._send(create_user(name, cluster_admin))

    def set_role(self, user: str, tenant: str, role: str | None) -> UserOut:
        """Give ``user`` ``role`` (tenant_admin, member, viewer) in ``tenant``; None takes it
        out of the tenant (cluster admins)."""
        return self._send(set_role(user, tenant, role))

    def tokens(self, user: str | None = None) -> list[TokenOut]:
        """Tokens: the caller's own, or (cluster admins) ``user``'s or everyone's."""
        return self._send(tokens(user))

    def create_token(
        self, name: str, *, user: str | None = None, expires_in_days: float | None = None
    ) -> TokenCreated:
        """A new token (its ``secret`` is shown this once)."""
        return self._send(create_token(name, user, expires_in_days))

    def revoke_token(self, token_id: int) -> TokenOut:
        """Revoke a token."""
        return self._send(revoke_token(token_id))

    def tenants(self) -> list[TenantOut]:
        """The tenants the caller may see, with their grants."""
        return self._send(tenants())

    def create_tenant(self, name: str, *, share: float = 1.0) -> TenantOut:
        """A new tenant (cluster admins)."""
        return self._send(create_tenant(name, share))

    def set_grant(self, tenant: str, quotas: dict[str, FlavorQuotas]) -> TenantOut:
        """What the tenant's admins may hand out to its queues (cluster admins)."""
        return self._send(set_grant(tenant, quotas))

    def create_cohort(
        self,
        name: str,
        *,
        parent: str | None = None,
        quotas: dict[str, FlavorQuotas] | None = None,
    ) -> None:
        """A new cohort (cluster admins)."""
        self._send(create_cohort(name, parent, quotas))

    def put_queue(
        self,
        name: str,
        *,
        tenant: str,
        quotas: dict[str, FlavorQuotas] | None,
        cohort: str | None = None,
        weight: float = 1.0,
    ) -> QueueSpecOut:
        """Create or replace a queue (cluster admins; tenant admins within the grant)."""
        return self._send(put_queue(name, tenant, quotas, cohort, weight))

    def audit(
        self,
        *,
        since: datetime | None = None,
        actor: str | None = None,
        job: int | None = None,
        tenant: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> AuditPage:
        """A page of the audit log, newest first (cluster admins; tenant admins see their
        tenants')."""
        return self._send(audit(since, actor, job, tenant, limit, before))


class AsyncAdminCalls:
    """``AsyncClient``'s administration methods, as ``AdminCalls``'s."""

    def _send(self, call: Call[T]) -> Awaitable[T]:
        raise NotImplementedError

    async def me(self) -> MeOut:
        """Who the token speaks for."""
        return await self._send(me())

    async def create_token(
        self, name: str, *, user: str | None = None, expires_in_days: float | None = None
    ) -> TokenCreated:
        """A new token (its ``secret`` is shown this once)."""
        return await self._send(create_token(name, user, expires_in_days))

    async def tokens(self, user: str | None = None) -> list[TokenOut]:
        """Tokens: the caller's own, or (cluster admins) ``user``'s or everyone's."""
        return await self._send(tokens(user))

    async def revoke_token(self, token_id: int) -> TokenOut:
        """Revoke a token."""
        return await self._send(revoke_token(token_id))

    async def audit(
        self,
        *,
        since: datetime | None = None,
        actor: str | None = None,
        job: int | None = None,
        tenant: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> AuditPage:
        """A page of the audit log, newest first."""
        return await self._send(audit(since, actor, job, tenant, limit, before))
