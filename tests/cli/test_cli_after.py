"""Dependencies on the command line: ``--after`` and the job file's ``after`` parse to the wire
form (errors name the flag or the file's line), ``allot submit --after`` reaches the server,
``--parsable`` prints only the id for scripts, an array is one array however many batches it
takes, and ``allot jobs``/``explain``/``show`` say what a job waits for. Driven in-process over
the harness, with the fixtures of ``test_cli_jobs``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli_jobs import TOKEN, URL, KeptOpen, allot, failed, ok

from allot.api.app import create_app
from allot.cli import output
from allot.cli.jobfile import JobDraft, JobFileError, apply_flags, load_job_file, parse_after
from allot.client import Client
from allot.control.dependencies import judge_job
from allot.control.records import Condition, Dependency
from allot.wire.schemas import MAX_BATCH
from allot.wire.schemas import Dependency as WireDependency
from harness import Harness, InProcessTransport, make_harness


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", [(12, "ok")]),
        ("12:any", [(12, "any")]),
        ("12,13:failed", [(12, "ok"), (13, "failed")]),
        (" 12 : OK , 7", [(12, "ok"), (7, "ok")]),
    ],
)
def test_after_syntax(text: str, expected: list[tuple[int, str]]) -> None:
    assert parse_after(text) == [{"job": j, "condition": c} for j, c in expected]


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("", "is not ID or ID:CONDITION"),
        ("twelve", "is not ID or ID:CONDITION"),
        ("12:", "is not ID or ID:CONDITION"),
        ("12,", "is not ID or ID:CONDITION"),
        ("-3", "is not ID or ID:CONDITION"),
        ("12:afterok", "unknown condition 'afterok'; one of: ok"),
    ],
)
def test_bad_after_syntax(text: str, rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        parse_after(text)


def test_the_flag_is_repeatable_and_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("command: [python, train.py]\nafter: [1]\n", encoding="utf-8")
    draft = load_job_file(path)
    apply_flags(draft, {"--after": ["12", "13:any,14:failed"]})
    assert draft.submission().after == [
        WireDependency(job=12),
        WireDependency(job=13, condition="any"),
        WireDependency(job=14, condition="failed"),
    ]
    with pytest.raises(JobFileError, match="--after: 'x' is not ID or ID:CONDITION"):
        apply_flags(JobDraft(), {"--after": ["x"]})


def test_the_job_file_takes_ids_strings_and_mappings(tmp_path: Path) -> None:
    path = tmp_path / "evaluate.yaml"
    path.write_text(
        "command: [python, eval.py]\n"
        'after: [12, "13:any", "14,15:failed", {job: 16}, {job: 17, condition: failed}]\n',
        encoding="utf-8",
    )
    after = [(d.job, d.condition) for d in load_job_file(path).submission().after]
    assert after == [
        (12, "ok"),
        (13, "any"),
        (14, "ok"),
        (15, "failed"),
        (16, "ok"),
        (17, "failed"),
    ]
    path.write_text("command: [echo]\nafter: 12\n", encoding="utf-8")
    assert load_job_file(path).submission().after == [WireDependency(job=12)]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("[12:soon]", "job.yaml:2: field 'after[0]': '12:soon': unknown condition 'soon'"),
        ("[{job: 12, when: ok}]", "job.yaml:2: field 'after[0].when': unknown key"),
        ("[{condition: any}]", "job.yaml:2: field 'after[0].job'"),
        ("[{job: 1, condition: notok}]", "field 'after[0].condition': must be one of ok, failed"),
        ("[[12]]", "job.yaml:2: field 'after[0]': must be a job id, 'ID:CONDITION'"),
        ("[12, 12]", "job.yaml:2: field 'after': names job 12 twice"),
    ],
)
def test_job_file_errors_name_the_line_and_key(tmp_path: Path, value: str, problem: str) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(f"command: [echo]\nafter: {value}\n", encoding="utf-8")
    with pytest.raises(JobFileError) as caught:
        load_job_file(path).submission()
    assert problem in str(caught.value).replace(str(path), "job.yaml")


# ---------------------------------------------------------------------------- over the API


@pytest.fixture
def harness() -> Harness:
    return make_harness(tokens={TOKEN: "alice"})


@pytest.fixture
def server(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> Iterator[KeptOpen]:
    """Every command's client talks to the harness in-process."""
    for name in ("ALLOT_URL", "ALLOT_TOKEN", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    inner = InProcessTransport(create_app(harness.control))
    kept = KeptOpen(inner)

    def make_client(url: str | None, token: str | None) -> Client:
        return Client(URL, token if token is not None else TOKEN, transport=kept)

    monkeypatch.setattr(output, "make_client", make_client)
    yield kept
    inner.close()


@pytest.mark.usefixtures("server")
def test_a_pipeline_from_the_command_line(harness: Harness) -> None:
    pre = ok(allot("submit", "--parsable", "--", "python", "prep.py")).strip()
    train = ok(allot("submit", "--parsable", "--after", pre, "--", "python", "train.py")).strip()
    out = ok(allot("submit", "--after", f"{train}:any", "--after", pre, "--", "python", "eval.py"))
    assert (pre, train, out) == ("1", "2", "Submitted job 3\n")
    assert harness.store.get_job(3).job.after == (
        Dependency(2, Condition.ANY),
        Dependency(1, Condition.OK),
    )
    problem = failed(allot("submit", "--after", "9", "--", "true"), 2)
    assert problem == "error: after[0].job: job 9 does not exist"
    assert failed(allot("submit", "--after", "9:soon", "--", "true"), 2).startswith(
        "error: --after: '9:soon': unknown condition"
    )


@pytest.mark.usefixtures("server")
def test_a_large_array_is_one_array(harness: Harness) -> None:
    size = MAX_BATCH + 2
    out = ok(allot("submit", "--array", f"0-{size - 1}", "--", "true"))
    assert out == f"Submitted array 1 of {size} jobs: 1-{size}\n"
    progress = harness.store.dependency_progress([1])
    assert progress[1].members == size
    array = ok(allot("submit", "--parsable", "--array", "0-1", "--after", "1", "--", "true"))
    assert array == f"{size + 1}\n"
    assert harness.store.get_job(size + 2).job.after == (Dependency(1),)


@pytest.mark.usefixtures("server")
def test_jobs_explain_and_show_say_what_a_job_waits_for(harness: Harness) -> None:
    ok(allot("submit", "--", "python", "prep.py"))
    ok(allot("submit", "--name", "train", "--after", "1", "--", "python", "train.py"))
    record = harness.store.get_job(2)
    wait = judge_job(record.job.after, harness.store.dependency_progress([1])).wait
    assert wait is not None
    harness.loop.waits[2] = wait  # what the loop's latest cycle found
    listing = ok(allot("jobs"))
    assert "(dependency: waits for job 1 to succeed)" in listing
    explained = ok(allot("explain", 2))
    assert "waits for job 1 to succeed" in explained
    assert "starts once job 1 has succeeded" in explained
    shown = ok(allot("show", 2))
    assert "1:ok" in shown
