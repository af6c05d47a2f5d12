"""What keeps a running job from LAS preemption under ``allot``: a margin of levels, a run
quantum and checkpointing (``allot.core.preemption.las.LasRule``)."""

from __future__ import annotations

from dataclasses import replace

from allot.core.cycle import schedule
from allot.core.model import JobSpec, RunningJob, TaskPlacement
from allot.core.policy import get_policy
from allot.core.policy.ordering import las_level
from allot.core.preemption import Strategy
from allot.core.preemption.las import PROTECTED, LasRule, level_of
from allot.core.snapshot import Snapshot
from builders import cluster, job, node

ALLOT = get_policy("allot")
LAS = get_policy("las")
HOUR = 3_600.0


def _one_gpu_cluster_running(victim: JobSpec, attained: float, start: float) -> Snapshot:
    snap = Snapshot(cluster(node("a").gpus(1)))
    placement = (TaskPlacement("a", (0,), 1000),)
    snap.start(RunningJob(victim, start, placement, "H100", attained))
    return snap


def _preempted(snap: Snapshot, now: float) -> dict[int, Strategy]:
    plan = schedule(snap, [job(1).build()], ALLOT, now)
    return {p.victim: p.strategy for p in plan.preemptions}


def _checkpointable(job_id: int) -> JobSpec:
    return replace(job(job_id).build(), checkpointable=True)


def test_the_rule_reads_as_the_thresholds() -> None:
    rule = LasRule.of(ALLOT)
    assert list(rule) == list(ALLOT.las_thresholds)
    assert las_level(5 * HOUR, rule) == las_level(5 * HOUR, ALLOT.las_thresholds) == 1
    assert LasRule.of(LAS) == LasRule(LAS.las_thresholds)  # Tiresias as published


def test_allot_preempts_only_a_victim_two_levels_up() -> None:
    # 5 GPU-hours attained: level 1, one above a new job; 20 GPU-hours: level 2.
    snap = _one_gpu_cluster_running(_checkpointable(10), 5 * HOUR, 0.0)
    assert _preempted(snap, HOUR) == {}
    snap = _one_gpu_cluster_running(_checkpointable(10), 20 * HOUR, 0.0)
    assert _preempted(snap, HOUR) == {10: Strategy.LAS}
    las = schedule(_one_gpu_cluster_running(_checkpointable(10), 5 * HOUR, 0.0), [job(1).build()],
                   LAS, HOUR)  # fmt: skip
    assert [p.victim for p in las.preemptions] == [10]  # the one-level rule of ``las``


def test_a_run_is_safe_for_its_quantum() -> None:
    started = 10 * HOUR
    snap = _one_gpu_cluster_running(_checkpointable(10), 20 * HOUR, started)
    assert _preempted(snap, started + ALLOT.las_min_run_seconds - 1) == {}
    assert _preempted(snap, started + ALLOT.las_min_run_seconds) == {10: Strategy.LAS}


def test_a_job_that_cannot_checkpoint_is_no_las_victim() -> None:
    spec = replace(job(10).build(), checkpointable=False)
    snap = _one_gpu_cluster_running(spec, 20 * HOUR, 0.0)
    assert _preempted(snap, HOUR) == {}
    victim = snap.running[10]
    assert level_of(victim, HOUR, LasRule.of(ALLOT)) == PROTECTED
    assert level_of(victim, HOUR, LAS.las_thresholds) == 2
