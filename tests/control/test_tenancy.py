"""Administration use cases (``allot.control.tenancy``): who may change what, tenant admins
within their tenant's grant, tokens shown once and owned, and who reads the audit log; every
refused change leaves the quotas as they were."""

from __future__ import annotations

import pytest

from allot.control.credentials import hash_token
from allot.control.ports import ConflictError, NotFoundError
from allot.control.principal import ForbiddenError, Principal, Role
from allot.control.records import AuditEntry, AuditFilter
from allot.control.services import RejectedError
from allot.control.tenancy import Tenancy
from allot.core.quota.config import CohortSpec, QueueSpec, QuotaConfig, ResourceQuota, TenantSpec
from harness import Harness, make_harness

ROOT = Principal.admin("root")
VERA = Principal("vera", {"vision": Role.TENANT_ADMIN})
MAX = Principal("max", {"vision": Role.MEMBER})
GPU = ("H100-80G", "gpu")


def _setup() -> tuple[Harness, Tenancy, list[int]]:
    quotas = QuotaConfig(
        (TenantSpec("vision"), TenantSpec("nlp")),
        (
            QueueSpec("see", "vision", "org", {GPU: ResourceQuota(4000)}),
            QueueSpec("read", "nlp", "org", {GPU: ResourceQuota(4000)}),
        ),
        (CohortSpec("org"), CohortSpec("lab")),
    )
    harness = make_harness(quotas=quotas)
    changes: list[int] = []
    tenancy = Tenancy(harness.store, harness.clock, lambda: changes.append(1))
    harness.store.set_grant("vision", {GPU: ResourceQuota(6000, 2000)})
    return harness, tenancy, changes


def _queue(name: str, nominal: int, borrowing: int | None = 1000, **kw: object) -> QueueSpec:
    return QueueSpec(name, "vision", kw.pop("cohort", "org"),  # type: ignore[arg-type]
                     {GPU: ResourceQuota(nominal, borrowing)})  # fmt: skip


def test_a_tenant_admin_changes_its_queues_within_the_grant() -> None:
    harness, tenancy, changes = _setup()
    tenancy.put_queue(_queue("see-2", 2000), principal=VERA)
    assert [q.name for q in harness.store.quotas().queues] == ["see", "read", "see-2"]
    assert changes == [1]
    before = harness.store.quotas()
    for queue, rule in (
        (_queue("see-3", 1000), "its grant is 6000"),
        (_queue("see", 5000), "its grant is 6000"),
        (_queue("see-4", 0, None), "borrowing_limit: must be at most 2000"),
        (_queue("see-5", 0, cohort="lab"), "has no queue in cohort 'lab'"),
        (QueueSpec("see-6", "vision"), "only a cluster admin may make a queue without quotas"),
        (QueueSpec("read", "nlp", "org", {GPU: ResourceQuota(1)}), "admin of tenant 'nlp'"),
        (_queue("read", 0), "admin of tenant 'nlp'"),  # taking another tenant's queue
    ):
        with pytest.raises(ForbiddenError, match=rule):
            tenancy.put_queue(queue, principal=VERA)
    with pytest.raises(ForbiddenError):
        tenancy.put_queue(_queue("see-7", 0), principal=MAX)
    assert harness.store.quotas() == before
    # Within the grant again after lowering another queue.
    tenancy.put_queue(_queue("see", 1000), principal=VERA)
    tenancy.put_queue(_queue("see-3", 3000), principal=VERA)


