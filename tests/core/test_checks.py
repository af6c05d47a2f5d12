"""Admission checks: a check's verdict is reused only for jobs with the same admission key,
made of what each check declares its verdict depends on (``CacheScope``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from allot.core.checks import (
    AdmissionCheck,
    CacheScope,
    CheckBlock,
    QuotaCheck,
    admission_key,
    default_checks,
    widest_scope,
)
from allot.core.cycle import schedule
from allot.core.explain import Explanation, Reason
from allot.core.model import JobSpec, RunningJob, TaskPlacement
from allot.core.placement import choose_placement
from allot.core.policy import get_policy
from allot.core.quota.tree import Request
from allot.core.snapshot import Snapshot
from builders import cluster, job, node


@dataclass(frozen=True)
class BannedUsers:
    """A test check that refuses some users (as a per-user budget would)."""

    users: frozenset[str]
    scope: CacheScope = CacheScope.OWNER
    name: str = "banned"
    reasons: frozenset[Reason] = frozenset({Reason.QUOTA})

    def block(
        self, snap: Snapshot, spec: JobSpec, flavor: str, request: Request
    ) -> CheckBlock | None:
        if spec.user in self.users:
            return CheckBlock(self.name, Explanation(Reason.QUOTA, {"queue": spec.queue}))
        return None


def _snapshot(*checks: AdmissionCheck) -> Snapshot:
    return Snapshot(cluster(node("a").gpus(4)), checks=checks)


def _owned(job_id: int, user: str) -> JobSpec:
    spec = job(job_id).gpus(1).build()
    return JobSpec(spec.id, spec.tenant, user, spec.queue, spec.tasks, submit_time=spec.submit_time)


def test_the_default_pipeline_is_quota_only_with_quotas() -> None:
    assert default_checks(False) == ()
    assert [c.name for c in default_checks(True)] == ["quota"]
    assert QuotaCheck().scope is CacheScope.QUEUE


def test_the_widest_scope_decides_the_key() -> None:
    banned = BannedUsers(frozenset())
    assert widest_scope(()) is CacheScope.SHAPE
    assert widest_scope((QuotaCheck(),)) is CacheScope.QUEUE
    assert widest_scope((QuotaCheck(), banned)) is CacheScope.OWNER
    a, b = _owned(1, "alice"), _owned(2, "bob")
    assert admission_key(CacheScope.QUEUE, a) == admission_key(CacheScope.QUEUE, b)
    assert admission_key(CacheScope.OWNER, a) != admission_key(CacheScope.OWNER, b)
    assert admission_key(CacheScope.JOB, a) != admission_key(CacheScope.JOB, _owned(3, "alice"))


@pytest.mark.parametrize("policy", ["besteffort", "backfill", "allot", "kueue"])
def test_a_refusal_of_one_owner_is_not_lent_to_a_twin_of_another(policy: str) -> None:
    # Same queue, same shape; bob is refused first. Cached by queue and shape alone, alice's
    # twin would be refused with bob's verdict.
    snap = _snapshot(BannedUsers(frozenset({"bob"})))
    plan = schedule(snap, [_owned(1, "bob"), _owned(2, "alice")], get_policy(policy), 0.0)
    assert [s.job_id for s in plan.starts] == [2]
    assert plan.pending[1].reason is Reason.QUOTA


def test_under_strict_fifo_a_refused_head_blocks_its_queue() -> None:
    snap = _snapshot(BannedUsers(frozenset({"bob"})))
    plan = schedule(snap, [_owned(1, "bob"), _owned(2, "alice")], get_policy("fifo"), 0.0)
    assert plan.starts == ()
    assert plan.pending[2].reason is Reason.BLOCKED_IN_QUEUE


def test_a_check_refusal_takes_no_victims() -> None:
    # Preemption cannot lift a refusal that is not quota's: bob's urgent job preempts nothing,
    # although its queue's rules would let it take the lower-priority job.
    snap = Snapshot(cluster(node("a").gpus(1)), checks=(BannedUsers(frozenset({"bob"})),))
    snap.start(RunningJob(_owned(1, "alice"), 0.0, _placed(snap, _owned(1, "alice")), "H100"))
    urgent = replace(_owned(2, "bob"), priority=10)
    plan = schedule(snap, [urgent], get_policy("allot"), 10.0)
    assert plan.preemptions == ()
    assert plan.pending[2].reason is Reason.QUOTA
    # Without the refusal the same job preempts.
    free = replace(urgent, user="carol")
    assert [p.victim for p in schedule(snap, [free], get_policy("allot"), 10.0).preemptions] == [1]


def _placed(snap: Snapshot, spec: JobSpec) -> tuple[TaskPlacement, ...]:
    placement = choose_placement(snap, spec, "H100")
    assert placement is not None
    return placement
