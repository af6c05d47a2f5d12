"""The principal seam: use cases act for the authenticated caller. A job's user is the caller
and its tenant its queue's; a caller outside that tenant, or without a role that writes, is
refused (403 at the API), and only a cluster admin drains nodes."""

from __future__ import annotations

import pytest

from allot.control.principal import ForbiddenError, Principal, Role
from allot.control.records import Launch, NewJob
from allot.core.model import NodeState, Resources
from allot.core.quota.config import QueueSpec, QuotaConfig, TenantSpec
from harness import make_harness

QUOTAS = QuotaConfig(
    (TenantSpec("vision"), TenantSpec("nlp")),
    (QueueSpec("see", "vision"), QueueSpec("read", "nlp")),
)
JOB = NewJob("t", "", "", "see", (Resources.of(cpus=1, memory_mib=64),), Launch(("true",)))


def _member(user: str, *tenants: str, role: Role = Role.MEMBER) -> Principal:
    return Principal(user, dict.fromkeys(tenants, role))


def test_a_member_submits_to_its_tenants_queues_as_itself() -> None:
    harness = make_harness(quotas=QUOTAS)
    record, _ = harness.control.submit(JOB, principal=_member("ada", "vision"))
    assert (record.job.user, record.job.tenant) == ("ada", "vision")
    with pytest.raises(ForbiddenError, match="may not submit jobs for tenant 'nlp'"):
        harness.control.submit(
            NewJob("t", "", "", "read", JOB.tasks, JOB.launch), principal=_member("ada", "vision")
        )
    assert len(harness.store.pending_jobs()) == 1  # the refusal stored nothing


def test_a_viewer_only_reads_and_only_admins_drain() -> None:
    harness = make_harness(quotas=QUOTAS)
    job, _ = harness.control.submit(JOB, principal=Principal.admin("root"))
    viewer = _member("vic", "vision", role=Role.VIEWER)
    with pytest.raises(ForbiddenError):
        harness.control.submit(JOB, principal=viewer)
    with pytest.raises(ForbiddenError):
        harness.control.cancel(job.id, principal=viewer)
    assert harness.control.get(job.id, principal=viewer).id == job.id
    with pytest.raises(ForbiddenError, match="only a cluster admin"):
        harness.control.set_node_state(
            "gpu-1", NodeState.DRAINING, principal=_member("ada", "vision")
        )
    drained = harness.control.set_node_state(
        "gpu-1", NodeState.DRAINING, principal=Principal.admin("root")
    )
    assert drained.state is NodeState.DRAINING
