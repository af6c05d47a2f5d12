"""Quota configuration in the store: saved whole, rebuilt exactly."""

from __future__ import annotations

from allot.control.ports import Store
from allot.core.quota.config import (
    BorrowWithinCohort,
    CohortSpec,
    FairShareRule,
    PreemptionRules,
    QueueSpec,
    QuotaConfig,
    ReclaimWithinCohort,
    ResourceQuota,
    TenantSpec,
    WithinQueue,
)
from allot.core.quota.fair_share import FairShareUsage


def _config() -> QuotaConfig:
    return QuotaConfig(
        tenants=(TenantSpec("vision", 2.0), TenantSpec("nlp"), TenantSpec("infra", 0.25)),
        cohorts=(
            CohortSpec("all", None, {("H100-80G", "gpu"): ResourceQuota(8000)}),
            CohortSpec(
                "research",
                "all",
                {
                    ("H100-80G", "gpu"): ResourceQuota(16000, 8000, 4000),
                    ("H100-80G", "memory"): ResourceQuota(1 << 20, None, 0),
                },
                weight=0.5,
            ),
        ),
        queues=(
            QueueSpec(
                "vision-train",
                "vision",
                "research",
                {
                    ("H100-80G", "gpu"): ResourceQuota(8000, None, 2000),
                    ("A100-40G", "cpu"): ResourceQuota(64000),
                },
                weight=2.5,
                preemption=PreemptionRules(
                    WithinQueue.NEVER,
                    ReclaimWithinCohort.LOWER_PRIORITY,
                    (FairShareRule.LTE_FINAL_SHARE, FairShareRule.LT_INITIAL_SHARE),
                    grace_seconds=120.5,
                    borrow_within_cohort=BorrowWithinCohort.LOWER_PRIORITY,
                    max_priority_threshold=0,
                    min_runtime_seconds=600.0,
                ),
            ),
            QueueSpec("nlp-batch", "nlp", "research", {}),
            QueueSpec(
                "borrower",
                "nlp",
                "research",
                preemption=PreemptionRules(WithinQueue.LOWER_OR_NEWER_EQUAL_PRIORITY),
            ),
            QueueSpec("scratch", "infra"),
        ),
        usage_half_life=3 * 24 * 3600.0,
        priority_classes={"low": -10, "normal": 0, "urgent": 1000},
        min_runtime_by_class={"urgent": 1800.0},
        fair_share_usage=FairShareUsage.BILLED,
    )


def test_an_empty_store_has_an_empty_configuration(store: Store) -> None:
    assert store.quotas() == QuotaConfig()


def test_quotas_round_trip_exactly(store: Store) -> None:
    config = _config()
    store.save_quotas(config, at=1.0)
    assert store.quotas() == config


def test_saving_replaces_the_whole_configuration(store: Store) -> None:
    store.save_quotas(_config(), at=1.0)
    smaller = QuotaConfig(tenants=(TenantSpec("solo"),), queues=(QueueSpec("only", "solo"),))
    store.save_quotas(smaller, at=2.0)
    assert store.quotas() == smaller
    assert [e.kind for e in store.events()] == ["quotas_saved", "quotas_saved"]
