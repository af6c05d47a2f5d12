"""Quota configuration: tenants, cohorts, queues and the quota-wide settings, saved whole and
rebuilt exactly (``quotas(save(config)) == config``, in the saved order).

JSON shapes:
- quotas (cohorts, queues): ``[{"flavor", "resource", "nominal", "borrowing_limit",
  "lending_limit"}, ...]``; a queue's NULL quotas means unconstrained;
- a queue's preemption: ``{"within_queue", "reclaim_within_cohort", "fair_share": [...],
  "grace_seconds", "borrow_within_cohort", "max_priority_threshold", "min_runtime_seconds"}``
  (the last three read as their defaults when absent: saved before they existed);
- ``quota_settings.priority_classes``: ``{name: priority}``; ``min_runtime_by_class``:
  ``{name: seconds}``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select

from allot.core.quota.config import (
    BorrowWithinCohort,
    CohortSpec,
    FairShareRule,
    PreemptionRules,
    QueueSpec,
    QuotaConfig,
    Quotas,
    ReclaimWithinCohort,
    ResourceQuota,
    TenantSpec,
    WithinQueue,
)
from allot.core.quota.fair_share import FairShareUsage
from allot.store import events
from allot.store.tables import CohortRow, QueueRow, QuotaSettingsRow, TenantRow

_SETTINGS_ID = 1


def quotas_json(quotas: Quotas) -> list[dict[str, Any]]:
    return [
        {
            "flavor": flavor,
            "resource": resource,
            "nominal": quota.nominal,
            "borrowing_limit": quota.borrowing_limit,
            "lending_limit": quota.lending_limit,
        }
        for (flavor, resource), quota in quotas.items()
    ]


def quotas_from_json(data: list[Any]) -> dict[tuple[str, str], ResourceQuota]:
    return {
        (item["flavor"], item["resource"]): ResourceQuota(
            item["nominal"], item["borrowing_limit"], item["lending_limit"]
        )
        for item in data
    }


def _preemption_json(rules: PreemptionRules) -> dict[str, Any]:
    return {
        "within_queue": rules.within_queue.value,
        "reclaim_within_cohort": rules.reclaim_within_cohort.value,
        "fair_share": [rule.value for rule in rules.fair_share],
        "grace_seconds": rules.grace_seconds,
        "borrow_within_cohort": rules.borrow_within_cohort.value,
        "max_priority_threshold": rules.max_priority_threshold,
        "min_runtime_seconds": rules.min_runtime_seconds,
    }


def _preemption_from_json(data: dict[str, Any]) -> PreemptionRules:
    return PreemptionRules(
        within_queue=WithinQueue(data["within_queue"]),
        reclaim_within_cohort=ReclaimWithinCohort(data["reclaim_within_cohort"]),
        fair_share=tuple(FairShareRule(rule) for rule in data["fair_share"]),
        grace_seconds=data["grace_seconds"],
        # Rules saved before these settings existed had none of them: the defaults.
        borrow_within_cohort=BorrowWithinCohort(data.get("borrow_within_cohort", "never")),
        max_priority_threshold=data.get("max_priority_threshold"),
        min_runtime_seconds=data.get("min_runtime_seconds", 0.0),
    )


def save(conn: Connection, config: QuotaConfig, *, at: float) -> None:
    """Replace every tenant, cohort and queue, and the settings, with ``config``."""
    for table in (QueueRow, CohortRow, TenantRow, QuotaSettingsRow):
        conn.execute(delete(table))
    if config.tenants:
        conn.execute(
            insert(TenantRow),
            [
                {"name": t.name, "share": t.share, "position": i}
                for i, t in enumerate(config.tenants)
            ],
        )
    if config.cohorts:
        conn.execute(
            insert(CohortRow),
            [
                {
                    "name": c.name,
                    "parent": c.parent,
                    "quotas": quotas_json(c.quotas),
                    "weight": c.weight,
                    "position": i,
                }
                for i, c in enumerate(config.cohorts)
            ],
        )
    if config.queues:
        conn.execute(
            insert(QueueRow),
            [
                {
                    "name": q.name,
                    "tenant": q.tenant,
                    "cohort": q.cohort,
                    "weight": q.weight,
                    "quotas": None if q.quotas is None else quotas_json(q.quotas),
                    "preemption": _preemption_json(q.preemption),
                    "position": i,
                    "idle_timeout": q.idle_timeout,
                }
                for i, q in enumerate(config.queues)
            ],
        )
    conn.execute(
        insert(QuotaSettingsRow),
        {
            "id": _SETTINGS_ID,
            "usage_half_life": config.usage_half_life,
            "priority_classes": dict(config.priority_classes),
            "min_runtime_by_class": dict(config.min_runtime_by_class),
            "fair_share_usage": config.fair_share_usage.value,
        },
    )
    events.append(
        conn,
        events.event_values(
            at=at,
            kind="quotas_saved",
            job_id=None,
            from_state=None,
            to_state=None,
            actor="config",
            reason=(
                f"quotas saved (tenants: {len(config.tenants)}, cohorts: {len(config.cohorts)},"
                f" queues: {len(config.queues)})"
            ),
            data={
                "tenants": len(config.tenants),
                "cohorts": len(config.cohorts),
                "queues": len(config.queues),
            },
        ),
    )


# Built once: the scheduling loop reads the quotas every cycle.
_SETTINGS = select(
    QuotaSettingsRow.usage_half_life,
    QuotaSettingsRow.priority_classes,
    QuotaSettingsRow.min_runtime_by_class,
    QuotaSettingsRow.fair_share_usage,
).where(QuotaSettingsRow.id == _SETTINGS_ID)
_TENANTS = select(TenantRow.name, TenantRow.share).order_by(TenantRow.position)
_COHORTS = select(CohortRow.name, CohortRow.parent, CohortRow.quotas, CohortRow.weight).order_by(
    CohortRow.position
)
_QUEUES = select(
    QueueRow.name,
    QueueRow.tenant,
    QueueRow.cohort,
    QueueRow.quotas,
    QueueRow.weight,
    QueueRow.preemption,
    QueueRow.idle_timeout,
).order_by(QueueRow.position)


def load(conn: Connection) -> QuotaConfig:
    """The stored configuration (an empty one before the first save)."""
    settings = conn.execute(_SETTINGS).one_or_none()
    tenants = tuple(TenantSpec(row.name, row.share) for row in conn.execute(_TENANTS))
    cohorts = tuple(
        CohortSpec(row.name, row.parent, quotas_from_json(row.quotas), row.weight)
        for row in conn.execute(_COHORTS)
    )
    queues = tuple(
        QueueSpec(
            name=row.name,
            tenant=row.tenant,
            cohort=row.cohort,
            quotas=None if row.quotas is None else quotas_from_json(row.quotas),
            weight=row.weight,
            preemption=_preemption_from_json(row.preemption),
            idle_timeout=row.idle_timeout,
        )
        for row in conn.execute(_QUEUES)
    )
    if settings is None:
        return QuotaConfig(tenants, queues, cohorts)
    return QuotaConfig(
        tenants,
        queues,
        cohorts,
        usage_half_life=settings.usage_half_life,
        priority_classes=dict(settings.priority_classes),
        min_runtime_by_class=dict(settings.min_runtime_by_class),
        fair_share_usage=FairShareUsage(settings.fair_share_usage),
    )
