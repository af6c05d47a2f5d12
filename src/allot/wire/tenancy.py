"""Wire models of users, tokens, tenants, queues, grants and the audit log (``/v1/me``,
``/v1/users``, ``/v1/tokens``, ``/v1/tenants``, ``/v1/cohorts``, ``/v1/queues/{name}``,
``/v1/audit``): what clients send and what the server answers. Pydantic and the standard
library only, like ``allot.wire.schemas``.

Quotas on the wire: per flavor, per resource (``gpu`` in GPUs, ``cpu`` in cores,
``memory_mib`` in MiB), a nominal amount with optional borrowing and lending limits.
A token's secret appears in exactly one answer, the one that created it.
"""

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator

from allot.wire.model import WireModel

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$"
_NAME = re.compile(NAME_PATTERN)

_CLOSED: dict[str, object] = {"additionalProperties": False}  # keys must match their pattern

TenantRoleName = Literal["tenant_admin", "member", "viewer"]
ResourceName = Literal["gpu", "cpu", "memory_mib"]
WithinQueueName = Literal["never", "lower_priority"]
ReclaimName = Literal["never", "lower_priority", "any"]

Name = Field(pattern=NAME_PATTERN, description="Letters, digits, '.', '_', '@' and '-'.")


class _In(WireModel):
    model_config = ConfigDict(
        defer_build=False, extra="forbid", strict=True, allow_inf_nan=False, frozen=True
    )


class QuotaIn(_In):
    """One resource's quota: nominal, and how far above it a queue may borrow (null: no
    limit) and how much of it the queue lends (null: all)."""

    nominal: float = Field(ge=0, le=1e12)
    borrowing_limit: float | None = Field(default=None, ge=0, le=1e12)
    lending_limit: float | None = Field(default=None, ge=0, le=1e12)


FlavorQuotas = Annotated[dict[ResourceName, QuotaIn], Field(json_schema_extra=_CLOSED)]
FlavorName = Annotated[str, Field(pattern=NAME_PATTERN)]
QuotasIn = Annotated[
    dict[FlavorName, FlavorQuotas], Field(max_length=64, json_schema_extra=_CLOSED)
]


def _check_flavors(value: dict[str, FlavorQuotas]) -> dict[str, FlavorQuotas]:
    for flavor in value:
        if not _NAME.match(flavor):
            raise ValueError(f"flavor names must match {NAME_PATTERN}")
    return value


class MeOut(WireModel):
    """Who the caller is."""

    user: str
    cluster_admin: bool
    tenants: dict[str, TenantRoleName] = Field(description="Tenant -> the caller's role there.")


class UserIn(_In):
    """A new user."""

    name: str = Name
    cluster_admin: bool = False


class UserOut(WireModel):
    """A user and its roles."""

    name: str
    cluster_admin: bool
    tenants: dict[str, TenantRoleName]
    created_at: datetime


class RoleIn(_In):
    """A user's role in a tenant."""

    role: TenantRoleName


class TokenIn(_In):
    """A new API token: for the caller, or (cluster admins) for ``user``."""

    name: str = Name
    user: str | None = Field(default=None, pattern=NAME_PATTERN)
    expires_in_days: float | None = Field(
        default=None, gt=0, le=3650, description="Default: 90 days."
    )


class TokenOut(WireModel):
    """An API token (never its secret)."""

    id: int
    user: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="Recorded at most once a minute.")
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    """A token just made: ``secret`` is shown this once and never again."""

    secret: str


class TenantIn(_In):
    """A new tenant."""

    name: str = Name
    share: float = Field(default=1.0, gt=0, le=1e6, description="Fair-share entitlement.")


class TenantOut(WireModel):
    """A tenant, its share and what its admins may hand out."""

    name: str
    share: float
    grant: dict[str, dict[ResourceName, QuotaIn]] | None


class GrantIn(_In):
    """What a tenant's admins may hand out to its queues: per flavor and resource, the most
    nominal quota in all and the highest borrowing limit of one queue."""

    quotas: QuotasIn

    @field_validator("quotas")
    @classmethod
    def _flavor_names(cls, value: dict[str, FlavorQuotas]) -> dict[str, FlavorQuotas]:
        return _check_flavors(value)


class CohortIn(_In):
    """A new cohort."""

    name: str = Name
    parent: str | None = Field(default=None, pattern=NAME_PATTERN)
    quotas: QuotasIn = Field(default_factory=dict)

    @field_validator("quotas")
    @classmethod
    def _flavor_names(cls, value: dict[str, FlavorQuotas]) -> dict[str, FlavorQuotas]:
        return _check_flavors(value)


class PreemptionIn(_In):
    """Which jobs a queue's jobs may preempt."""

    within_queue: WithinQueueName = "lower_priority"
    reclaim_within_cohort: ReclaimName = "any"
    grace_seconds: float = Field(default=30.0, ge=0, le=86_400)


class QueueIn(_In):
    """A queue, created or replaced whole. ``quotas`` null: unconstrained (cluster admins
    only)."""

    tenant: str = Name
    cohort: str | None = Field(default=None, pattern=NAME_PATTERN)
    weight: float = Field(default=1.0, ge=0, le=1e6)
    quotas: QuotasIn | None = None
    preemption: PreemptionIn = Field(default_factory=PreemptionIn)

    @field_validator("quotas")
    @classmethod
    def _flavor_names(cls, value: dict[str, FlavorQuotas] | None) -> dict[str, FlavorQuotas] | None:
        return None if value is None else _check_flavors(value)


class CohortOut(WireModel):
    """A cohort as configured."""

    name: str
    parent: str | None
    quotas: dict[str, dict[ResourceName, QuotaIn]]


class QueueSpecOut(WireModel):
    """A queue as configured."""

    name: str
    tenant: str
    cohort: str | None
    weight: float
    quotas: dict[str, dict[ResourceName, QuotaIn]] | None


class AuditOut(WireModel):
    """One entry of the audit log."""

    id: int
    time: datetime
    actor: str
    tenant: str
    action: str = Field(description="The operation (its operation id), or a scheduler decision.")
    target: str
    outcome: str = Field(description="ok, denied, not_found, invalid, conflict, error, ...")
    reason: str
    job_id: int | None


class AuditPage(WireModel):
    """Audit entries, newest first; pass ``next`` as ``before`` for older ones."""

    items: list[AuditOut]
    next: str | None
