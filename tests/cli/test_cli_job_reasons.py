"""What the job commands say when something is in the way: the REASON a pending job waits for
and a running job's executor notes, every job of a ``cancel`` reported, and failures as RFC 9457
problem documents on stderr with ``--output json``. Driven in-process over the harness, with the
fixtures of ``test_cli_jobs``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from test_cli_jobs import TOKEN, URL, KeptOpen, allot, ok

from allot.api.app import create_app
from allot.cli import output
from allot.client import Client
from allot.control.ports import RunState, RunStatus
from allot.core.explain import Explanation, Reason
from harness import Harness, InProcessTransport, make_harness

ORPHAN = "the task runs without its runner (pid 4242 is gone), so its exit code will not be known"


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


def test_jobs_shows_why_a_pending_job_waits(server: KeptOpen, harness: Harness) -> None:
    ok(allot("submit", "--gpus", 8, "--", "x"))
    ok(allot("submit", "--", "y"))
    harness.loop.explanations[1] = Explanation(Reason.BLOCKED_BY_HEAD, {"head": 7})
    lines = ok(allot("jobs")).splitlines()
    assert lines[1].startswith("2 ")
    assert lines[1].endswith(" (waiting)")  # not considered by the loop yet
    assert lines[2].endswith(
        " (blocked_by_head: strict FIFO: waits behind job 7, which does not fit yet)"
    )
    shown = ok(allot("show", 1))
    assert "blocked_by_head: strict FIFO: waits behind job 7" in shown


def test_show_and_explain_say_a_task_runs_without_its_runner(
    server: KeptOpen, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(allot("submit", "--", "sleep", "60"))
    harness.start(1)

    def status(run_id: str, num_tasks: int) -> RunStatus:
        return RunStatus(run_id, RunState.RUNNING, (None,), notes=(ORPHAN,))

    monkeypatch.setattr(harness.executor, "status", status)
    assert ORPHAN in ok(allot("show", 1))
    first = ok(allot("explain", 1)).splitlines()[0]
    assert first.startswith("Job 1 (running): running on gpu-1")
    assert first.endswith(ORPHAN)


def test_cancel_reports_every_job(server: KeptOpen, harness: Harness) -> None:
    ok(allot("submit", "--", "true"))
    harness.start(1)
    harness.finish(1)
    ok(allot("submit", "--", "sleep", "60"))
    result = allot("cancel", 1, 99, 2)
    assert result.exit_code == 1
    assert result.stdout == "Cancelled job 2\n"
    errors = result.stderr.splitlines()
    assert len(errors) == 2, result.stderr
    assert errors[0].startswith("error: job 1 ")
    assert "nothing to cancel" in errors[0]
    assert errors[1].startswith("error: ")
    assert "99" in errors[1]


def test_cancel_with_json_prints_a_problem_for_each_refused_job(
    server: KeptOpen, harness: Harness
) -> None:
    ok(allot("submit", "--", "true"))
    harness.start(1)
    harness.finish(1)
    result = allot("cancel", 1, 99, "-o", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == []
    problems = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(p["job_id"], p["status"]) for p in problems] == [(1, 409), (99, 404)]
    assert problems[1]["instance"] == "/v1/jobs/99/cancel"


def test_cancel_reports_every_job_when_the_server_is_gone(server: KeptOpen) -> None:
    ok(allot("submit", "--", "true"))
    server.fail_with = httpx.ConnectError("refused")
    result = allot("cancel", 1, 2)
    assert (result.exit_code, result.stdout) == (1, "")
    errors = result.stderr.splitlines()
    assert [e.split(":")[1].strip() for e in errors] == ["job 1", "job 2"]
    assert all("cannot reach the allot server" in e for e in errors)


def test_a_refused_submission_is_a_problem_document_with_json(server: KeptOpen) -> None:
    result = allot("submit", "-o", "json", "--gpus", 1, "--cpus", 100, "--", "x")
    assert (result.exit_code, result.stdout) == (2, "")
    problem = json.loads(result.stderr)
    assert problem["type"] == "https://allot.dev/problems/rejected"
    assert problem["status"] == 422
    assert [e["field"] for e in problem["errors"]] == ["resources.cpus"]
    assert "needs 100 CPUs per task" in problem["errors"][0]["rule"]
    table = allot("submit", "--gpus", 1, "--cpus", 100, "--", "x")
    assert table.exit_code == 2
    assert table.stderr.startswith("error: resources.cpus: needs 100 CPUs per task on one ")


def test_bad_input_with_json_is_a_problem_document_too(server: KeptOpen) -> None:
    result = allot("jobs", "--state", "done", "-o", "json")
    assert (result.exit_code, result.stdout) == (2, "")
    problem = json.loads(result.stderr)
    assert problem["title"] == "Invalid input"
    assert "unknown state 'done'" in problem["detail"]


def test_a_cpu_only_submission_too_large_names_cpus_on_a_node(server: KeptOpen) -> None:
    result = allot("submit", "--gpus", 0, "--cpus", 100, "--", "x")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: resources.cpus: needs 100 CPUs per task on one node; the largest node has 64 CPUs"
    )


def test_explain_says_what_only_cpu_lacks_and_what_helps(
    server: KeptOpen, harness: Harness
) -> None:
    ok(allot("submit", "--gpus", 1, "--cpus", 8, "--", "x"))
    harness.loop.explanations[1] = Explanation(
        Reason.NO_CAPACITY,
        {
            "tasks": 1,
            "gpu_milli_per_task": 1000,
            "flavors": "H100-80G",
            "shortfall": "not enough free CPU: at most 2 CPUs are free on one H100-80G node"
            " with 1 free GPU; it needs 8 CPUs",
        },
    )
    lines = ok(allot("explain", 1)).splitlines()
    assert lines[0] == (
        "Job 1 (pending): needs 1 GPU of H100-80G on one node; not enough free CPU: at most 2"
        " CPUs are free on one H100-80G node with 1 free GPU; it needs 8 CPUs"
    )
    harness.loop.explanations[1] = Explanation(Reason.NO_RESERVATION, {"head": 8})
    lines = ok(allot("explain", 1)).splitlines()
    assert "jobs with a --time-limit let the scheduler reserve a start" in lines[0]
    assert lines[1].startswith("To unblock it: submit jobs with a --time-limit")
