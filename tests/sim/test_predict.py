"""Runtime predictions learned online, and checkpoint-aware preemption in the simulator."""

from __future__ import annotations

from dataclasses import replace

import pytest

from allot.core.model import Cluster, JobSpec, Node, Resources, gang
from allot.core.policy import get_policy
from allot.sim.engine import Checkpointing, Simulation, SimulationError, with_estimates
from allot.sim.metrics import compute_metrics
from allot.sim.predict import MIN_SAMPLES, PredictionError, RuntimePredictor
from allot.sim.workload import TraceJob, with_checkpointing

GIB = 1024


def spec(job_id: int, submit: float, gpus: int = 1, tenant: str = "vision") -> JobSpec:
    per_task = Resources.of(gpus=gpus, cpus=1, memory_mib=4 * GIB)
    return JobSpec(job_id, tenant, "u", tenant, gang(1, per_task), submit_time=submit)


def one_node() -> Cluster:
    return Cluster((Node("n0", "A100", 8, 64_000, 512 * GIB),), name="one")


def test_a_predictor_knows_nothing_before_enough_jobs_completed() -> None:
    predictor = RuntimePredictor()
    for k in range(MIN_SAMPLES - 1):
        predictor.learn(spec(k, 0), 100.0)
    assert predictor.predict(spec(99, 0)) is None
    predictor.learn(spec(50, 0), 100.0)
    assert predictor.predict(spec(99, 0)) == 100.0


def test_the_most_specific_key_with_enough_runs_predicts() -> None:
    predictor = RuntimePredictor()
    for k in range(5):
        predictor.learn(spec(k, 0, gpus=1), 60.0)
        predictor.learn(spec(10 + k, 0, gpus=8), 6_000.0)
    assert predictor.predict(spec(99, 0, gpus=8)) == 6_000.0
    assert predictor.predict(spec(99, 0, gpus=1)) == 60.0
    # Another tenant with no history: by GPU count across tenants.
    assert predictor.predict(spec(99, 0, gpus=8, tenant="nlp")) == 6_000.0


def test_a_job_is_predicted_from_earlier_completions_only() -> None:
    # Three 100 s jobs complete before the fourth arrives; the fourth (1,000 s) is predicted
    # at 100 s and its own run time never reaches its prediction.
    workload = [TraceJob(spec(k + 1, 200.0 * k), 100.0) for k in range(3)]
    workload.append(TraceJob(spec(4, 1_000.0), 1_000.0))
    result = Simulation(
        one_node(),
        with_estimates(workload, "predicted"),
        get_policy("backfill"),
        predictor=RuntimePredictor(),
    ).run()
    predicted = {r.job_id: r.predicted for r in result.jobs}
    assert predicted == {1: None, 2: None, 3: None, 4: 100.0}
    metrics = compute_metrics(result)
    assert metrics.prediction == PredictionError(1, 0.9, 0.0)


def test_prediction_error_without_predictions_is_none() -> None:
    assert PredictionError.of([]) == PredictionError(0, None, None)


def _preempted(checkpointable: bool, checkpointing: Checkpointing) -> tuple[float, float]:
    """A 8-GPU job preempted by 2D-LAS at t=2,500 (stopped after a 30 s grace period): its
    lost GPU-seconds and its completion time."""
    long = TraceJob(replace(spec(1, 0.0, gpus=8), checkpointable=checkpointable), 10_000.0)
    short = TraceJob(spec(2, 2_500.0, gpus=8), 100.0)
    result = Simulation(
        one_node(), [long, short], get_policy("las"), checkpointing=checkpointing
    ).run()
    record = next(r for r in result.jobs if r.job_id == 1)
    assert record.preemptions == 1
    assert record.finish is not None
    return record.lost_gpu_seconds, record.finish


def test_a_checkpointable_job_loses_the_work_since_its_last_checkpoint_and_the_reload() -> None:
    lost, finish = _preempted(True, Checkpointing(period=1_000.0, restart_overhead=50.0))
    # Ran 2,530 s, kept 2,000 s: loses 530 s + 50 s of reload on 8 GPUs.
    assert lost == pytest.approx(8 * 580.0)
    assert finish == pytest.approx(2_630.0 + 10_000.0 - 2_000.0 + 50.0)


def test_a_checkpoint_at_the_stop_loses_only_the_reload() -> None:
    lost, _ = _preempted(True, Checkpointing(period=0.0, restart_overhead=50.0))
    assert lost == pytest.approx(8 * 50.0)


def test_a_job_that_cannot_checkpoint_loses_its_whole_run() -> None:
    lost, finish = _preempted(False, Checkpointing(period=1_000.0, restart_overhead=50.0))
    assert lost == pytest.approx(8 * 2_530.0)
    assert finish == pytest.approx(2_630.0 + 10_000.0)


def test_checkpointing_rejects_negative_periods() -> None:
    with pytest.raises(SimulationError, match="period: must be >= 0"):
        Checkpointing(period=-1.0)


def test_every_job_can_be_marked_checkpointable_or_not() -> None:
    workload = [TraceJob(spec(1, 0.0), 10.0)]
    assert with_checkpointing(workload, "all")[0].spec.checkpointable
    assert not with_checkpointing(with_checkpointing(workload, "all"), "none")[
        0
    ].spec.checkpointable
    with pytest.raises(ValueError, match="checkpointable: unknown mode 'some'"):
        with_checkpointing(workload, "some")


def test_a_waiting_job_is_predicted_once_enough_jobs_have_completed() -> None:
    workload = [TraceJob(spec(k, 0.0, gpus=8), 100.0) for k in range(1, 5)]
    result = Simulation(
        one_node(),
        with_estimates(workload, "predicted"),
        get_policy("fifo"),
        predictor=RuntimePredictor(),
    ).run()
    assert {r.job_id: r.predicted for r in result.jobs} == {1: None, 2: None, 3: None, 4: 100.0}
