"""Start-time estimates of the live queue: the estimator reads the store, runs it forward
through the loop's own policy, and the API and the use cases show the result for pending jobs
only."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from allot.api.app import create_app
from allot.control.loop import SchedulingLoop
from allot.control.ports import RunState, RunStatus
from allot.control.principal import Principal
from allot.control.records import Launch, NewJob
from allot.core.model import Node, Resources
from allot.core.policy import get_policy
from allot.observe.eta import StartTimeEstimator
from harness import FakeExecutor, Harness, InProcessTransport, make_harness

TOKEN = "tok-root-0123456789"


class Busy(FakeExecutor):
    """Every launched run keeps running."""

    def status(self, run_id: str, num_tasks: int) -> RunStatus:
        return RunStatus(run_id, RunState.RUNNING, (None,) * num_tasks)


def job(gpus: int, estimate: float | None, *, hold: bool = False) -> NewJob:
    return NewJob(
        name="t", tenant="default", user="alice", queue="default",
        tasks=(Resources.of(gpus=gpus, cpus=1, memory_mib=64),),
        launch=Launch(("/bin/true",)), runtime_estimate=estimate, held=hold,
    )  # fmt: skip


@pytest.fixture
def world() -> Iterator[tuple[Harness, SchedulingLoop, StartTimeEstimator]]:
    harness = make_harness(nodes=[Node("gpu-1", "H100-80G", 4, 64_000, 512 * 1024)],
                           tokens={TOKEN: "root"})  # fmt: skip
    busy = Busy(harness.executor.nodes)
    loop = SchedulingLoop(harness.store, busy, harness.clock, get_policy("allot"))
    estimator = StartTimeEstimator(loop)
    loop.subscribe(estimator)
    harness.control.estimates = estimator
    yield harness, loop, estimator
    loop.close()


def submit(harness: Harness, new: NewJob) -> int:
    record, _ = harness.control.submit(new, principal=Principal.admin("alice"))
    return record.id


def test_a_queued_job_is_expected_when_the_run_ahead_of_it_ends(
    world: tuple[Harness, SchedulingLoop, StartTimeEstimator],
) -> None:
    harness, loop, estimator = world
    first = submit(harness, job(4, 600))
    loop.run_once()
    harness.clock.advance(100)
    second = submit(harness, job(4, 300))
    third = submit(harness, job(4, 300))
    loop.run_once()
    estimator.refresh()
    now = harness.clock.now()
    assert estimator.estimate(first) is None  # running
    two, three = estimator.estimate(second), estimator.estimate(third)
    assert two is not None
    assert three is not None
    assert two.start == pytest.approx(now + 500)
    assert three.start == pytest.approx(now + 800)
    assert two.computed_at == now
    assert "run forward through the scheduler (policy allot)" in two.basis


def test_held_jobs_and_runs_without_an_end_give_no_start(
    world: tuple[Harness, SchedulingLoop, StartTimeEstimator],
) -> None:
    harness, loop, estimator = world
    submit(harness, job(4, None))  # no estimate, no limit: its end is unknown
    loop.run_once()
    held = submit(harness, job(1, 60, hold=True))
    waiting = submit(harness, job(1, 60))
    loop.run_once()
    estimator.refresh()
    assert estimator.estimate(held) is None
    found = estimator.estimate(waiting)
    assert found is not None
    assert found.start is None
    assert "neither a runtime estimate nor a time limit" in found.basis


def test_a_cycle_asks_for_a_refresh_when_a_new_job_has_no_estimate(
    world: tuple[Harness, SchedulingLoop, StartTimeEstimator],
) -> None:
    harness, loop, estimator = world
    loop.run_once()
    estimator.refresh()
    assert not estimator._due.is_set()
    submit(harness, job(4, 60))
    submit(harness, job(4, 60))
    harness.clock.advance(2)
    loop.run_once()
    assert estimator._due.is_set()


def test_the_api_shows_the_estimate_of_pending_jobs_only(
    world: tuple[Harness, SchedulingLoop, StartTimeEstimator],
) -> None:
    harness, loop, estimator = world
    running = submit(harness, job(4, 600))
    loop.run_once()
    pending = submit(harness, job(4, 60))
    loop.run_once()
    estimator.refresh()
    app = create_app(harness.control)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(transport=InProcessTransport(app), base_url="http://t",
                      headers=headers) as api:  # fmt: skip
        shown = api.get(f"/v1/jobs/{pending}").json()["estimated_start"]
        assert shown["start"] is not None
        assert shown["basis"]
        assert api.get(f"/v1/jobs/{running}").json()["estimated_start"] is None
        why = api.get(f"/v1/jobs/{pending}/explain").json()
        assert why["estimated_start"] == shown
        listed = {j["id"]: j["estimated_start"] for j in api.get("/v1/jobs").json()["items"]}
        assert listed[pending] == shown
        assert listed[running] is None
