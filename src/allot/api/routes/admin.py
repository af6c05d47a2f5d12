"""Routes of who may do what: ``/v1/me``, ``/v1/users``, ``/v1/tokens``, ``/v1/tenants``,
``/v1/cohorts``, ``PUT /v1/queues/{name}`` and ``/v1/audit``.

Thin like every route: parse, call ``Tenancy`` (``allot.control.tenancy``, which owns every
rule of who may do what) as the caller, map. Quotas travel in whole units (GPUs, cores, MiB)
and are stored in the core's (milli-GPU, milli-cores, MiB); an amount that is not a whole
number of the stored unit is refused, never rounded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError

from allot.api.audit import note
from allot.api.auth import Caller
from allot.api.problems import documented
from allot.control.principal import Role
from allot.control.records import AuditEntry, AuditFilter, TokenRecord, UserRecord
from allot.control.services import RejectedError
from allot.control.tenancy import Tenancy
from allot.core.model import MILLI_PER_CPU, MILLI_PER_GPU
from allot.core.quota.config import (
    CohortSpec,
    FlavorResource,
    PreemptionRules,
    QueueSpec,
    ReclaimWithinCohort,
    ResourceQuota,
    WithinQueue,
)
from allot.wire.tenancy import (
    NAME_PATTERN,
    AuditOut,
    AuditPage,
    CohortIn,
    CohortOut,
    FlavorQuotas,
    GrantIn,
    MeOut,
    QueueIn,
    QueueSpecOut,
    QuotaIn,
    RoleIn,
    TenantIn,
    TenantOut,
    TokenCreated,
    TokenIn,
    TokenOut,
    UserIn,
    UserOut,
)

MAX_ID = (1 << 63) - 1
INSTANT = (  # RFC 3339's date-time
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
MAX_AUDIT_PAGE = 1000

# Wire resource -> (core resource, stored units per wire unit)
_UNITS = {"gpu": ("gpu", MILLI_PER_GPU), "cpu": ("cpu", MILLI_PER_CPU), "memory_mib": ("memory", 1)}
_WIRE = {core: (wire, scale) for wire, (core, scale) in _UNITS.items()}

router = APIRouter(tags=["admin"])


async def tenancy_of(request: Request) -> Tenancy:
    """The app's administration use cases."""
    tenancy: Tenancy = request.app.state.tenancy
    return tenancy


Admin = Annotated[Tenancy, Depends(tenancy_of)]
UserName = Annotated[str, Path(pattern=NAME_PATTERN)]


