"""allot on a real Slurm (``scripts/services/slurm``: two slurmd, four GPUs each): jobs run as
Slurm jobs pinned where allot placed them, succeed, fail with their exit codes, run as a
two-node gang, are cancelled and preempted with a grace period, stop at their time limit, and
stay off drained nodes and off GPUs other Slurm jobs hold."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

from slurm_plant import SlurmPlant, ended, slurm

from allot.control.ports import RunState, TaskLaunch
from allot.control.principal import Principal
from allot.control.records import Launch, RunPhase
from allot.core.model import JobState, NodeState, TaskPlacement

ADMIN = Principal.admin("tester")


def running(record: object) -> bool:
    run = getattr(record, "run", None)
    return run is not None and run.phase is RunPhase.RUNNING


def test_a_job_runs_as_one_slurm_job_pinned_to_allots_node(plant: SlurmPlant) -> None:
    job = plant.submit('echo "gpus=$CUDA_VISIBLE_DEVICES slurm=$SLURM_JOB_ID allot=$ALLOT_JOB_ID"')
    record = plant.until(job.id, ended)
    assert (record.state, record.exit_code) == (JobState.SUCCEEDED, 0)
    (run,) = plant.store.runs_of(job.id)
    (slurm_job,) = plant.slurm_jobs()
    assert slurm_job["name"] == f"allot-{run.run_id}"
    assert slurm_job["nodes"] == run.placement[0].node
    assert f"gpus=0 slurm={slurm_job['job_id']} allot={job.id}" in plant.log(job.id)


def test_a_failing_job_fails_with_its_exit_code(plant: SlurmPlant) -> None:
    job = plant.submit("echo failing; exit 3")
    record = plant.until(job.id, ended)
    assert (record.state, record.exit_code, record.reason) == (
        JobState.FAILED,
        3,
        "exited with code 3",
    )
    assert "failing" in plant.log(job.id)


def test_a_gang_spans_two_nodes_with_ranks(plant: SlurmPlant, slurm_nodes: list[str]) -> None:
    job = plant.submit(
        'echo "rank=$RANK/$WORLD_SIZE node=$SLURMD_NODENAME gpus=$CUDA_VISIBLE_DEVICES'
        ' master=$MASTER_ADDR"',
        gpus=4,
        tasks=2,
    )
    record = plant.until(job.id, ended)
    assert record.state is JobState.SUCCEEDED
    (run,) = plant.store.runs_of(job.id)
    nodes = [p.node for p in run.placement]
    assert sorted(nodes) == slurm_nodes[:2]
    for rank in (0, 1):
        line = plant.log(job.id, rank).strip()
        assert line == f"rank={rank}/2 node={nodes[rank]} gpus=0,1,2,3 master=127.0.0.1"
    (slurm_job,) = plant.slurm_jobs()
    assert slurm_job["node_count"] == 2


def test_cancel_sends_sigterm_once_and_the_job_ends_cancelled(plant: SlurmPlant) -> None:
    job = plant.submit("trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done")
    plant.until(job.id, lambda r: running(r) and "ready" in plant.log(job.id))
    plant.control.cancel(job.id, principal=ADMIN)
    plant.control.cancel(job.id, principal=ADMIN)
    record = plant.until(job.id, ended)
    assert record.state is JobState.CANCELLED
    assert plant.log(job.id).count("got TERM") == 1


def test_cancel_kills_a_job_that_ignores_sigterm_after_the_grace_period(
    plant: SlurmPlant,
) -> None:
    job = plant.submit("trap '' TERM; echo ready; while :; do sleep 0.1; done")
    plant.until(job.id, lambda r: running(r) and "ready" in plant.log(job.id))
    plant.control.cancel(job.id, principal=ADMIN)
    record = plant.until(job.id, ended)
    assert record.state is JobState.CANCELLED
    assert all(j["job_state"] not in ("RUNNING", "COMPLETING") for j in plant.slurm_jobs())


def test_a_preempted_gang_checkpoints_in_its_grace_period_and_is_requeued(
    plant: SlurmPlant, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "checkpoint"
    low = plant.submit(
        f"trap 'sleep 1; echo saved >> {checkpoint}.$RANK; exit 0' TERM; echo ready;"
        " while :; do sleep 0.1; done",
        gpus=4,
        tasks=2,
        priority=0,
    )
    plant.until(low.id, lambda r: running(r) and "ready" in plant.log(low.id, 1))
    high = plant.submit("echo high", gpus=4, priority=10)
    assert plant.until(high.id, ended).state is JobState.SUCCEEDED
    for rank in (0, 1):
        assert Path(f"{checkpoint}.{rank}").read_text() == "saved\n"
    kinds = [e.kind for e in plant.store.events(low.id)]
    assert "preempted" in kinds
    assert "requeued" in kinds
    plant.control.cancel(low.id, principal=ADMIN)
    plant.until(low.id, ended)


def test_a_job_over_its_time_limit_fails(plant: SlurmPlant) -> None:
    job = plant.submit("sleep 30", time_limit=1.0)
    record = plant.until(job.id, ended)
    assert (record.state, record.reason) == (JobState.FAILED, "time limit of 1 s exceeded")


def test_a_node_drained_in_slurm_takes_no_new_work(
    plant: SlurmPlant, slurm_nodes: list[str]
) -> None:
    drained = slurm_nodes[1]
    slurm("scontrol", "update", f"nodename={drained}", "state=drain", "reason=allot test")
    try:
        plant.loop.sync_inventory()
        states = {n.name: n.state for n in plant.store.nodes()}
        assert states[drained] is NodeState.DRAINING
        assert states[slurm_nodes[0]] is NodeState.UP
        first = plant.submit("sleep 2", gpus=4)
        second = plant.submit("true", gpus=4)
        plant.until(first.id, running)
        plant.loop.run_once()
        assert plant.store.get_job(second.id).state is JobState.PENDING
        assert plant.until(second.id, ended, timeout=30).state is JobState.SUCCEEDED
        nodes = {r.placement[0].node for j in (first, second) for r in plant.store.runs_of(j.id)}
        assert nodes == {slurm_nodes[0]}
    finally:
        slurm("scontrol", "update", f"nodename={drained}", "state=resume")


def test_gpus_held_by_a_foreign_slurm_job_are_never_planned_onto(
    plant: SlurmPlant, slurm_nodes: list[str]
) -> None:
    taken = slurm_nodes[0]
    foreign = slurm(
        "sbatch",
        "--parsable",
        "--job-name=foreign",
        f"--nodelist={taken}",
        "--gres=gpu:3",
        "--output=/dev/null",
        "--wrap=sleep 60",
    ).strip()
    try:
        deadline = time.monotonic() + 15
        while "RUNNING" not in slurm("squeue", "-h", "-j", foreign, "-o", "%T"):
            assert time.monotonic() < deadline, "the foreign job did not start"
            time.sleep(0.1)
        plant.loop.sync_inventory()
        gpus = {n.name: n.gpus for n in plant.store.nodes()}
        assert gpus[taken] == 1
        jobs = [plant.submit("sleep 1", gpus=2) for _ in range(3)]
        for job in jobs:
            assert plant.until(job.id, ended).state is JobState.SUCCEEDED
        nodes = {r.placement[0].node for j in jobs for r in plant.store.runs_of(j.id)}
        assert taken not in nodes
        waited = [j for j in plant.slurm_jobs() if j["state_reason"] not in ("None", "")]
        assert waited == []
    finally:
        subprocess.run(["scancel", foreign], check=False, timeout=30)


def test_a_launch_repeated_after_a_crash_submits_the_run_once(
    plant: SlurmPlant, slurm_nodes: list[str]
) -> None:
    run_id = uuid.uuid4().hex
    where = TaskPlacement(slurm_nodes[0], (0,), 1000)
    tasks = [TaskLaunch(run_id, 1, 0, 1, where, Launch(("sleep", "0.5")), None)]
    plant.executor.launch(tasks)
    # The server died after sbatch, before it recorded the job id: the tag finds the job.
    (plant.root / "slurm" / run_id / "job").unlink()
    plant.executor.launch(tasks)
    plant.executor.launch(tasks)
    assert len(plant.slurm_jobs()) == 1
    deadline = time.monotonic() + 30
    while (status := plant.executor.status(run_id, 1)).state is not RunState.EXITED:
        assert time.monotonic() < deadline, f"the run did not end: {status}"
        time.sleep(0.1)
    assert status.exit_codes == (0,)