def test_only_cluster_admins_add_tenants_cohorts_users_and_grants() -> None:
    _, tenancy, _ = _setup()
    for action in (
        lambda p: tenancy.add_tenant("audio", 1.0, principal=p),
        lambda p: tenancy.add_cohort(CohortSpec("x"), principal=p),
        lambda p: tenancy.add_user("eve", cluster_admin=False, principal=p),
        lambda p: tenancy.set_grant("vision", None, principal=p),
        lambda p: tenancy.users(principal=p),
    ):
        with pytest.raises(ForbiddenError, match="only a cluster admin"):
            action(VERA)
        action(ROOT)
    with pytest.raises(ConflictError, match="tenant 'audio' already exists"):
        tenancy.add_tenant("audio", 1.0, principal=ROOT)
    with pytest.raises(ConflictError, match="cohort 'x' already exists"):
        tenancy.add_cohort(CohortSpec("x"), principal=ROOT)
    with pytest.raises(RejectedError, match="unknown cohort 'nope'"):
        tenancy.put_queue(QueueSpec("q", "vision", "nope", {GPU: ResourceQuota(0)}),
                          principal=ROOT)  # fmt: skip
    with pytest.raises(RejectedError, match="unknown flavor 'B200'"):
        tenancy.put_queue(QueueSpec("q", "vision", None, {("B200", "gpu"): ResourceQuota(1)}),
                          principal=ROOT)  # fmt: skip
    with pytest.raises(NotFoundError, match="tenant 'ghost' does not exist"):
        tenancy.set_grant("ghost", None, principal=ROOT)
    with pytest.raises(NotFoundError, match="tenant 'ghost' does not exist"):
        tenancy.set_role("eve", "ghost", Role.MEMBER, principal=ROOT)
    assert tenancy.set_role("eve", "vision", Role.VIEWER, principal=ROOT).memberships == {
        "vision": Role.VIEWER
    }
    with pytest.raises(ConflictError):
        tenancy.add_user("eve", cluster_admin=False, principal=ROOT)


def test_tokens_are_shown_once_expire_and_belong_to_their_user() -> None:
    harness, tenancy, _ = _setup()
    harness.store.add_user("max", cluster_admin=False, at=0)
    harness.store.add_user("vera", cluster_admin=False, at=0)
    made = tenancy.create_token("max", "laptop", expires_in_days=None, principal=MAX)
    assert made.secret.startswith("allot_")
    assert len(made.secret) >= 6 + 43  # 32 random bytes, URL-safe
    assert harness.store.find_token(hash_token(made.secret)) == made.record
    assert made.record.expires_at == harness.clock.now() + 90 * 86_400
    with pytest.raises(ForbiddenError):
        tenancy.create_token("vera", "x", expires_in_days=1, principal=MAX)
    with pytest.raises(RejectedError, match="expires_in_days"):
        tenancy.create_token("max", "x", expires_in_days=0, principal=MAX)
    theirs = tenancy.create_token("vera", "ci", expires_in_days=1, principal=ROOT)
    assert [t.name for t in tenancy.tokens(None, principal=MAX)] == ["laptop"]
    with pytest.raises(NotFoundError, match=f"token {theirs.record.id} does not exist"):
        tenancy.revoke_token(theirs.record.id, principal=MAX)
    assert tenancy.revoke_token(made.record.id, principal=MAX).revoked_at is not None
    assert len(tenancy.tokens(None, principal=ROOT)) == 2


def test_the_audit_log_is_read_by_admins_in_their_scope() -> None:
    harness, tenancy, _ = _setup()
    harness.store.append_audit(
        [
            AuditEntry(1.0, "max", "submit_job", "job 1", "ok", "submitted", "vision", 1),
            AuditEntry(2.0, "nina", "submit_job", "job 2", "ok", "submitted", "nlp", 2),
            AuditEntry(3.0, "root", "drain_node", "node a", "ok", "drained", ""),
        ]
    )
    assert len(tenancy.audit(AuditFilter(), principal=ROOT)) == 3
    assert [e.actor for e in tenancy.audit(AuditFilter(), principal=VERA)] == ["max"]
    nlp_only = AuditFilter(tenants=frozenset({"nlp"}))
    assert tenancy.audit(nlp_only, principal=VERA) == []
    with pytest.raises(ForbiddenError, match="audit"):
        tenancy.audit(AuditFilter(), principal=MAX)
