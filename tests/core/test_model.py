"""Values of the core: validation rules and the job state machine."""

from __future__ import annotations

import pytest

from allot.core.model import (
    Cluster,
    JobSpec,
    JobState,
    Node,
    Resources,
    SpecError,
    TransitionError,
    gang,
    transition,
)


def test_resources_of_whole_units() -> None:
    assert Resources.of(gpus=0.5, cpus=4, memory_mib=2048) == Resources(500, 4000, 2048)
    assert Resources.of(gpus=2).whole_gpus == 2
    assert Resources.of(gpus=0.25).is_fractional


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"gpu_milli": -1}, "gpu_milli"),
        ({"cpu_milli": 1.5}, "cpu_milli"),
        ({"memory_mib": True}, "memory_mib"),
    ],
)
def test_resources_reject_bad_amounts(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as err:
        Resources(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


def test_job_needs_tasks_and_whole_or_fractional_gpus() -> None:
    with pytest.raises(SpecError, match="at least one task"):
        JobSpec(1, "t", "u", "q", ())
    with pytest.raises(SpecError, match=r"tasks\[0\]\.gpu_milli: must be below 1000"):
        JobSpec(1, "t", "u", "q", (Resources(1500),))
    with pytest.raises(SpecError, match="runtime_estimate: must be > 0"):
        JobSpec(1, "t", "u", "q", (Resources(1000),), runtime_estimate=0)
    with pytest.raises(SpecError, match="lists a flavor twice"):
        JobSpec(1, "t", "u", "q", (Resources(1000),), flavors=("A", "A"))


def test_job_total_shape_and_expected_runtime() -> None:
    spec = JobSpec(1, "t", "u", "q", gang(3, Resources(8000, 100, 10)), time_limit=60)
    assert spec.total == Resources(24000, 300, 30)
    assert spec.is_gang
    assert spec.expected_runtime == 60
    assert spec.shape == (((8000, 100, 10, 0),) * 3, ())


def test_node_and_cluster_validation() -> None:
    with pytest.raises(SpecError, match="gpus: must be an integer >= 0"):
        Node("a", "H100", -1, 1, 1)
    with pytest.raises(SpecError, match="appears twice"):
        Cluster((Node("a", "H100", 1, 1, 1), Node("a", "H100", 1, 1, 1)))
    c = Cluster((Node("a", "B", 1, 1, 1), Node("b", "A", 2, 1, 1)))
    assert c.flavors == ("A", "B")
    assert c.total_gpus == 3


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (JobState.PENDING, JobState.RUNNING),
        (JobState.RUNNING, JobState.SUCCEEDED),
        (JobState.RUNNING, JobState.PREEMPTED),
        (JobState.PREEMPTED, JobState.PENDING),
        (JobState.PENDING, JobState.CANCELLED),
    ],
)
def test_allowed_transitions(start: JobState, end: JobState) -> None:
    assert transition(start, end) is end


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (JobState.SUCCEEDED, JobState.RUNNING),
        (JobState.PENDING, JobState.SUCCEEDED),
        (JobState.PREEMPTED, JobState.RUNNING),
        (JobState.CANCELLED, JobState.PENDING),
    ],
)
def test_forbidden_transitions_name_both_states(start: JobState, end: JobState) -> None:
    with pytest.raises(TransitionError, match=f"cannot go from {start} to {end}"):
        transition(start, end)
    assert start.is_terminal == (start in (JobState.SUCCEEDED, JobState.CANCELLED, JobState.FAILED))
