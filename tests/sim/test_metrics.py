"""compute_metrics on small runs whose figures are worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from allot.sim.metrics import Metrics, compute_metrics, jain_index
from allot.sim.result import JobRecord, NeverFit, SimResult, Timeline


def job(
    job_id: int,
    tenant: str = "a",
    *,
    submit: float = 0.0,
    runtime: float = 100.0,
    start: float | None = None,
    finish: float | None = None,
    gpu_milli: int = 1000,
    preemptions: int = 0,
    failure_restarts: int = 0,
    lost_gpu_seconds: float = 0.0,
    timed_out: bool = False,
) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        tenant=tenant,
        queue=f"{tenant}-queue",
        submit=submit,
        runtime=runtime,
        gpu_milli=gpu_milli,
        num_tasks=1,
        start=start,
        finish=finish,
        preemptions=preemptions,
        failure_restarts=failure_restarts,
        lost_gpu_seconds=lost_gpu_seconds,
        timed_out=timed_out,
    )


def run(*jobs: JobRecord, cluster_gpus: int = 8, end_time: float = 0.0) -> SimResult:
    return SimResult(policy="fifo", cluster_gpus=cluster_gpus, jobs=list(jobs), end_time=end_time)


@pytest.fixture
def mixed() -> Metrics:
    """Three completed jobs, one still running at the end, one never started."""
    return compute_metrics(
        run(
            job(1, "a", submit=0, runtime=100, start=0, finish=100, gpu_milli=2000),
            job(2, "a", submit=0, runtime=5, start=15, finish=20),
            job(3, "b", submit=10, runtime=200, start=110, finish=310, preemptions=2),
            job(
                4, "b", submit=20, runtime=50, start=300, lost_gpu_seconds=7200, failure_restarts=1
            ),
            job(5, "c", submit=30),
            end_time=400,
        )
    )


def test_counts(mixed: Metrics) -> None:
    assert (mixed.jobs, mixed.completed, mixed.unfinished) == (5, 3, 2)
    assert (mixed.preemptions, mixed.failure_restarts, mixed.timed_out) == (2, 1, 0)
    assert mixed.lost_gpu_hours == pytest.approx(2.0)


def test_timed_out_jobs_count_as_completed_and_are_counted_apart() -> None:
    # Job 1 was ended by its limit at 60 (the trace says 100 s); job 2 ran its full 50 s.
    metrics = compute_metrics(
        run(
            job(1, submit=0, runtime=100, start=0, finish=60, timed_out=True),
            job(2, submit=0, runtime=50, start=60, finish=110),
        )
    )
    assert (metrics.completed, metrics.timed_out, metrics.unfinished) == (2, 1, 0)
    assert metrics.jct_s.mean == pytest.approx((60 + 110) / 2)
    assert metrics.to_dict()["timed_out"] == 1


def test_failure_restarts_are_not_preemptions() -> None:
    metrics = compute_metrics(
        run(job(1, start=0, finish=300, failure_restarts=2, lost_gpu_seconds=3600))
    )
    assert (metrics.preemptions, metrics.failure_restarts) == (0, 2)
    assert metrics.lost_gpu_hours == pytest.approx(1.0)
    figures = metrics.to_dict()
    assert (figures["preemptions"], figures["failure_restarts"]) == (0, 2)
    assert list(figures).index("failure_restarts") == list(figures).index("preemptions") + 1


def test_never_fit_counts_the_set_aside_jobs() -> None:
    result = run(job(1, start=0, finish=100))
    result.never_fit = [NeverFit(7, "a", "asks for 16 GPUs"), NeverFit(8, "b", "no flavor")]
    assert compute_metrics(result).never_fit == 2


def test_jct_is_finish_minus_submit_with_linear_percentiles(mixed: Metrics) -> None:
    # JCTs 100, 20, 300; sorted 20, 100, 300. p95 sits at rank 0.95 * 2 = 1.9.
    assert mixed.jct_s.mean == pytest.approx(140.0)
    assert mixed.jct_s.median == pytest.approx(100.0)
    assert mixed.jct_s.p95 == pytest.approx(100.0 + 0.9 * 200.0)
    assert mixed.jct_s.p99 == pytest.approx(100.0 + 0.98 * 200.0)
    assert mixed.makespan_s == pytest.approx(310.0)


def test_queueing_delay_counts_every_started_job(mixed: Metrics) -> None:
    # Waits 0, 15, 100, 280 (job 4 started but did not finish; job 5 never started).
    assert mixed.queueing_delay_s.mean == pytest.approx(98.75)
    assert mixed.queueing_delay_s.median == pytest.approx(57.5)
    assert mixed.queueing_delay_s.p95 == pytest.approx(100.0 + 0.85 * 180.0)
    assert mixed.queueing_delay_s.p99 == pytest.approx(100.0 + 0.97 * 180.0)


def test_bounded_slowdown(mixed: Metrics) -> None:
    # Job 1: 100/100 = 1. Job 2: runtime 5 s counts as tau = 10 s, so 20/10 = 2. Job 3: 300/200.
    assert mixed.bounded_slowdown.mean == pytest.approx(1.5)
    assert mixed.bounded_slowdown.median == pytest.approx(1.5)
    assert mixed.bounded_slowdown.p95 == pytest.approx(1.5 + 0.9 * 0.5)


@pytest.mark.parametrize(
    ("runtime", "finish", "expected"),
    [
        (2.0, 4.0, 1.0),  # 4 / max(2, 10) < 1, bounded below by 1
        (2.0, 30.0, 3.0),  # 30 / 10
        (0.0, 25.0, 2.5),  # zero run time must not divide by zero
        (50.0, 100.0, 2.0),  # above tau the plain slowdown
    ],
)
def test_bounded_slowdown_uses_tau_of_ten_seconds(
    runtime: float, finish: float, expected: float
) -> None:
    metrics = compute_metrics(run(job(1, runtime=runtime, start=finish - runtime, finish=finish)))
    assert metrics.bounded_slowdown.mean == pytest.approx(expected)


def test_allocation_is_time_weighted_and_the_last_sample_holds_to_end_time() -> None:
    timeline = Timeline()
    for time, milli, queue in [(0.0, 0, 1), (10.0, 4000, 3), (30.0, 2000, 0)]:
        timeline.record(time, milli, queue)
    result = SimResult(policy="fifo", cluster_gpus=8, timeline=timeline, end_time=50.0)
    metrics = compute_metrics(result)
    # Held for 10, 20 and 20 s: (0*10 + 4*20 + 2*20) / 50.
    assert metrics.mean_allocated_gpus == pytest.approx(2.4)
    assert metrics.gpu_allocation_fraction == pytest.approx(0.3)
    assert metrics.peak_allocated_gpus == pytest.approx(4.0)
    assert metrics.mean_queue_length == pytest.approx((1 * 10 + 3 * 20 + 0 * 20) / 50)
    assert metrics.peak_queue_length == 3


def test_fractional_gpus_count_in_milli() -> None:
    timeline = Timeline(times=[0.0], allocated_gpu_milli=[1500], queue_length=[0])
    result = SimResult(policy="fifo", cluster_gpus=3, timeline=timeline, end_time=60.0)
    assert compute_metrics(result).gpu_allocation_fraction == pytest.approx(0.5)


def test_a_timeline_without_length_has_no_means() -> None:
    timeline = Timeline(times=[5.0], allocated_gpu_milli=[1000], queue_length=[2])
    metrics = compute_metrics(SimResult("fifo", 8, timeline=timeline, end_time=5.0))
    assert metrics.mean_allocated_gpus is None
    assert metrics.gpu_allocation_fraction is None
    assert metrics.mean_queue_length is None
    assert (metrics.peak_allocated_gpus, metrics.peak_queue_length) == (1.0, 2)


def test_jain_index_is_one_when_tenants_are_served_alike() -> None:
    metrics = compute_metrics(
        run(
            # Each tenant's jobs run, on average, two thirds of their time in the system.
            job(1, "a", runtime=100, start=50, finish=150),
            job(2, "b", runtime=200, start=100, finish=300),
            job(3, "c", runtime=20, start=10, finish=30),
            job(4, "c", runtime=60, start=30, finish=90),
        )
    )
    assert metrics.jain_index == pytest.approx(1.0)


def test_jain_index_is_one_over_n_when_one_tenant_gets_everything() -> None:
    metrics = compute_metrics(
        run(
            job(1, "a", start=0, finish=100),
            job(2, "b"),
            job(3, "c"),
            job(4, "d", start=100),  # running at the end, so not yet served
        )
    )
    assert metrics.jain_index == pytest.approx(1 / 4)
    assert jain_index(np.array([3.0, 0.0, 0.0])) == pytest.approx(1 / 3)


def test_jain_index_of_the_mixed_run(mixed: Metrics) -> None:
    x = np.array([(1 / 1 + 1 / 2) / 2, 1 / 1.5, 0.0])  # tenant c never ran
    assert mixed.jain_index == pytest.approx(x.sum() ** 2 / (3 * np.square(x).sum()))


def test_per_tenant_figures(mixed: Metrics) -> None:
    assert sorted(mixed.per_tenant) == ["a", "b", "c"]
    a, b, c = (mixed.per_tenant[name] for name in "abc")
    assert (a.jobs, a.completed, b.jobs, b.completed, c.jobs, c.completed) == (2, 2, 2, 1, 1, 0)
    assert a.mean_jct_s == pytest.approx(60.0)
    assert a.mean_bounded_slowdown == pytest.approx(1.5)
    assert a.gpu_hours == pytest.approx((2 * 100 + 1 * 5) / 3600)
    assert b.gpu_hours == pytest.approx(200 / 3600)  # the unfinished job adds nothing
    assert c.mean_jct_s is None
    assert c.mean_bounded_slowdown is None
    assert c.gpu_hours == 0.0


def test_an_empty_run_has_no_figures_and_serializes() -> None:
    metrics = compute_metrics(SimResult(policy="fifo", cluster_gpus=8))
    assert (metrics.jobs, metrics.completed, metrics.unfinished, metrics.never_fit) == (0, 0, 0, 0)
    assert metrics.jct_s.mean is None
    assert metrics.queueing_delay_s.p99 is None
    assert metrics.bounded_slowdown.median is None
    assert metrics.makespan_s is None
    assert metrics.jain_index is None
    assert metrics.mean_allocated_gpus is None
    assert metrics.peak_queue_length is None
    assert metrics.per_tenant == {}
    json.dumps(metrics.to_dict(), allow_nan=False)


def test_jobs_that_never_finish_leave_completion_figures_empty() -> None:
    metrics = compute_metrics(run(job(1, start=5.0), job(2)))
    assert metrics.completed == 0
    assert metrics.unfinished == 2
    assert metrics.jct_s.mean is None
    assert metrics.makespan_s is None
    assert metrics.jain_index is None
    assert metrics.queueing_delay_s.mean == pytest.approx(5.0)


def test_to_dict_puts_headline_figures_first_and_rounds(mixed: Metrics) -> None:
    figures = mixed.to_dict()
    assert list(figures)[:10] == [
        "jobs",
        "completed",
        "timed_out",
        "unfinished",
        "never_fit",
        "jct_s",
        "bounded_slowdown",
        "gpu_allocation_fraction",
        "jain_index",
        "makespan_s",
    ]
    assert figures["jct_s"] == {"mean": 140.0, "median": 100.0, "p95": 280.0, "p99": 296.0}
    assert figures["jain_index"] == round(float(mixed.jain_index or 0), 4)
    assert list(figures["per_tenant"]) == ["a", "b", "c"]
    assert figures["per_tenant"]["a"]["gpu_hours"] == 0.057


records = st.builds(
    lambda tenant, submit, wait, runtime, finished: job(
        0,
        tenant,
        submit=submit,
        runtime=runtime,
        start=submit + wait,
        finish=submit + wait + runtime if finished else None,
    ),
    st.sampled_from("abcd"),
    st.floats(0, 1e6),
    st.floats(0, 1e5),
    st.floats(0, 1e5),
    st.booleans(),
)


@given(st.lists(records, max_size=40))
def test_figures_stay_in_their_ranges(jobs: list[JobRecord]) -> None:
    metrics = compute_metrics(run(*jobs))
    for distribution in (metrics.jct_s, metrics.queueing_delay_s, metrics.bounded_slowdown):
        if distribution.median is not None:
            assert distribution.p95 is not None
            assert distribution.p99 is not None
            slack = 1e-9 * max(1.0, abs(distribution.p99))
            assert distribution.median <= distribution.p95 + slack
            assert distribution.p95 <= distribution.p99 + slack
    if metrics.bounded_slowdown.mean is not None:
        assert metrics.bounded_slowdown.mean >= 1.0
    if metrics.jain_index is not None:
        tenants = len(metrics.per_tenant)
        assert 1 / tenants - 1e-9 <= metrics.jain_index <= 1.0 + 1e-9
    json.dumps(metrics.to_dict(), allow_nan=False)
