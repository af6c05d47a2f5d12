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


def test_another_tenants_job_is_as_unknown_as_a_missing_one() -> None:
    from allot.control.ports import NotFoundError
    from allot.control.records import Dependency
    from allot.control.services import RejectedError

    harness = make_harness(quotas=QUOTAS)
    theirs, _ = harness.control.submit(
        NewJob("t", "", "", "read", JOB.tasks, JOB.launch), principal=_member("nia", "nlp")
    )
    ada = _member("ada", "vision")
    for read in (harness.control.get, harness.control.events, harness.control.explain):
        with pytest.raises(NotFoundError, match=f"^job {theirs.id} does not exist$"):
            read(theirs.id, principal=ada)
    with pytest.raises(NotFoundError):
        harness.control.cancel(theirs.id, principal=ada)
    waiting = NewJob("w", "", "", "see", JOB.tasks, JOB.launch, after=(Dependency(theirs.id),))
    with pytest.raises(RejectedError, match=f"job {theirs.id} does not exist"):
        harness.control.submit(waiting, principal=ada)


def test_a_member_acts_on_its_own_jobs_and_a_tenant_admin_on_every_one() -> None:
    harness = make_harness(quotas=QUOTAS)
    job, _ = harness.control.submit(JOB, principal=_member("ada", "vision"))
    with pytest.raises(ForbiddenError, match="a member acts only on its own jobs"):
        harness.control.hold(job.id, principal=_member("bea", "vision"))
    lead = _member("lea", "vision", role=Role.TENANT_ADMIN)
    assert harness.control.hold(job.id, principal=lead).held
    assert not harness.control.release(job.id, principal=_member("ada", "vision")).held
