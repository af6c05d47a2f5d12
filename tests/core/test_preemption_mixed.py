"""Victim sets that mix the preemptor's own lower-priority jobs with other queues' borrowed
jobs: taking its own jobs can bring the preemptor's queue back within its nominal quota, and
that makes it eligible to reclaim what others borrow (checked at the moment of each removal)."""

from __future__ import annotations

from allot.core.cycle import schedule
from allot.core.model import JobSpec, RunningJob, TaskPlacement
from allot.core.policy import get_policy
from allot.core.preemption import Strategy
from allot.core.quota.config import CohortSpec, QueueSpec, QuotaConfig, ResourceQuota, TenantSpec
from allot.core.snapshot import Snapshot
from builders import cluster, job, node

GPU = ("H100", "gpu")


def _quotas() -> QuotaConfig:
    return QuotaConfig(
        (TenantSpec("x"), TenantSpec("y")),
        (
            QueueSpec("x", "x", "org", {GPU: ResourceQuota(2000)}),
            QueueSpec("y", "y", "org", {GPU: ResourceQuota(2000)}),
        ),
        (CohortSpec("org"),),
    )


def _run(snap: Snapshot, spec: JobSpec, devices: tuple[int, ...]) -> None:
    placement = tuple(TaskPlacement("a", devices, 1000) for _ in spec.tasks)
    snap.start(RunningJob(spec, 0.0, placement, "H100"))


def _in(job_id: int, queue: str, priority: int = 0, gpus: int = 1) -> JobSpec:
    return job(job_id).queue(queue).tenant(queue).priority(priority).gpus(gpus).build()


def test_own_low_priority_job_makes_the_queue_eligible_to_reclaim() -> None:
    # x: nominal 2, runs one priority -1 job on 1 GPU; y: nominal 2, runs three (borrows 1).
    # x's 2-GPU job at priority 0 is entitled to 2 GPUs: take x's own job (within the queue),
    # which brings x back within nominal, and y's borrowed one (reclaim).
    snap = Snapshot(cluster(node("a").gpus(4)), quotas=_quotas())
    _run(snap, _in(1, "x", priority=-1), (0,))
    for k, device in enumerate((1, 2, 3)):
        _run(snap, _in(10 + k, "y"), (device,))
    plan = schedule(snap, [_in(2, "x", gpus=2)], get_policy("kueue"), 100.0)
    chosen = {p.victim: p.strategy for p in plan.preemptions}
    assert len(chosen) == 2
    assert chosen[1] is Strategy.WITHIN_QUEUE
    assert set(chosen) - {1} <= {10, 11, 12}
    assert Strategy.RECLAIM in chosen.values()
