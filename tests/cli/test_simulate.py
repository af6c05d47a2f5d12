"""``allot simulate`` driven in-process: the README's command on the shipped examples, JSON
output, and bad input that must end with one ``error:`` line, exit status 2 and nothing written.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from allot import __version__
from allot.cli.main import app
from allot.cli.simulate import TraceFormat
from allot.sim.traces import TRACE_FORMATS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SYNTHETIC = EXAMPLES / "synthetic.yaml"
SMALL_CLUSTER = EXAMPLES / "cluster-small.yaml"
SMALL_TRACE = EXAMPLES / "trace-small.csv"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("jct_cdf.png", "timeline.png")
METRIC_KEYS = {
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
    "queueing_delay_s",
    "mean_allocated_gpus",
    "peak_allocated_gpus",
    "mean_queue_length",
    "peak_queue_length",
    "preemptions",
    "failure_restarts",
    "lost_gpu_hours",
    "per_tenant",
    "events",
    "cycles",
    "timeline",
}
KNOWN_POLICIES = "fifo, besteffort, priority, sjf, backfill"
KNOWN_FORMATS = "philly, alibaba2023, allot, synthetic"


def simulate(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["simulate", *(str(a) for a in args)])


def report(out: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return loaded


def wrote_nothing(out: Path) -> bool:
    return not out.exists() or not any(out.iterdir())


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# The README's command


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    out = tmp_path_factory.mktemp("readme") / "out"
    result = simulate(
        "--trace",
        SYNTHETIC,
        "--cluster",
        SMALL_CLUSTER,
        "--policy",
        "fifo,backfill",
        "--out",
        out,
        "--limit",
        "300",
    )
    return result, out


def test_readme_command_prints_a_table_of_both_policies(readme_run: tuple[Result, Path]) -> None:
    result, out = readme_run
    assert result.exit_code == 0, result.output
    assert "fifo" in result.stdout
    assert "backfill" in result.stdout
    assert "Jobs completed" in result.stdout
    assert f"wrote {out / 'report.json'}" in result.stdout
    assert "error" not in result.output


def test_readme_command_writes_a_report_of_every_policy(readme_run: tuple[Result, Path]) -> None:
    _, out = readme_run
    written = report(out)
    assert list(written["policies"]) == ["fifo", "backfill"]
    for name, figures in written["policies"].items():
        assert figures.keys() >= METRIC_KEYS, name
        assert figures["jobs"] == 300
        assert figures["completed"] + figures["unfinished"] == 300
        timeline = figures["timeline"]
        assert 0 < len(timeline["t_s"]) <= 500
        assert (
            len(timeline["allocated_gpus"]) == len(timeline["queue_length"]) == len(timeline["t_s"])
        )
        assert max(timeline["allocated_gpus"]) <= 64
    meta = written["meta"]
    assert meta["trace"] == str(SYNTHETIC)
    assert meta["trace_format"] == "synthetic"
    assert (meta["cluster_name"], meta["cluster_gpus"], meta["jobs"]) == ("small", 64, 300)
    assert (meta["limit"], meta["estimates"], meta["failures"]) == (300, "none", False)
    assert written["never_fit"] == []


def test_readme_command_draws_both_plots(readme_run: tuple[Result, Path]) -> None:
    _, out = readme_run
    for name in PLOTS:
        assert (out / name).read_bytes().startswith(PNG_SIGNATURE), name


def test_json_output_is_the_report(tmp_path: Path) -> None:
    args = ("--trace", SYNTHETIC, "--cluster", SMALL_CLUSTER, "--limit", "100")
    as_json = simulate(*args, "--out", tmp_path / "json", "--output", "json")
    as_table = simulate(*args, "--out", tmp_path / "table")
    assert (as_json.exit_code, as_table.exit_code) == (0, 0), as_json.output
    printed = json.loads(as_json.stdout)  # stdout holds the JSON and nothing else
    assert printed == report(tmp_path / "json")
    # The same run gives the same figures whichever way it is printed.
    assert printed["policies"] == report(tmp_path / "table")["policies"]


def test_no_plots_writes_only_the_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = simulate(
        "--trace",
        SMALL_TRACE,
        "--cluster",
        SMALL_CLUSTER,
        "--out",
        out,
        "--no-plots",
        "--policy",
        "sjf",
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]
    assert list(report(out)["policies"]) == ["sjf"]


def test_allot_format_is_inferred_from_csv(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = simulate(
        "--trace", SMALL_TRACE, "--cluster", SMALL_CLUSTER, "--out", out, "--policy", "backfill"
    )
    assert result.exit_code == 0, result.output
    written = report(out)
    assert written["meta"]["trace_format"] == "allot"
    assert written["meta"]["jobs"] == 20
    figures = written["policies"]["backfill"]
    assert figures["jobs"] + figures["never_fit"] == 20
    assert figures["unfinished"] == 0
    for name in PLOTS:
        assert (out / name).is_file()


def test_a_failure_model_counts_failure_restarts_and_the_seed_repeats_them(
    tmp_path: Path,
) -> None:
    cluster = write(
        tmp_path / "flaky.yaml",
        """\
        name: flaky
        node_groups:
          - name: rack
            count: 8
            flavor: A100-80G
            gpus: 8
            cpu: 64
            memory_gib: 512
        failures:
          mtbf_hours: 2
          mttr_hours: 0.5
        """,
    )
    args = ("--trace", SMALL_TRACE, "--cluster", cluster, "--no-plots", "--seed", "5")
    first = simulate(*args, "--out", tmp_path / "a")
    again = simulate(*args, "--out", tmp_path / "b")
    assert (first.exit_code, again.exit_code) == (0, 0), first.output
    assert report(tmp_path / "a")["meta"]["failures"] is True
    policies = report(tmp_path / "a")["policies"]
    assert policies == report(tmp_path / "b")["policies"]
    assert sum(p["failure_restarts"] for p in policies.values()) > 0
    # fifo and backfill never preempt: every stop was a node failure.
    assert all(p["preemptions"] == 0 for p in policies.values())
    assert all(p["unfinished"] == 0 for p in policies.values())


def test_a_run_with_failures_ends_when_a_job_is_held_by_its_quota(tmp_path: Path) -> None:
    cluster = write(
        tmp_path / "flaky.yaml",
        """\
        name: flaky
        node_groups:
          - name: rack
            count: 2
            flavor: A100-80G
            gpus: 8
            cpu: 64
            memory_gib: 512
        failures:
          mtbf_hours: 48
          mttr_hours: 4
        """,
    )
    quotas = write(
        tmp_path / "quotas.yaml",
        """\
        tenants:
          - name: vision
        queues:
          - name: vision
            tenant: vision
            quotas:
              A100-80G:
                gpu: 1
        """,
    )
    trace = write(
        tmp_path / "jobs.csv",
        """\
        job_id,submit_time,duration,num_tasks,gpu_milli_per_task,tenant
        1,0,100,1,1000,vision
        2,10,100,1,4000,vision
        """,
    )
    out = tmp_path / "out"
    result = simulate(
        "--trace", trace, "--cluster", cluster, "--quotas", quotas, "--out", out, "--no-plots"
    )
    assert result.exit_code == 0, result.output
    for figures in report(out)["policies"].values():
        assert (figures["completed"], figures["unfinished"]) == (1, 1)


# ---------------------------------------------------------------------------------------------
# Bad input: exit 2, one error line, nothing written


def fails(result: Result, out: Path, *expected: str) -> str:
    """Check the common shape of a refused run and return its error line."""
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for text in expected:
        assert text in errors[0]
    assert "Traceback" not in result.output
    assert wrote_nothing(out)
    return errors[0]


def test_unknown_trace_format_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = simulate(
        "--trace", SMALL_TRACE, "--trace-format", "slurm", "--cluster", SMALL_CLUSTER, "--out", out
    )
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--trace-format'" in result.output
    assert "'slurm' is not one of" in result.output
    for name in TRACE_FORMATS:
        assert f"'{name}'" in result.output
    assert "Traceback" not in result.output
    assert wrote_nothing(out)


def test_the_trace_format_choices_are_the_readers_formats() -> None:
    assert tuple(f.value for f in TraceFormat) == TRACE_FORMATS


def test_a_trace_that_fails_to_parse_in_an_inferred_format_says_so(tmp_path: Path) -> None:
    trace = write(tmp_path / "philly.csv", "timestamp,duration,num_gpus,gpu_time,cluster\n")
    out = tmp_path / "out"
    result = simulate("--trace", trace, "--cluster", SMALL_CLUSTER, "--out", out)
    line = fails(result, out, f"{trace}:1:", "unknown column")
    assert line.endswith("(format inferred as 'allot' from the .csv suffix; pass --trace-format)")


def test_a_trace_that_fails_to_parse_in_a_given_format_has_no_hint(tmp_path: Path) -> None:
    trace = write(tmp_path / "jobs.csv", "submit_time,duration,num_tasks,gpu_milli_per_task\n")
    out = tmp_path / "out"
    result = simulate(
        "--trace", trace, "--trace-format", "philly", "--cluster", SMALL_CLUSTER, "--out", out
    )
    line = fails(result, out, f"{trace}:1:", "missing column")
    assert "inferred" not in line


def test_unknown_policy_lists_the_known_ones(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = simulate(
        "--trace", SMALL_TRACE, "--cluster", SMALL_CLUSTER, "--policy", "fifo,lottery", "--out", out
    )
    fails(result, out, "unknown policy 'lottery'", KNOWN_POLICIES)


def test_a_policy_named_twice(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = simulate(
        "--trace",
        SMALL_TRACE,
        "--cluster",
        SMALL_CLUSTER,
        "--policy",
        "fifo,backfill,fifo",
        "--out",
        out,
    )
    fails(result, out, "--policy", "named twice", "'fifo,backfill,fifo'")


def test_a_malformed_row_names_file_line_and_field(tmp_path: Path) -> None:
    trace = write(
        tmp_path / "jobs.csv",
        """\
        submit_time,duration,num_tasks,gpu_milli_per_task
        0,100,1,1000
        5,abc,1,1000
        """,
    )
    out = tmp_path / "out"
    result = simulate("--trace", trace, "--cluster", SMALL_CLUSTER, "--out", out)
    fails(result, out, f"{trace}:3:", "'duration'", "'abc'")


def test_a_missing_trace_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    out = tmp_path / "out"
    result = simulate("--trace", missing, "--cluster", SMALL_CLUSTER, "--out", out)
    fails(result, out, f"{missing}: no such file")


def test_a_missing_cluster_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    out = tmp_path / "out"
    result = simulate("--trace", SMALL_TRACE, "--cluster", missing, "--out", out)
    fails(result, out, f"{missing}: no such file")


def test_an_unknown_cluster_key_names_file_line_and_key(tmp_path: Path) -> None:
    cluster = write(
        tmp_path / "cluster.yaml",
        """\
        name: typo
        node_groups:
          - name: rack
            count: 1
            flavor: A100-80G
            gpus: 8
            cpu: 64
            memory_gib: 512
            colour: red
        """,
    )
    out = tmp_path / "out"
    result = simulate("--trace", SMALL_TRACE, "--cluster", cluster, "--out", out)
    fails(result, out, f"{cluster}:9:", "colour", "unknown key")


def test_a_cluster_that_fits_no_job(tmp_path: Path) -> None:
    cluster = write(
        tmp_path / "cpu.yaml",
        """\
        name: cpu-only
        node_groups:
          - name: cpu
            count: 2
            flavor: cpu
            gpus: 0
            cpu: 1
            memory_gib: 1
        """,
    )
    out = tmp_path / "out"
    result = simulate("--trace", SMALL_TRACE, "--cluster", cluster, "--out", out)
    fails(
        result,
        out,
        f"{cluster}: cluster 'cpu-only' cannot fit any job of the trace {SMALL_TRACE}",
        "field 'node_groups[*].gpus'",
        "the largest cpu node has 0",
    )


def test_a_cluster_without_the_flavor_the_jobs_ask_for(tmp_path: Path) -> None:
    cluster = write(
        tmp_path / "h100.yaml",
        """\
        name: h100
        node_groups:
          - name: rack
            count: 2
            flavor: H100-80G
            gpus: 8
            cpu: 64
            memory_gib: 512
        """,
    )
    trace = write(
        tmp_path / "jobs.csv",
        """\
        submit_time,duration,num_tasks,gpu_milli_per_task,flavors
        0,100,1,1000,A100-80G
        """,
    )
    out = tmp_path / "out"
    result = simulate("--trace", trace, "--cluster", cluster, "--out", out)
    fails(
        result,
        out,
        f"{cluster}: cluster 'h100' cannot fit any job of the trace {trace}",
        "field 'node_groups[*].flavor'",
        "the jobs ask for flavor A100-80G, which no node group has (flavors: H100-80G)",
    )


def test_a_cluster_that_fits_no_job_with_json_output(tmp_path: Path) -> None:
    cluster = write(
        tmp_path / "cpu.yaml",
        """\
        name: cpu-only
        node_groups:
          - name: cpu
            count: 1
            flavor: cpu
            gpus: 0
            cpu: 1
            memory_gib: 1
        """,
    )
    out = tmp_path / "out"
    result = simulate(
        "--trace", SMALL_TRACE, "--cluster", cluster, "--out", out, "--output", "json"
    )
    fails(result, out, "cannot fit any job")
    assert result.stdout == ""  # stdout is for the JSON only


def test_a_trace_name_without_a_known_format(tmp_path: Path) -> None:
    trace = write(tmp_path / "jobs.txt", "submit_time,duration,num_tasks,gpu_milli_per_task\n")
    out = tmp_path / "out"
    result = simulate("--trace", trace, "--cluster", SMALL_CLUSTER, "--out", out)
    fails(result, out, str(trace), "cannot tell the format", "--trace-format", KNOWN_FORMATS)


@pytest.mark.parametrize(
    ("trace", "policy", "expected"),
    [
        pytest.param("[old]/trace.csv", "fifo", "[old]", id="path-with-brackets"),
        pytest.param("", "fifo,[/x]", "unknown policy '[/x]'", id="closing-tag-as-policy"),
    ],
)
def test_user_text_in_square_brackets_is_shown_verbatim(
    tmp_path: Path, trace: str, policy: str, expected: str
) -> None:
    out = tmp_path / "out"
    path = tmp_path / trace if trace else SMALL_TRACE
    result = simulate("--trace", path, "--cluster", SMALL_CLUSTER, "--policy", policy, "--out", out)
    fails(result, out, expected)


# ---------------------------------------------------------------------------------------------
# The command itself


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"allot {__version__}"


def test_help_lists_simulate_and_its_options() -> None:
    top = CliRunner().invoke(app, ["--help"])
    assert top.exit_code == 0
    assert "simulate" in top.stdout
    sub = CliRunner().invoke(app, ["simulate", "--help"])
    assert sub.exit_code == 0
    for option in ("--trace", "--cluster", "--policy", "--out", "--limit", "--estimates"):
        assert option in sub.stdout
    wide = CliRunner().invoke(app, ["simulate", "--help"], env={"COLUMNS": "200"})
    *first, last = (f.value for f in TraceFormat)
    choices = f"{', '.join(first)} or {last}"  # the --trace-format choices, all of them
    assert choices in wide.stdout
    assert "<" not in wide.stdout  # metavars, no Python types


# ---------------------------------------------------------------------------------------------
# The public traces


@pytest.mark.traces
def test_philly_replay(traces_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = simulate(
        "--trace",
        traces_dir / "philly" / "philly-2017-09-10.csv",
        "--trace-format",
        "philly",
        "--cluster",
        EXAMPLES / "cluster-philly.yaml",
        "--policy",
        "fifo,backfill",
        "--limit",
        "2000",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    written = report(out)
    assert written["meta"]["jobs"] == 2000
    assert written["never_fit"] == []
    assert list(written["policies"]) == ["fifo", "backfill"]
    for figures in written["policies"].values():
        assert (figures["jobs"], figures["completed"], figures["never_fit"]) == (2000, 2000, 0)
    for name in PLOTS:
        assert (out / name).is_file()


@pytest.mark.traces
def test_alibaba_replay(traces_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = simulate(
        "--trace",
        traces_dir / "alibaba2023" / "openb_pod_list_default.csv",
        "--trace-format",
        "alibaba2023",
        "--cluster",
        EXAMPLES / "cluster-alibaba2023.yaml",
        "--limit",
        "1000",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    written = report(out)
    assert written["meta"]["jobs"] == 1000
    assert written["meta"]["cluster_gpus"] == 6212
    assert written["never_fit"] == []
    for figures in written["policies"].values():
        assert (figures["jobs"], figures["completed"], figures["never_fit"]) == (1000, 1000, 0)
