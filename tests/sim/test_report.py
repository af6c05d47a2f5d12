"""report.json against a golden file, its timeline samples, and the plots: titles that name
the run, and policies whose lines coincide told apart (their own styles and a legend note).

Refresh the golden file after an intended change with ``ALLOT_UPDATE_GOLDEN=1 pytest ...``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from allot.sim.metrics import Metrics, compute_metrics
from allot.sim.report import (
    TIMELINE_POINTS,
    jct_cdf_figure,
    plot_jct_cdf,
    timeline_figure,
    timeline_samples,
    write_plots,
    write_report,
)
from allot.sim.result import JobRecord, NeverFit, SimResult, Timeline

GOLDEN = Path(__file__).parent / "golden" / "report.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def job(
    job_id: int, tenant: str, submit: float, runtime: float, start: float | None, gpus: int
) -> JobRecord:
    finish = None if start is None else start + runtime
    return JobRecord(
        job_id, tenant, f"{tenant}-queue", submit, runtime, gpus * 1000, 1, start, finish
    )


def never_fit() -> list[NeverFit]:
    return [
        NeverFit(9, "vision", "asks for 16 GPUs of H100-80G; the largest node has 8"),
        NeverFit(4, "nlp", "accepts only flavor 'TPU-v5', which no node has"),
    ]


def timeline(*samples: tuple[float, int, int]) -> Timeline:
    line = Timeline()
    for time, gpus, queue in samples:
        line.record(time, gpus * 1000, queue)
    return line


def sample_results() -> list[SimResult]:
    fifo = SimResult(
        policy="fifo",
        cluster_gpus=8,
        jobs=[
            job(1, "nlp", 0, 3600, 0, 8),
            job(2, "vision", 60, 600, 3600, 4),
            job(3, "vision", 120, 30, 3600, 2),
            job(5, "nlp", 7000, 7200, None, 8),
        ],
        never_fit=never_fit(),
        timeline=timeline(
            (0, 8, 0), (60, 8, 1), (120, 8, 2), (3600, 6, 0), (3630, 4, 0), (7000, 4, 1)
        ),
        events=9,
        cycles=7,
        end_time=7200,
    )
    backfill = SimResult(
        policy="backfill",
        cluster_gpus=8,
        jobs=[
            job(1, "nlp", 0, 3600, 0, 8),
            job(2, "vision", 60, 600, 3600, 4),
            job(3, "vision", 120, 30, 3600, 2),
            job(5, "nlp", 7000, 7200, 7000, 8),
        ],
        never_fit=never_fit(),
        timeline=timeline((0, 8, 0), (60, 8, 1), (120, 8, 2), (3600, 6, 0), (7000, 8, 0)),
        events=10,
        cycles=8,
        end_time=14200,
    )
    backfill.jobs[0].preemptions = 1
    backfill.jobs[0].lost_gpu_seconds = 8 * 900
    backfill.jobs[1].failure_restarts = 1
    fifo.jobs[2].timed_out = True
    return [fifo, backfill]


def sample_metrics(results: list[SimResult]) -> dict[str, Metrics]:
    return {result.policy: compute_metrics(result) for result in results}


def test_report_json_matches_the_golden_file(tmp_path: Path) -> None:
    results = sample_results()
    meta: dict[str, object] = {
        "trace": Path("traces/philly-sample.csv"),
        "format": "philly",
        "cluster": Path("clusters/small.yaml"),
        "cluster_gpus": 8,
        "jobs": 6,
        "seed": 7,
    }
    path = write_report(
        tmp_path / "out", results=results, metrics=sample_metrics(results), meta=meta
    )
    assert path == tmp_path / "out" / "report.json"
    written = path.read_text(encoding="utf-8")
    if os.environ.get("ALLOT_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(written, encoding="utf-8")
    assert written == GOLDEN.read_text(encoding="utf-8"), (
        "report.json differs from tests/sim/golden/report.json; if the change is intended, "
        "rerun with ALLOT_UPDATE_GOLDEN=1"
    )


def test_report_json_layout(tmp_path: Path) -> None:
    results = sample_results()
    path = write_report(tmp_path, results=results, metrics=sample_metrics(results), meta={})
    report = json.loads(path.read_text(encoding="utf-8"))
    assert list(report) == ["meta", "policies", "never_fit"]
    assert list(report["policies"]) == ["fifo", "backfill"]
    fifo = report["policies"]["fifo"]
    assert list(fifo)[:2] == ["jobs", "completed"]
    assert list(fifo)[-3:] == ["events", "cycles", "timeline"]
    assert list(fifo["timeline"]) == ["t_s", "allocated_gpus", "queue_length"]
    assert len(fifo["timeline"]["t_s"]) == TIMELINE_POINTS
    assert (fifo["events"], fifo["cycles"]) == (9, 7)
    assert [entry["job_id"] for entry in report["never_fit"]] == [4, 9]
    assert not list(tmp_path.glob(".*partial"))


def test_report_names_a_policy_without_a_result(tmp_path: Path) -> None:
    results = sample_results()
    metrics = {"drf": compute_metrics(results[0])}
    with pytest.raises(ValueError, match="'drf'"):
        write_report(tmp_path, results=results, metrics=metrics, meta={})
    assert not (tmp_path / "report.json").exists()


def test_report_names_a_meta_value_json_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"meta: run\.started is a object"):
        write_report(tmp_path, results=[], metrics={}, meta={"run": {"started": object()}})
    assert not (tmp_path / "report.json").exists()


def test_an_empty_report_is_still_valid_json(tmp_path: Path) -> None:
    path = write_report(tmp_path, results=[], metrics={}, meta={"seed": 1})
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "meta": {"seed": 1},
        "policies": {},
        "never_fit": [],
    }


def test_timeline_samples_the_step_function_at_evenly_spaced_instants() -> None:
    result = SimResult(policy="fifo", cluster_gpus=8, end_time=100.0)
    result.timeline = timeline((0, 2, 1), (10, 8, 0), (55, 0, 3))
    samples = timeline_samples(result, points=5)
    assert samples == {
        "t_s": [0.0, 25.0, 50.0, 75.0, 100.0],
        "allocated_gpus": [2.0, 8.0, 8.0, 0.0, 0.0],
        "queue_length": [1, 0, 0, 3, 3],
    }
    # An instant that falls on a sample takes that sample's value.
    assert timeline_samples(result, points=3)["allocated_gpus"] == [2.0, 8.0, 0.0]


def test_timeline_of_a_long_run_has_at_most_the_fixed_number_of_points() -> None:
    result = SimResult(policy="fifo", cluster_gpus=64, end_time=30 * 86_400.0)
    for i in range(20_000):
        result.timeline.record(i * 120.0, (i * 7919 % 64) * 1000, i % 300)
    samples = timeline_samples(result)
    assert len(samples["t_s"]) == len(samples["allocated_gpus"]) == TIMELINE_POINTS
    assert samples["t_s"][0] == 0.0
    assert samples["t_s"][-1] == 30 * 86_400.0
    steps = {round(b - a, 3) for a, b in zip(samples["t_s"], samples["t_s"][1:], strict=False)}
    assert max(steps) - min(steps) <= 0.002  # evenly spaced, up to rounding
    assert samples == timeline_samples(result)  # deterministic


def test_timeline_of_an_instant_or_of_nothing() -> None:
    instant = SimResult(policy="fifo", cluster_gpus=8, end_time=5.0)
    instant.timeline = timeline((5, 1, 0))
    assert timeline_samples(instant) == {"t_s": [5.0], "allocated_gpus": [1.0], "queue_length": [0]}
    empty = timeline_samples(SimResult(policy="fifo", cluster_gpus=8))
    assert empty == {"t_s": [], "allocated_gpus": [], "queue_length": []}


def test_report_writes_each_timeline_list_on_one_line(tmp_path: Path) -> None:
    results = sample_results()
    path = write_report(tmp_path, results=results, metrics=sample_metrics(results), meta={})
    lines = path.read_text(encoding="utf-8").splitlines()
    series = [line.strip() for line in lines if line.strip().startswith('"t_s"')]
    assert len(series) == 2
    assert series[0].startswith('"t_s": [0.0, ')
    report = json.loads(path.read_text(encoding="utf-8"))
    assert report["policies"]["fifo"]["timeline"] == timeline_samples(results[0])


def test_plots_are_written_as_png(tmp_path: Path) -> None:
    paths = write_plots(tmp_path / "plots", sample_results(), cluster_gpus=8)
    assert [path.name for path in paths] == ["jct_cdf.png", "timeline.png"]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_plots_of_runs_with_nothing_completed(tmp_path: Path) -> None:
    empty = SimResult(policy="fifo", cluster_gpus=8)
    for path in write_plots(tmp_path, [empty], cluster_gpus=8):
        assert path.stat().st_size > 0


def test_long_timelines_are_plotted(tmp_path: Path) -> None:
    result = SimResult(policy="fifo", cluster_gpus=64, end_time=30 * 86_400.0)
    for i in range(20_000):
        result.timeline.record(i * 120.0, (i * 7919 % 64) * 1000, i % 300)
        result.jobs.append(job(i, "nlp", i * 120.0, 60.0 + i % 5000, i * 120.0 + 30, 1))
    for path in write_plots(tmp_path, [result], cluster_gpus=64):
        assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_jct_cdf_with_zero_completion_times(tmp_path: Path) -> None:
    result = SimResult(policy="fifo", cluster_gpus=8)
    result.jobs = [job(1, "nlp", 10, 0, 10, 1), job(2, "nlp", 0, 90, 0, 1)]
    path = tmp_path / "cdf.png"
    plot_jct_cdf([result], path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE


SUBJECT = "philly-sample.csv on small (8 GPUs, 4 jobs)"


def test_plot_titles_name_the_trace_and_the_cluster() -> None:
    results = sample_results()
    cdf = jct_cdf_figure(results, subject=SUBJECT)
    assert cdf.axes[0].get_title() == f"Job completion time CDF\n{SUBJECT}"
    timeline = timeline_figure(results, 8, subject=SUBJECT)
    assert timeline.axes[0].get_title() == f"GPU allocation and queue length\n{SUBJECT}"
    assert jct_cdf_figure(results).axes[0].get_title() == "Job completion time CDF"


def _legend(figure: Figure) -> list[str]:
    legend = figure.axes[0].get_legend()
    assert legend is not None
    return [text.get_text() for text in legend.get_texts()]


def test_policies_with_identical_results_are_noted_and_drawn_apart() -> None:
    fifo, backfill = sample_results()
    twin = SimResult(
        policy="sjf",
        cluster_gpus=8,
        jobs=fifo.jobs,
        timeline=fifo.timeline,
        end_time=fifo.end_time,
    )
    results = [fifo, backfill, twin]
    cdf = jct_cdf_figure(results, subject=SUBJECT)
    assert _legend(cdf) == ["fifo", "backfill", "sjf (same as fifo)"]
    timeline = timeline_figure(results, 8, subject=SUBJECT)
    assert _legend(timeline) == ["fifo", "backfill", "sjf (same as fifo)", "capacity"]
    for figure in (cdf, timeline):
        lines = figure.axes[0].get_lines()[:3]
        looks = {(line.get_linestyle(), line.get_marker()) for line in lines}
        assert len(looks) == 3  # each policy its own line style and marker
        assert all(line.get_marker() not in (None, "None", "") for line in lines)


def test_different_results_get_no_note() -> None:
    assert _legend(jct_cdf_figure(sample_results())) == ["fifo", "backfill"]


def test_write_plots_takes_the_subject_of_the_titles(tmp_path: Path) -> None:
    paths = write_plots(tmp_path, sample_results(), cluster_gpus=8, subject=SUBJECT)
    for path in paths:
        assert path.read_bytes()[:8] == PNG_SIGNATURE
