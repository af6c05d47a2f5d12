"""The forward run behind start-time estimates: the same ``schedule()`` run from now, with
runtimes from estimates (else time limits), no arrivals, and the caller's state untouched."""

from __future__ import annotations

import pytest

from allot.core.model import RunningJob, TaskPlacement
from allot.core.policy import get_policy
from allot.observe.forecast import forecast
from builders import cluster, job, node

FIFO = get_policy("fifo")
ONE_NODE = cluster(node("n1").gpus(8))


def running(job_id: int, gpus: int, start: float, estimate: float | None) -> RunningJob:
    spec = job(job_id).gpus(gpus).estimate(estimate).build()
    placement = (TaskPlacement("n1", tuple(range(gpus)), 1000),)
    return RunningJob(spec, start, placement, "H100")


def test_a_job_waits_for_the_run_ahead_of_it_to_end() -> None:
    busy = running(1, 8, start=0, estimate=100)
    waiting = [job(2).gpus(8).estimate(50).submitted(10).build()]
    outlook = forecast(ONE_NODE, [busy], waiting, FIFO, now=20)
    assert outlook.starts == {2: 100}


def test_queued_jobs_start_one_after_another() -> None:
    busy = running(1, 8, start=0, estimate=100)
    waiting = [job(i).gpus(8).estimate(60).submitted(i).build() for i in (2, 3, 4)]
    outlook = forecast(ONE_NODE, [busy], waiting, FIFO, now=20)
    assert outlook.starts == {2: 100, 3: 160, 4: 220}


def test_a_time_limit_stands_in_for_a_missing_estimate() -> None:
    busy = RunningJob(job(1).gpus(8).limit(300).build(), 0.0,
                      (TaskPlacement("n1", tuple(range(8)), 1000),), "H100")  # fmt: skip
    outlook = forecast(ONE_NODE, [busy], [job(2).gpus(1).build()], FIFO, now=0)
    assert outlook.starts == {2: 300}


def test_behind_a_run_with_no_known_end_there_is_no_estimate() -> None:
    busy = running(1, 8, start=0, estimate=None)
    outlook = forecast(ONE_NODE, [busy], [job(2).gpus(1).build()], FIFO, now=0)
    assert outlook.starts == {2: None}
    assert outlook.open_ended == 1


def test_a_job_that_fits_now_starts_now() -> None:
    busy = running(1, 4, start=0, estimate=100)
    outlook = forecast(ONE_NODE, [busy], [job(2).gpus(4).build()], FIFO, now=5)
    assert outlook.starts == {2: 5}


def test_the_horizon_bounds_the_run() -> None:
    busy = running(1, 8, start=0, estimate=10_000)
    outlook = forecast(ONE_NODE, [busy], [job(2).gpus(8).build()], FIFO, now=0, horizon=3600)
    assert outlook.starts == {2: None}
    assert outlook.truncated


def test_backfill_starts_a_small_job_in_the_hole_before_a_reservation() -> None:
    two = cluster(node("n1").gpus(8))
    busy = running(1, 4, start=0, estimate=100)
    big = job(2).gpus(8).estimate(100).submitted(1).build()
    small = job(3).gpus(4).estimate(50).submitted(2).build()
    outlook = forecast(two, [busy], [big, small], get_policy("allot"), now=0)
    assert outlook.starts[2] == pytest.approx(100)
    assert outlook.starts[3] == 0


def test_the_callers_jobs_are_not_changed() -> None:
    busy = running(1, 8, start=0, estimate=100)
    waiting = [job(2).gpus(8).estimate(50).build()]
    forecast(ONE_NODE, [busy], waiting, FIFO, now=0)
    assert busy.stopping_until is None


def test_a_budget_stops_the_run_where_it_got_to() -> None:
    busy = running(1, 8, start=0, estimate=100)
    waiting = [job(i).gpus(8).estimate(100).submitted(i).build() for i in (2, 3, 4)]
    calls = []

    def spent() -> bool:
        calls.append(1)
        return len(calls) >= 2

    outlook = forecast(ONE_NODE, [busy], waiting, FIFO, now=0, budget=spent)
    assert outlook.starts == {2: 100, 3: None, 4: None}
    assert outlook.truncated