def _instant(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def _stored(where: str, amount: float, scale: int) -> int:
    value = amount * scale
    if abs(value - round(value)) > 1e-6:
        raise RejectedError(where, f"must be a whole number of 1/{scale} units, got {amount}")
    return round(value)


def quotas_in(quotas: dict[str, FlavorQuotas], field: str) -> dict[FlavorResource, ResourceQuota]:
    """Wire quotas as the core's, in stored units."""
    out: dict[FlavorResource, ResourceQuota] = {}
    for flavor, resources in quotas.items():
        for name, quota in resources.items():
            resource, scale = _UNITS[name]
            where = f"{field}.{flavor}.{name}"
            limits = [
                None if amount is None else _stored(f"{where}.{part}", amount, scale)
                for part, amount in (
                    ("borrowing_limit", quota.borrowing_limit),
                    ("lending_limit", quota.lending_limit),
                )
            ]
            out[flavor, resource] = ResourceQuota(
                _stored(f"{where}.nominal", quota.nominal, scale), *limits
            )
    return out


def quotas_out(
    quotas: dict[FlavorResource, ResourceQuota] | None,
) -> dict[str, dict[str, QuotaIn]] | None:
    """The core's quotas in wire units."""
    if quotas is None:
        return None
    out: dict[str, dict[str, QuotaIn]] = {}
    for (flavor, resource), quota in quotas.items():
        name, scale = _WIRE.get(resource, (resource, 1))
        out.setdefault(flavor, {})[name] = QuotaIn(
            nominal=quota.nominal / scale,
            borrowing_limit=None
            if quota.borrowing_limit is None
            else quota.borrowing_limit / scale,
            lending_limit=None if quota.lending_limit is None else quota.lending_limit / scale,
        )
    return out


def _user_out(user: UserRecord) -> UserOut:
    return UserOut.model_validate(
        {
            "name": user.name,
            "cluster_admin": user.cluster_admin,
            "tenants": {t: r.value for t, r in user.memberships.items()},
            "created_at": _instant(user.created_at),
        }
    )


def _token_fields(token: TokenRecord) -> dict[str, object]:
    return {
        "id": token.id,
        "user": token.user,
        "name": token.name,
        "created_at": _instant(token.created_at),
        "expires_at": _instant(token.expires_at),
        "last_used_at": _instant(token.last_used_at),
        "revoked_at": _instant(token.revoked_at),
    }


def _audit_out(entry: AuditEntry) -> AuditOut:
    return AuditOut(
        id=entry.id,
        time=datetime.fromtimestamp(entry.time, tz=UTC),
        actor=entry.actor,
        tenant=entry.tenant,
        action=entry.action,
        target=entry.target,
        outcome=entry.outcome,
        reason=entry.reason,
        job_id=entry.job_id,
    )


# ---------------------------------------------------------------------- me and users


@router.get("/me")
def who_am_i(caller: Caller) -> MeOut:
    """Who the caller is: its user, whether it is a cluster admin, and its tenants and roles."""
    return MeOut.model_validate(
        {
            "user": caller.user,
            "cluster_admin": caller.is_cluster_admin,
            "tenants": {t: r.value for t, r in caller.memberships.items()},
        }
    )


@router.get("/users", responses=documented(403))
def list_users(admin: Admin, caller: Caller) -> list[UserOut]:
    """Every user and its roles (cluster admins only)."""
    return [_user_out(u) for u in admin.users(principal=caller)]


@router.post("/users", status_code=status.HTTP_201_CREATED, responses=documented(403, 409))
def create_user(body: UserIn, admin: Admin, caller: Caller, request: Request) -> UserOut:
    """A new user, without tenants (cluster admins only)."""
    user = admin.add_user(body.name, cluster_admin=body.cluster_admin, principal=caller)
    note(request, f"user {user.name}", reason=f"user created (cluster admin: {user.cluster_admin})")
    return _user_out(user)


@router.put("/users/{name}/tenants/{tenant}", responses=documented(403, 404))
def set_role(
    name: UserName,
    tenant: Annotated[str, Path(pattern=NAME_PATTERN)],
    body: RoleIn,
    admin: Admin,
    caller: Caller,
    request: Request,
) -> UserOut:
    """Give the user a role in the tenant, replacing the one it had there."""
    user = admin.set_role(name, tenant, Role(body.role), principal=caller)
    note(request, f"user {name}", tenant=tenant, reason=f"role in {tenant}: {body.role}")
    return _user_out(user)


@router.delete("/users/{name}/tenants/{tenant}", responses=documented(403, 404))
def remove_role(
    name: UserName,
    tenant: Annotated[str, Path(pattern=NAME_PATTERN)],
    admin: Admin,
    caller: Caller,
    request: Request,
) -> UserOut:
    """Take the user out of the tenant."""
    user = admin.set_role(name, tenant, None, principal=caller)
    note(request, f"user {name}", tenant=tenant, reason=f"removed from {tenant}")
    return _user_out(user)


# ---------------------------------------------------------------------- tokens


@router.get("/tokens", responses=documented(403))
def list_tokens(
    admin: Admin,
    caller: Caller,
    user: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
) -> list[TokenOut]:
    """Tokens: the caller's own; a cluster admin's choice of user, or every one."""
    return [TokenOut.model_validate(_token_fields(t)) for t in admin.tokens(user, principal=caller)]


@router.post("/tokens", status_code=status.HTTP_201_CREATED, responses=documented(403, 404))
def create_token(body: TokenIn, admin: Admin, caller: Caller, request: Request) -> TokenCreated:
    """A new API token; its secret is in this answer only (it is stored as a hash)."""
    made = admin.create_token(
        body.user or caller.user,
        body.name,
        expires_in_days=body.expires_in_days,
        principal=caller,
    )
    record = made.record
    note(request, f"token {record.id}", reason=f"token {record.name!r} of {record.user} created")
    return TokenCreated.model_validate({**_token_fields(record), "secret": made.secret})


@router.post("/tokens/{token_id}/revoke", responses=documented(404))
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=MAX_ID)], admin: Admin, caller: Caller, request: Request
) -> TokenOut:
    """Revoke a token: it is refused from now on."""
    record = admin.revoke_token(token_id, principal=caller)
    note(request, f"token {token_id}", reason=f"token {record.name!r} of {record.user} revoked")
    return TokenOut.model_validate(_token_fields(record))


# ---------------------------------------------------------------------- tenants and quotas


@router.get("/tenants")
def list_tenants(control: Admin, caller: Caller) -> list[TenantOut]:
    """The tenants the caller may see (every one for a cluster admin), with their grants."""
    grants = control.grants(principal=caller)
    return [
        TenantOut.model_validate(
            {"name": t.name, "share": t.share, "grant": quotas_out(grants.get(t.name))}
        )
        for t in control.store.quotas().tenants
        if caller.may_read(t.name)
    ]


