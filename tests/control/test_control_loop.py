"""The live loop on the real store (SQLite) and the real local executor: jobs run as processes,
complete, fail, are cancelled, preempted and recovered after a crash of the server."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from allot.control.clock import SystemClock
from allot.control.principal import Principal
from allot.control.reconcile import task_launches
from allot.control.records import JobFilter, JobRecord, Launch, NewJob, RunPhase, RunRecord
from allot.control.services import RejectedError
from allot.control.system import SystemConfig, build
from allot.core.model import JobState, Resources, TaskPlacement
from allot.core.quota.config import PreemptionRules, QueueSpec, QuotaConfig, TenantSpec
from allot.executors.local import LocalExecutor
from allot.store import SqlStore, default_database_url

QUOTAS = QuotaConfig((TenantSpec("default"),), (QueueSpec("default", "default"),))


class Plant:
    """A store, an executor with declared GPUs, a loop and the use cases, in ``root``."""

    def __init__(
        self, root: Path, gpus: int = 2, grace: float = 1.0, policy: str = "allot"
    ) -> None:
        self.root = root
        self.store = SqlStore(default_database_url(root))
        self.store.migrate()
        self.executor = LocalExecutor(root, gpus=gpus, grace_seconds=grace)
        self.clock = SystemClock()
        if not self.store.quotas().queues:
            self.store.save_quotas(QUOTAS, at=self.clock.now())
        system = build(
            SystemConfig(policy, grace_seconds=grace),
            store=self.store,
            executors=self.executor,
            clock=self.clock,
        )
        self.loop, self.control = system.loop, system.control

    def submit(
        self, command: str, *, gpus: float = 1, tasks: int = 1, **changes: object
    ) -> JobRecord:
        job = NewJob(
            name="t",
            tenant="default",
            user="tester",
            queue="default",
            tasks=(Resources.of(gpus=gpus, cpus=0.1, memory_mib=64),) * tasks,
            launch=Launch(("/bin/sh", "-c", command)),
        )
        record, created = self.control.submit(
            replace(job, **changes), principal=Principal.admin("tester")
        )  # type: ignore[arg-type]
        assert created
        return record

    def until(
        self, job_id: int, done: Callable[[JobRecord], bool], timeout: float = 20.0
    ) -> JobRecord:
        """Run cycles until ``done`` holds for the job."""
        deadline = time.monotonic() + timeout
        while True:
            self.loop.run_once()
            record = self.store.get_job(job_id)
            if done(record):
                return record
            assert time.monotonic() < deadline, (
                f"job {job_id} stuck in {record.state}: {record.reason}"
            )
            time.sleep(0.05)

    def log(self, job_id: int, task: int = 0) -> str:
        return self.control.logs(
            job_id, principal=Principal.admin("tester"), task=task
        ).data.decode()


@pytest.fixture
def plant(tmp_path: Path) -> Iterator[Plant]:
    p = Plant(tmp_path)
    yield p
    for record in p.store.active_jobs():
        if record.run is not None:
            p.executor.signal(record.run.run_id, kill=True)
    p.store.close()


def ended(record: JobRecord) -> bool:
    return record.state.is_terminal


def test_a_job_runs_with_its_devices_and_succeeds(plant: Plant) -> None:
    job = plant.submit('echo "gpu=$CUDA_VISIBLE_DEVICES job=$ALLOT_JOB_ID"')
    record = plant.until(job.id, ended)
    assert record.state is JobState.SUCCEEDED
    assert record.exit_code == 0
    assert f"job={job.id}" in plant.log(job.id)
    assert "gpu=0" in plant.log(job.id) or "gpu=1" in plant.log(job.id)
    kinds = [e.kind for e in plant.store.events(job.id)]
    assert kinds[:3] == ["submitted", "starting", "running"]
    assert kinds[-1] == "succeeded"


def test_a_failing_job_says_how(plant: Plant) -> None:
    job = plant.submit("exit 3")
    record = plant.until(job.id, ended)
    assert record.state is JobState.FAILED
    assert record.reason == "exited with code 3"


def test_a_gang_gets_ranks_and_ends_together(plant: Plant) -> None:
    job = plant.submit('echo "rank=$RANK of $WORLD_SIZE"', tasks=2)
    record = plant.until(job.id, ended)
    assert record.state is JobState.SUCCEEDED
    assert "rank=0 of 2" in plant.log(job.id, 0)
    assert "rank=1 of 2" in plant.log(job.id, 1)


def test_cancel_stops_a_running_job_and_kills_one_that_ignores_sigterm(plant: Plant) -> None:
    job = plant.submit("trap '' TERM; sleep 60")
    plant.until(job.id, lambda r: r.run is not None and r.run.phase is RunPhase.RUNNING)
    time.sleep(0.3)  # let the shell install its trap
    plant.control.cancel(job.id, principal=Principal.admin("tester"))
    record = plant.until(job.id, ended)
    assert record.state is JobState.CANCELLED
    assert record.reason == "cancelled by tester"


def test_cancel_a_pending_job_and_hold_release(plant: Plant) -> None:
    blocker = plant.submit("sleep 60", gpus=2)
    plant.until(blocker.id, lambda r: r.state is JobState.RUNNING)
    waiting = plant.submit("true")
    plant.loop.run_once()
    assert (
        plant.control.explain(waiting.id, principal=Principal.admin("tester")).reason
        == "no_capacity"
    )
    plant.control.hold(waiting.id, principal=Principal.admin("tester"))
    assert plant.control.explain(waiting.id, principal=Principal.admin("tester")).reason == "held"
    plant.control.release(waiting.id, principal=Principal.admin("tester"))
    assert (
        plant.control.cancel(waiting.id, principal=Principal.admin("tester")).state
        is JobState.CANCELLED
    )
    plant.control.cancel(blocker.id, principal=Principal.admin("tester"))
    plant.until(blocker.id, ended)


def test_time_limit(plant: Plant) -> None:
    job = plant.submit("sleep 30", time_limit=1.0)
    record = plant.until(job.id, ended)
    assert record.state is JobState.FAILED
    assert "time limit" in record.reason


def test_a_task_killed_from_outside_fails_the_job(plant: Plant) -> None:
    job = plant.submit("sleep 60")
    record = plant.until(job.id, lambda r: r.run is not None and r.run.phase is RunPhase.RUNNING)
    assert record.run is not None
    for pid in _pids(plant.root, record.run.run_id):
        os.killpg(pid, signal.SIGKILL)  # the runner and the task, as an outsider would
    record = plant.until(job.id, ended)
    assert record.state is JobState.FAILED
    assert record.reason


def test_a_task_whose_runner_was_killed_is_shown_as_running_without_it(plant: Plant) -> None:
    job = plant.submit("sleep 60")
    record = plant.until(job.id, lambda r: r.run is not None and r.run.phase is RunPhase.RUNNING)
    assert record.run is not None
    runner_pid, _ = _pids(plant.root, record.run.run_id)
    os.kill(runner_pid, signal.SIGKILL)  # the supervisor only; the task lives on
    note = f"runs without its runner (pid {runner_pid} is gone)"
    record = plant.until(
        job.id,
        lambda r: note in plant.control.get(job.id, principal=Principal.admin("tester")).reason,
    )
    assert record.state is JobState.RUNNING  # it still holds its GPU
    explained = plant.control.explain(job.id, principal=Principal.admin("tester"))
    assert (explained.reason, note in explained.message) == ("running", True)
    plant.control.cancel(job.id, principal=Principal.admin("tester"))
    plant.control.cancel(
        job.id, principal=Principal.admin("tester")
    )  # already stopping: changes nothing
    assert [e.kind for e in plant.store.events(job.id)].count("stopping") == 1
    record = plant.until(job.id, ended)
    assert (record.state, record.exit_code) == (JobState.CANCELLED, None)


def test_higher_priority_preempts_and_the_victim_is_requeued(plant: Plant) -> None:
    low = plant.submit("sleep 60", gpus=2, priority=0)
    plant.until(low.id, lambda r: r.state is JobState.RUNNING)
    high = plant.submit("echo high", gpus=2, priority=10)
    record = plant.until(high.id, ended)
    assert record.state is JobState.SUCCEEDED
    victim = plant.store.get_job(low.id)
    kinds = [e.kind for e in plant.store.events(low.id)]
    assert "preempted" in kinds
    assert "requeued" in kinds
    assert victim.run_count >= 1
    plant.control.cancel(low.id, principal=Principal.admin("tester"))
    plant.until(low.id, ended)


def test_a_job_cancelled_while_being_preempted_ends_cancelled_not_requeued(
    plant: Plant,
) -> None:
    # The victim ignores SIGTERM, so it stays stopping until its 2 s grace period is over.
    short_grace = QueueSpec("default", "default", preemption=PreemptionRules(grace_seconds=2))
    plant.store.save_quotas(QuotaConfig((TenantSpec("default"),), (short_grace,)), at=0)
    low = plant.submit("trap '' TERM; echo ready; sleep 60", gpus=2, priority=0)
    plant.until(low.id, lambda r: r.state is JobState.RUNNING and "ready" in plant.log(low.id))
    high = plant.submit("echo high", gpus=2, priority=10)
    stopping = plant.until(low.id, lambda r: r.run is not None and r.run.phase is RunPhase.STOPPING)
    assert stopping.run is not None
    assert (stopping.run.stop_reason or "").startswith("preempted")
    plant.control.cancel(low.id, principal=Principal.admin("tester"))
    record = plant.until(low.id, ended)
    assert record.state is JobState.CANCELLED
    assert record.reason == "cancelled by tester"
    assert record.run_count == 1
    assert plant.until(high.id, ended).state is JobState.SUCCEEDED


def test_impossible_requests_are_rejected_and_nothing_is_stored(plant: Plant) -> None:
    before = len(plant.store.list_jobs(JobFilter()))
    with pytest.raises(RejectedError, match="needs 8 GPUs per task") as refused:
        plant.submit("true", gpus=8)
    assert refused.value.field == "resources.gpus"
    with pytest.raises(RejectedError, match="unknown queue 'nope'"):
        plant.submit("true", queue="nope")
    with pytest.raises(RejectedError, match="unknown flavor 'H100'"):
        plant.submit("true", flavors=("H100",))
    after = len(plant.store.list_jobs(JobFilter()))
    assert after == before


def test_a_recorded_start_that_never_launched_runs_once_after_a_restart(tmp_path: Path) -> None:
    first = Plant(tmp_path)
    marker = tmp_path / "ran"
    job = first.submit(f"echo once >> {marker}")
    # The server recorded the intent to start, then died before launching.
    run = RunRecord(
        "deadbeef" * 4, job.id, RunPhase.STARTING, "gpu", (_placement(first),), time.time()
    )
    assert first.store.begin_run(run, actor="scheduler")
    first.store.close()
    second = Plant(tmp_path)  # the restarted server: reconcile launches it
    record = second.until(job.id, ended)
    assert record.state is JobState.SUCCEEDED
    # Reconcile again and again: the run is never started a second time.
    for _ in range(3):
        second.executor.launch(task_launches(second.store.get_job(job.id), run))
        second.loop.run_once()
    time.sleep(0.5)
    assert marker.read_text().splitlines() == ["once"]
    second.store.close()


def test_a_restarted_server_adopts_running_jobs(tmp_path: Path) -> None:
    first = Plant(tmp_path)
    marker = tmp_path / "go"
    job = first.submit(f"while [ ! -e {marker} ]; do sleep 0.05; done; echo done")
    first.until(job.id, lambda r: r.run is not None and r.run.phase is RunPhase.RUNNING)
    first.store.close()
    second = Plant(tmp_path)
    second.loop.run_once()
    assert second.store.get_job(job.id).state is JobState.RUNNING
    marker.touch()
    record = second.until(job.id, ended)
    assert record.state is JobState.SUCCEEDED
    assert record.run_count == 1
    second.store.close()


def _placement(plant: Plant) -> TaskPlacement:
    node = plant.store.nodes()[0]
    return TaskPlacement(node.name, (0,), 1000)


def _pids(root: Path, run_id: str) -> list[int]:
    """The runner's and the task's pids, once the runner has written both."""
    path = root / "runs" / run_id / "task-0" / "pid.json"
    deadline = time.monotonic() + 10
    while True:
        if path.exists():
            data = json.loads(path.read_text())
            if data.get("task_pid"):
                return [int(data["pid"]), int(data["task_pid"])]
        assert time.monotonic() < deadline, "the runner never reported its task"
        time.sleep(0.02)
