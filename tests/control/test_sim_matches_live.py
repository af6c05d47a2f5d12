"""The simulator and the live loop make the same decisions on the same inputs: a workload replayed
by ``allot.sim.engine.Simulation`` and the same jobs submitted to the live loop in virtual time
(``virtual.VirtualPlant``: a real SQLite store, the real loop) start every job at the same
instant, on the same flavor, and preempt the same jobs.

The live side steps exactly at the instants the simulator handles (arrivals, completions and the
deadlines of preempted jobs), one cycle at each, and one more at the same instant when a cycle
stopped jobs there, as the simulator does. Victims get no grace period: a victim whose work
would end within its grace period completes in the simulator, but is requeued live (a process
that exits during its grace period may have checkpointed and stopped early, or finished: allot
cannot tell, and requeues it, as Slurm does with preemption by requeue). Jobs are not
checkpointable and have no time limit, the two places where the simulator models a job's work
rather than its process.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from allot.control.records import RunPhase
from allot.core.model import Cluster, JobSpec, Node, Resources
from allot.core.policy import get_policy
from allot.core.quota.config import (
    CohortSpec,
    PreemptionRules,
    QueueSpec,
    QuotaConfig,
    ResourceQuota,
    TenantSpec,
)
from allot.sim.engine import Simulation, with_estimates
from allot.sim.workload import TraceJob
from virtual import VirtualPlant

NODES = [
    Node("n00", "H100", 4, 32_000, 131_072),
    Node("n01", "H100", 4, 32_000, 131_072),
    Node("n02", "A100", 2, 16_000, 65_536),
]
GRACE = 0.0  # see the module docstring
RULES = PreemptionRules(grace_seconds=GRACE)


def _quotas() -> QuotaConfig:
    gpus = {("H100", "gpu"): ResourceQuota(4000), ("A100", "gpu"): ResourceQuota(1000)}
    return QuotaConfig(
        (TenantSpec("a"), TenantSpec("b")),
        (
            QueueSpec("qa", "a", "org", gpus, preemption=RULES),
            QueueSpec("qb", "b", "org", gpus, preemption=RULES),
        ),
        (CohortSpec("org"),),
        usage_half_life=3600.0,
    )


def _workload(seed: int, count: int = 14) -> list[TraceJob]:
    rng = random.Random(seed)
    jobs: list[TraceJob] = []
    t = 0.0
    for job_id in range(1, count + 1):
        t += rng.choice((0.0, 0.0, 10.0, 30.0, 60.0))
        tenant = rng.choice("ab")
        gpus = rng.choice((1, 1, 2, 4))
        tasks = rng.choice((1, 1, 1, 2))
        spec = JobSpec(
            job_id,
            tenant,
            "u",
            f"q{tenant}",
            (Resources.of(gpus=gpus, cpus=1, memory_mib=1024),) * tasks,
            priority=rng.choice((0, 0, 5)),
            submit_time=t,
        )
        jobs.append(TraceJob(spec, float(rng.choice((20, 45, 90, 200)))))
    return with_estimates(jobs, "exact")  # the live side runs each job as long as it estimated


def _live(root: Path, workload: list[TraceJob], policy: str) -> dict[int, tuple[float, str, int]]:
    """Each job's first start time, flavor and preemptions, from the live loop."""
    plant = VirtualPlant(root, NODES, _quotas(), policy=policy, grace=GRACE)
    plant.executor.stop_delay = GRACE
    start = plant.clock.now()
    try:
        arrivals = sorted(workload, key=lambda j: (j.spec.submit_time, j.spec.id))
        first: dict[int, tuple[float, str]] = {}
        a = 0
        while True:
            now = plant.clock.now() - start
            while a < len(arrivals) and arrivals[a].spec.submit_time <= now:
                spec = arrivals[a].spec
                record = plant.submit(
                    tenant=spec.tenant,
                    queue=spec.queue,
                    gpus=spec.tasks[0].gpu_milli / 1000,
                    tasks=len(spec.tasks),
                    runs_for=arrivals[a].duration,
                    priority=spec.priority,
                )
                assert record.id == spec.id
                a += 1
            plant.step()  # one cycle per instant, as the simulator runs ...
            while plant.executor.exits_due():  # ... and again when that cycle stopped jobs
                plant.step()
            for job_id in plant.started():
                if job_id not in first:
                    run = plant.store.runs_of(job_id)[0]
                    first[job_id] = (run.started_at - start, run.flavor)
            upcoming = _next_instant(plant, arrivals[a:], start)
            if upcoming is None:
                break
            plant.clock.advance(upcoming - now)
        preempted = {
            j.spec.id: sum(
                1
                for r in plant.store.runs_of(j.spec.id)
                if r.stop_reason and "preempted" in r.stop_reason
            )
            for j in workload
        }
        return {job: (*first[job], preempted[job]) for job in first}
    finally:
        plant.close()


def _next_instant(plant: VirtualPlant, arrivals: list[TraceJob], start: float) -> float | None:
    """The next arrival, task end or stop deadline, in seconds since ``start``."""
    times = [j.spec.submit_time for j in arrivals[:1]]
    now = plant.clock.now()
    for tasks in plant.executor.runs.values():
        times += [t.ends - start for t in tasks if t.ends is not None and t.ends > now]
    for record in plant.store.active_jobs():
        run = record.run
        stopping = run is not None and run.phase is RunPhase.STOPPING
        if stopping and run is not None and run.stop_by is not None and run.stop_by > now:
            times.append(run.stop_by - start)
    return min(times) if times else None


@pytest.mark.parametrize("policy", ["fifo", "backfill", "sjf", "fairshare", "kueue", "allot"])
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_the_simulator_and_the_live_loop_decide_alike(
    tmp_path: Path, policy: str, seed: int
) -> None:
    workload = _workload(seed)
    simulated = Simulation(Cluster(tuple(NODES)), workload, get_policy(policy), quotas=_quotas())
    sim = {r.job_id: (r.start, r.preemptions) for r in simulated.run().jobs if r.start is not None}
    live = _live(tmp_path, workload, policy)
    assert {job: (at, preempted) for job, (at, _, preempted) in live.items()} == sim