@router.post("/tenants", status_code=status.HTTP_201_CREATED, responses=documented(403, 409))
def create_tenant(body: TenantIn, admin: Admin, caller: Caller, request: Request) -> TenantOut:
    """A new tenant (cluster admins only)."""
    spec = admin.add_tenant(body.name, body.share, principal=caller)
    note(request, f"tenant {spec.name}", tenant=spec.name, reason="tenant created")
    return TenantOut(name=spec.name, share=spec.share, grant=None)


@router.put("/tenants/{name}/grant", responses=documented(403, 404))
def set_grant(
    name: Annotated[str, Path(pattern=NAME_PATTERN)],
    body: GrantIn,
    admin: Admin,
    caller: Caller,
    request: Request,
) -> TenantOut:
    """Replace what the tenant's admins may hand out to its queues (cluster admins only)."""
    grant = admin.set_grant(name, quotas_in(body.quotas, "quotas"), principal=caller)
    note(request, f"tenant {name}", tenant=name, reason="grant changed")
    share = next(t.share for t in admin.store.quotas().tenants if t.name == name)
    return TenantOut.model_validate({"name": name, "share": share, "grant": quotas_out(grant)})


@router.post("/cohorts", status_code=status.HTTP_201_CREATED, responses=documented(403, 409))
def create_cohort(body: CohortIn, admin: Admin, caller: Caller, request: Request) -> CohortOut:
    """A new cohort (cluster admins only)."""
    quotas = quotas_in(body.quotas, "quotas")
    admin.add_cohort(CohortSpec(body.name, body.parent, quotas), principal=caller)
    note(request, f"cohort {body.name}", reason="cohort created")
    return CohortOut.model_validate(
        {"name": body.name, "parent": body.parent, "quotas": quotas_out(quotas)}
    )


@router.put("/queues/{name}", responses=documented(403))
def put_queue(
    name: Annotated[str, Path(pattern=NAME_PATTERN)],
    body: QueueIn,
    admin: Admin,
    caller: Caller,
    request: Request,
) -> QueueSpecOut:
    """Create the queue or replace it whole: its tenant, cohort, weight, quotas and
    preemption rules. A tenant admin may do this for its tenant's queues within the tenant's
    grant."""
    rules = PreemptionRules(
        within_queue=WithinQueue(body.preemption.within_queue),
        reclaim_within_cohort=ReclaimWithinCohort(body.preemption.reclaim_within_cohort),
        grace_seconds=body.preemption.grace_seconds,
    )
    quotas = None if body.quotas is None else quotas_in(body.quotas, "quotas")
    spec = QueueSpec(name, body.tenant, body.cohort, quotas, body.weight, rules)
    admin.put_queue(spec, principal=caller)
    note(request, f"queue {name}", tenant=body.tenant, reason="queue created or changed")
    return QueueSpecOut.model_validate(
        {
            "name": name,
            "tenant": spec.tenant,
            "cohort": spec.cohort,
            "weight": spec.weight,
            "quotas": quotas_out(None if quotas is None else dict(quotas)),
        }
    )


# ---------------------------------------------------------------------- audit


def _instant_of(text: str) -> float:
    """An RFC 3339 instant (the pattern checked its shape) in seconds; 422 if no such day."""
    try:
        return datetime.fromisoformat(text.replace("z", "Z")).timestamp()
    except ValueError as err:
        error = {"type": "value_error", "loc": ("query", "since"), "msg": str(err), "input": text}
        raise RequestValidationError([error]) from None


@router.get("/audit", responses=documented(403))
def read_audit(
    admin: Admin,
    caller: Caller,
    since: Annotated[
        str | None,
        Query(
            pattern=INSTANT,
            description="Entries at or after this instant (RFC 3339).",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
    actor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    job: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    tenant: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_PAGE)] = 100,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="The 'next' cursor.")] = None,
) -> AuditPage:
    """The audit log, newest first: cluster admins see every entry, tenant admins their
    tenants'."""
    where = AuditFilter(
        since=None if since is None else _instant_of(since),
        actor=actor,
        job_id=job,
        tenants=None if tenant is None else frozenset({tenant}),
        limit=limit + 1,
        before=before,
    )
    found = admin.audit(where, principal=caller)
    page = found[:limit]
    following = str(page[-1].id) if len(found) > limit else None
    return AuditPage(items=[_audit_out(e) for e in page], next=following)
