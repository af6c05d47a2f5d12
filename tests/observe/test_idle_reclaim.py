"""Idle-GPU reclaim with the real scheduling loop and a fake NVML: a run whose GPUs stay idle
is warned in its events at 80% of its queue's idle_timeout, then stopped with the reason;
a busy sample starts the count again; queues without a timeout are never touched."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from allot.control.loop import SchedulingLoop
from allot.control.ports import RunState, RunStatus
from allot.control.principal import Principal
from allot.control.records import EventRecord, Launch, NewJob, RunPhase, StopCause
from allot.core.model import Resources
from allot.core.policy import get_policy
from allot.core.quota.config import QueueSpec, QuotaConfig, TenantSpec
from allot.observe.idle import IdleReclaim
from allot.observe.telemetry import GpuTelemetry
from fake_nvml import FakeNvml
from harness import FakeExecutor, Harness, make_harness

QUOTAS = QuotaConfig(
    (TenantSpec("lab"),),
    (QueueSpec("notebooks", "lab", idle_timeout=600), QueueSpec("batch", "lab")),
)


class Busy(FakeExecutor):
    def status(self, run_id: str, num_tasks: int) -> RunStatus:
        return RunStatus(run_id, RunState.RUNNING, (None,) * num_tasks)


@dataclass
class World:
    harness: Harness
    loop: SchedulingLoop
    nvml: FakeNvml
    telemetry: GpuTelemetry

    def run(self, queue: str) -> int:
        new = NewJob(
            name="nb", tenant="lab", user="alice", queue=queue,
            tasks=(Resources.of(gpus=1, cpus=1, memory_mib=64),), flavors=("H100-80G",),
            launch=Launch(("sleep", "infinity")),
        )  # fmt: skip
        record, _ = self.harness.control.submit(new, principal=Principal.admin("alice"))
        self.loop.run_once()
        return record.id

    def minutes(self, count: int, util: int = 0) -> None:
        for _ in range(count):
            self.nvml.util = dict.fromkeys(range(8), util)
            self.telemetry.sample()
            self.harness.clock.advance(60)


@pytest.fixture
def world() -> Iterator[World]:
    harness = make_harness(quotas=QUOTAS)
    loop = SchedulingLoop(harness.store, Busy(harness.executor.nodes), harness.clock,
                          get_policy("allot"))  # fmt: skip
    nvml = FakeNvml(count=8)
    telemetry = GpuTelemetry.open(harness.store, harness.clock, "gpu-1", nvml,
                                  idle=IdleReclaim(harness.store, loop))  # fmt: skip
    yield World(harness, loop, nvml, telemetry)
    loop.close()


def test_an_idle_run_is_warned_then_released(world: World) -> None:
    job_id = world.run("notebooks")
    world.minutes(8)  # samples at 0..7 min: idle for 7 min
    assert not _events(world, job_id, "idle_warning")
    world.minutes(1)  # idle for 8 min: 80% of 10
    [warning] = _events(world, job_id, "idle_warning")
    assert "idle for 8 min" in warning.reason
    assert "idle_timeout 10 min" in warning.reason
    world.minutes(2)  # 10 min idle: released
    run = world.harness.store.get_job(job_id).run
    assert run is not None
    assert run.phase is RunPhase.STOPPING
    assert run.stop_cause is StopCause.CANCELLED
    assert run.stop_reason is not None
    assert run.stop_reason.startswith("released: its GPUs were idle for 10 min")
    assert len(_events(world, job_id, "idle_warning")) == 1


def test_a_busy_sample_starts_the_count_again(world: World) -> None:
    job_id = world.run("notebooks")
    world.minutes(9)
    world.minutes(1, util=35)
    world.minutes(9)
    run = world.harness.store.get_job(job_id).run
    assert run is not None
    assert run.phase is RunPhase.RUNNING


def test_a_queue_without_idle_timeout_keeps_its_runs(world: World) -> None:
    job_id = world.run("batch")
    world.minutes(60)
    run = world.harness.store.get_job(job_id).run
    assert run is not None
    assert run.phase is RunPhase.RUNNING
    assert not _events(world, job_id, "idle_warning")


def _events(world: World, job_id: int, kind: str) -> list[EventRecord]:
    found = world.harness.store.events(job_id=job_id)
    return [e for e in found if e.kind == kind]
