"""``allot whatif``'s reading of the live history: which jobs it replays and how long each
needs (the live command itself runs in tests/cli/test_cli_live.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import typer

from allot.cli.whatif import parse_span, workload_of
from allot.wire.schemas import JobOut, ResourcesOut

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job(
    job_id: int,
    state: str,
    submit: float,
    start: float | None,
    end: float | None,
    gpus: float = 2,
    attained: float = 0.0,
) -> JobOut:
    at = lambda s: None if s is None else T0 + timedelta(seconds=s)  # noqa: E731
    return JobOut.model_construct(
        id=job_id, name="train", state=state, held=False, queue="q", tenant="t", user="u",
        priority=0, tasks=1, resources=ResourcesOut(gpus=gpus, cpus=4, memory_mib=1024),
        flavors=[], command=[], workdir=None, env_keys=[], runtime_estimate_seconds=None,
        time_limit_seconds=None, checkpointable=False, preemptible=True,
        submitted_at=at(submit), started_at=at(start), ended_at=at(end), exit_code=0,
        reason="", attained_gpu_seconds=attained, run_count=1, run=None,
    )  # fmt: skip


def test_only_ended_jobs_that_ran_are_replayed_from_the_first_submit() -> None:
    jobs = [
        job(1, "succeeded", 100, 110, 170, attained=120.0),
        job(2, "cancelled", 150, None, 160),  # never ran
        job(3, "running", 160, 170, None),
        job(4, "failed", 200, 300, 330, gpus=0),
    ]
    workload = workload_of(jobs)
    assert [(j.spec.id, j.spec.submit_time, j.duration) for j in workload] == [
        (1, 0.0, 60.0),  # 120 GPU-seconds on 2 GPUs
        (4, 100.0, 30.0),  # no GPU: from start to end
    ]


def test_since_keeps_the_recent_jobs() -> None:
    jobs = [job(1, "succeeded", 0, 1, 2), job(2, "succeeded", 500, 501, 502)]
    recent = workload_of(jobs, since=T0.timestamp() + 100)
    assert [j.spec.id for j in recent] == [2]


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 2_592_000.0), ("12h", 43_200.0), ("90m", 5_400.0)]
)
def test_spans(text: str, seconds: float) -> None:
    assert parse_span(text) == seconds


def test_a_bad_span_names_the_option() -> None:
    with pytest.raises(typer.BadParameter, match="s, m, h or d"):
        parse_span("0d")
