"""Quota configuration: tenants, cohorts, queues and the quota-wide settings, saved whole and
rebuilt exactly (``quotas(save(config)) == config``, in the saved order).

JSON shapes:
- quotas (cohorts, queues): ``[{"flavor", "resource", "nominal", "borrowing_limit",
  "lending_limit"}, ...]``; a queue's NULL quotas means unconstrained;
- a queue's preemption: ``{"within_queue", "reclaim_within_cohort", "fair_share": [...],
  "grace_seconds"}``;
- ``quota_settings.priority_classes``: ``{name: priority}``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select

from allot.core.quota.config import (
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
    }


def _preemption_from_json(data: dict[str, Any]) -> PreemptionRules:
    return PreemptionRules(
        within_queue=WithinQueue(data["within_queue"]),
        reclaim_within_cohort=ReclaimWithinCohort(data["reclaim_within_cohort"]),
        fair_share=tuple(FairShareRule(rule) for rule in data["fair_share"]),
        grace_seconds=data["grace_seconds"],
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


def load(conn: Connection) -> QuotaConfig:
    """The stored configuration (an empty one before the first save)."""
    settings = conn.execute(
        select(QuotaSettingsRow.usage_half_life, QuotaSettingsRow.priority_classes).where(
            QuotaSettingsRow.id == _SETTINGS_ID
        )
    ).one_or_none()
    tenants = tuple(
        TenantSpec(row.name, row.share)
        for row in conn.execute(
            select(TenantRow.name, TenantRow.share).order_by(TenantRow.position)
        )
    )
    cohorts = tuple(
        CohortSpec(row.name, row.parent, quotas_from_json(row.quotas))
        for row in conn.execute(
            select(CohortRow.name, CohortRow.parent, CohortRow.quotas).order_by(CohortRow.position)
        )
    )
    queues = tuple(
        QueueSpec(
            name=row.name,
            tenant=row.tenant,
            cohort=row.cohort,
            quotas=None if row.quotas is None else quotas_from_json(row.quotas),
            weight=row.weight,
            preemption=_preemption_from_json(row.preemption),
        )
        for row in conn.execute(
            select(
                QueueRow.name,
                QueueRow.tenant,
                QueueRow.cohort,
                QueueRow.quotas,
                QueueRow.weight,
                QueueRow.preemption,
            ).order_by(QueueRow.position)
        )
    )
    if settings is None:
        return QuotaConfig(tenants, queues, cohorts)
    return QuotaConfig(
        tenants,
        queues,
        cohorts,
        usage_half_life=settings.usage_half_life,
        priority_classes=dict(settings.priority_classes),
    )
