"""The job commands (submit, jobs, show, cancel, hold, release, logs, explain) driven in-process
against the real API over the in-memory harness, in table and JSON form, and every failure
class with its one ``error:`` line and exit status.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from allot.api.app import create_app
from allot.cli import jobs as jobs_command
from allot.cli import output
from allot.cli.main import app
from allot.client import Client, EventOut, ExplainOut, JobOut, LogChunkOut
from allot.core.explain import Explanation, Reason
from allot.core.model import JobState
from allot.core.quota.config import QueueSpec, QuotaConfig, TenantSpec
from harness import Harness, InProcessTransport, make_harness

TOKEN = "tok-cli-jobs-0123456789"
URL = "http://allot.test"
SECRET = "hunter2-do-not-show"


class KeptOpen(httpx.BaseTransport):
    """The in-process transport, left open when a command closes its client (each command
    makes one), and able to stand in for a failing server."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.fail_with: httpx.Response | BaseException | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if isinstance(self.fail_with, BaseException):
            raise self.fail_with
        if self.fail_with is not None:
            return self.fail_with
        return self.inner.handle_request(request)


@pytest.fixture
def harness() -> Harness:
    return make_harness(tokens={TOKEN: "alice"})


@pytest.fixture
def server(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> Iterator[KeptOpen]:
    """Every command's client talks to the harness in-process; ``--token`` still counts."""
    for name in ("ALLOT_URL", "ALLOT_TOKEN", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    inner = InProcessTransport(create_app(harness.control))
    kept = KeptOpen(inner)

    def make_client(url: str | None, token: str | None) -> Client:
        return Client(URL, token if token is not None else TOKEN, transport=kept)

    monkeypatch.setattr(output, "make_client", make_client)
    yield kept
    inner.close()


def allot(*args: str | int | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def allot_line(line: str) -> Result:
    """Run a command line written as a shell would split it."""
    return CliRunner().invoke(app, shlex.split(line))


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout


def failed(result: Result, status: int) -> str:
    """The one error line, after checking the status and that nothing else was printed."""
    assert result.exit_code == status, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def submitted(*args: str | int | Path) -> JobOut:
    return JobOut.model_validate_json(ok(allot("submit", "-o", "json", *args)))


# ---------------------------------------------------------------------------- submit


def test_submit_prints_the_job_id_like_sbatch(server: KeptOpen, harness: Harness) -> None:
    out = ok(allot("submit", "--gpus", 1, "--", "python", "train.py", "--lr", "3e-4"))
    assert out == "Submitted job 1\n"
    record = harness.store.get_job(1)
    assert record.job.launch.argv == ("python", "train.py", "--lr", "3e-4")
    assert record.job.tasks[0].gpu_milli == 1000
    job = JobOut.model_validate(json.loads(ok(allot_line("submit -o json --hold -- true"))))
    assert (job.id, job.held, job.command) == (2, True, ["true"])


def test_submit_sets_every_flag(server: KeptOpen, tmp_path: Path) -> None:
    job = submitted(
        *("--gpus", "2", "--tasks", "2", "--cpus", "1.5", "--memory-mib", "2048"),
        *("--queue", "default", "--priority", "-3", "--name", "sweep"),
        *("--flavor", "H100-80G", "--flavor", "A100-40G", "--workdir", str(tmp_path)),
        *("--env", "MODE=fast", "--time-limit", "2h", "--estimate", "90"),
        *("--checkpointable", "--no-preemptible", "--hold", "--", "sh", "-c", "echo $RANK"),
    )
    assert (job.tasks, job.resources.gpus, job.resources.cpus) == (2, 2.0, 1.5)
    assert (job.resources.memory_mib, job.queue) == (2048, "default")
    assert (job.priority, job.name) == (-3, "sweep")
    assert job.flavors == ["H100-80G", "A100-40G"]
    assert (job.workdir, job.env_keys) == (str(tmp_path), ["MODE"])
    assert (job.time_limit_seconds, job.runtime_estimate_seconds) == (7200, 90)
    assert (job.checkpointable, job.preemptible, job.held) == (True, False, True)
    assert job.command == ["sh", "-c", "echo $RANK"]


def test_a_relative_workdir_is_taken_from_here(
    server: KeptOpen, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert submitted("--workdir", "data", "--", "ls").workdir == str(tmp_path / "data")


def test_flags_override_the_job_file(server: KeptOpen, tmp_path: Path) -> None:
    job_file = tmp_path / "train.yaml"
    job_file.write_text(
        "name: from-file\n"
        "resources: {gpus: 1, cpus: 4, memory_gib: 2}\n"
        f"env: {{TOKEN: {SECRET}, KEEP: '1'}}\n"
        "command: [python, train.py]\n"
        "time_limit: 1h\n"
        "hold: true\n"
    )
    flags = shlex.split("--gpus 2 --name from-flag --env EXTRA=x --no-hold --time-limit 30m")
    job = submitted(job_file, *flags)
    assert (job.name, job.resources.gpus, job.resources.cpus) == ("from-flag", 2.0, 4.0)
    assert (job.resources.memory_mib, job.held, job.time_limit_seconds) == (2048, False, 1800)
    assert job.env_keys == ["EXTRA", "KEEP", "TOKEN"]
    assert job.command == ["python", "train.py"]
    # Words after -- replace the file's command; the name defaults to the file's.
    other = tmp_path / "eval.yaml"
    other.write_text("command: [python, train.py]\n")
    job = submitted(other, "--", "python", "eval.py")
    assert (job.name, job.command) == ("eval", ["python", "eval.py"])


def test_env_values_are_never_printed(server: KeptOpen, tmp_path: Path) -> None:
    job_file = tmp_path / "job.yaml"
    job_file.write_text(f"command: 'true'\nenv:\n  API_KEY: {SECRET}\n  DEBUG: true\n")
    assert SECRET not in failed(allot("submit", job_file), 2)
    assert "env.DEBUG" in failed(allot("submit", job_file), 2)
    line = failed(allot("submit", "--env", f"1BAD={SECRET}", "--", "true"), 2)
    assert "1BAD" in line
    assert SECRET not in line
    ok(allot("submit", "--env", f"API_KEY={SECRET}", "--", "true"))
    outputs = [
        ok(allot(*args))
        for args in (
            ("show", 1),
            ("show", 1, "-o", "json"),
            ("jobs", "-a"),
            ("jobs", "-o", "json"),
            ("hold", 1, "-o", "json"),
        )
    ]
    assert all(SECRET not in text for text in outputs)
    assert "API_KEY" in outputs[0]


def test_env_name_alone_passes_on_this_shells_value(
    server: KeptOpen, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)
    job = submitted("--env", "HF_TOKEN", "--", "true")
    assert harness.store.get_job(job.id).job.launch.env == {"HF_TOKEN": SECRET}
    monkeypatch.delenv("HF_TOKEN")
    assert "HF_TOKEN is not set here" in failed(allot("submit", "--env", "HF_TOKEN", "--", "x"), 2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give a job file, or the command after --"),
        (("--",), "nothing after --"),
        (("python", "x.py"), "put it after --: allot submit [OPTIONS] -- python x.py"),
        (("--time-limit", "soon", "--", "x"), "--time-limit: must be a duration like 90"),
        (("--estimate", "0s", "--", "x"), "--estimate: must be longer than 0 seconds"),
        (("--gpus", "1.5", "--", "x"), "--gpus: more than one GPU must be a whole number"),
        (("--", ""), "the command after --: the program (argument 0) must not be empty"),
    ],
)
def test_bad_submissions_exit_2(server: KeptOpen, args: tuple[str, ...], message: str) -> None:
    assert message in failed(allot("submit", *args), 2)


def test_the_servers_invalid_answer_names_each_field(server: KeptOpen, tmp_path: Path) -> None:
    assert "queue: unknown queue 'nope'" in failed(allot_line("submit -q nope -- x"), 2)
    assert "unknown priority class 'high'" in failed(allot_line("submit --priority high -- x"), 2)
    job_file = tmp_path / "job.yaml"
    job_file.write_text("command: x\nflavors: [TPU-v9]\n")
    assert failed(allot("submit", job_file), 2).startswith(f"error: {job_file}: flavors: ")


def test_a_job_file_with_an_unknown_key_names_file_line_and_key(
    server: KeptOpen, tmp_path: Path
) -> None:
    job_file = tmp_path / "job.yaml"
    job_file.write_text("command: x\nresources:\n  gpus: 1\n  gpu_count: 2\n")
    line = failed(allot("submit", job_file), 2)
    assert f"{job_file}:4: field 'resources.gpu_count': unknown key" in line


# ---------------------------------------------------------------------------- errors


def test_each_failure_class_has_its_line_and_status(server: KeptOpen) -> None:
    assert "99" in failed(allot("show", 99), 1)
    ok(allot("submit", "--", "true"))
    ok(allot("cancel", 1))
    assert "nothing to cancel" in failed(allot("cancel", 1), 1)
    result = allot("jobs", "--token", "tok-wrong-secret-value")
    assert "API token is not valid" in failed(result, 1)
    assert "tok-wrong-secret-value" not in result.output
    assert TOKEN not in result.output
    server.fail_with = httpx.Response(
        500, json={"title": "Internal", "status": 500, "detail": "the server failed"}
    )
    assert failed(allot("jobs"), 1) == "error: the server failed"


# ---------------------------------------------------------------------------- jobs


def test_jobs_lists_pending_and_running_like_squeue(server: KeptOpen, harness: Harness) -> None:
    ok(allot_line("submit --gpus 1 --name done -- true"))
    ok(allot_line("submit --gpus 1 --tasks 2 --name gang -- x"))
    ok(allot_line("submit --gpus 0.5 --name half -- x"))
    ok(allot_line("submit --gpus 0 --hold -- sh -c 'python prep.py'"))
    harness.start(1)
    harness.finish(1)
    harness.start(2)
    rows = [line.split() for line in ok(allot("jobs")).splitlines()]
    assert rows[0] == ["ID", "NAME", "STATE", "QUEUE", "USER", "GPUS", "TIME", "NODES(REASON)"]
    assert [r[0] for r in rows[1:]] == ["4", "3", "2"]
    assert rows[1][1:3] == ["python", "prep.py"]
    assert rows[1][-3::2] == ["-", "(held)"]
    # TIME is measured from the harness's clock to now: only its form is checked.
    assert all(re.fullmatch(r"(\d+-)?(\d+:)?\d+:\d\d", r[-2]) for r in rows[1:])
    del rows[1][-2], rows[2][-2], rows[3][-2]
    assert rows[2] == ["3", "half", "pending", "default", "alice", "0.5", "(waiting)"]
    assert rows[3] == ["2", "gang", "running", "default", "alice", "2x1", "gpu-1"]
    everything = ok(allot("jobs", "--all"))
    assert "succeeded" in everything
    assert "exited" in everything
    assert [r.split()[0] for r in ok(allot("jobs", "--state", "R")).splitlines()[1:]] == ["2"]
    listed = json.loads(ok(allot("jobs", "-a", "-o", "json", "--state", "succeeded,PD")))
    assert [JobOut.model_validate(j).id for j in listed] == [4, 3, 1]
    assert "unknown state 'done'" in failed(allot("jobs", "--state", "done"), 2)


def test_jobs_follows_cursors_up_to_the_limit(
    server: KeptOpen, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(5):
        ok(allot("submit", "--", "true"))
    monkeypatch.setattr(jobs_command, "PAGE_SIZE", 2)
    listed = json.loads(ok(allot("jobs", "-o", "json", "--limit", 4)))
    assert [j["id"] for j in listed] == [5, 4, 3, 2]
    assert len(ok(allot("jobs", "--limit", 9)).splitlines()) == 6
    assert [r.split()[0] for r in ok(allot("jobs", "--user", "bob")).splitlines()] == ["ID"]


def test_jobs_in_an_unknown_queue_is_an_error_naming_the_known_ones(
    server: KeptOpen, harness: Harness
) -> None:
    ok(allot("submit", "--", "true"))
    line = failed(allot("jobs", "-q", "nope"), 2)
    assert line == "error: queue: unknown queue 'nope'; known queues: default"
    result = allot("jobs", "--queue", "nope", "-o", "json")
    assert (result.exit_code, result.stdout) == (2, "")
    assert json.loads(result.stderr)["status"] == 422
    # A queue that is no longer configured still lists the jobs left in it.
    others = QuotaConfig((TenantSpec("t"),), (QueueSpec("other", "t"),))
    harness.store.save_quotas(others, at=harness.clock.now())
    harness.clock.advance(60)  # past the control plane's cached view of the cluster
    listed = json.loads(ok(allot("jobs", "-q", "default", "-o", "json")))
    assert [j["id"] for j in listed] == [1]
    assert "known queues: other" in failed(allot("jobs", "-q", "nope"), 2)


# ---------------------------------------------------------------------------- show


def test_show_prints_fields_run_placement_and_events(server: KeptOpen, harness: Harness) -> None:
    ok(allot_line("submit --gpus 2 --tasks 2 --name ddp --time-limit 1h -- torchrun train.py"))
    harness.start(1)
    out = ok(allot("show", 1))
    assert out.startswith("Job 1\n")
    expected = ["ddp", "running", "2 x (2 GPUs, 16 CPUs, 128 GiB)", "torchrun train.py", "1:00:00"]
    expected += ["TASK", "gpu-1", "0,1", "2,3", "submitted", "pending -> running"]
    for text in expected:
        assert text in out, text
    shown = json.loads(ok(allot("show", 1, "-o", "json")))
    assert JobOut.model_validate(shown["job"]).run is not None
    assert [EventOut.model_validate(e).kind for e in shown["events"]] == [
        "submitted",
        "starting",
        "running",
    ]


# ---------------------------------------------------------------------------- cancel, hold


def test_cancel_several_like_scancel(server: KeptOpen, harness: Harness) -> None:
    for _ in range(2):
        ok(allot("submit", "--", "sleep", "60"))
    harness.start(2)
    result = allot("cancel", 1, 2, 99)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == "Cancelled job 1"
    assert result.stdout.splitlines()[1].startswith("Stopping job 2: it has until ")
    assert result.stderr.startswith("error: ")
    assert "99" in result.stderr
    ok(allot("submit", "--", "true"))
    cancelled = json.loads(ok(allot("cancel", 3, "-o", "json")))
    assert [JobOut.model_validate(j).state for j in cancelled] == ["cancelled"]


def test_hold_and_release(server: KeptOpen, harness: Harness) -> None:
    ok(allot("submit", "--", "true"))
    assert ok(allot("hold", 1)) == "Held job 1\n"
    released = json.loads(ok(allot("release", 1, "-o", "json")))
    assert [JobOut.model_validate(j).held for j in released] == [False]
    held = json.loads(ok(allot("hold", 1, "-o", "json")))
    assert [JobOut.model_validate(j).held for j in held] == [True]
    assert ok(allot("release", 1)) == "Released job 1\n"
    harness.start(1)
    assert "only a pending job" in failed(allot("hold", 1), 1)


def test_hold_and_release_take_several_jobs_like_cancel(server: KeptOpen, harness: Harness) -> None:
    for _ in range(3):
        ok(allot("submit", "--", "true"))
    assert ok(allot("hold", 1, 3)) == "Held job 1\nHeld job 3\n"
    assert [harness.store.get_job(i).held for i in (1, 2, 3)] == [True, False, True]
    # Every job is reported, done or why not (naming it); the others are still done.
    harness.start(2)
    result = allot("release", 1, 2, 99, 3)
    assert result.exit_code == 1
    assert result.stdout == "Released job 1\nReleased job 3\n"
    errors = result.stderr.splitlines()
    assert len(errors) == 2
    assert errors[0] == "error: job 2 is running; only a pending job can be released"
    assert errors[1].startswith("error: ")
    assert "99" in errors[1]
    assert [harness.store.get_job(i).held for i in (1, 3)] == [False, False]
    result = allot("hold", 1, 99, "-o", "json")
    assert result.exit_code == 1
    assert [j["id"] for j in json.loads(result.stdout)] == [1]
    problem = json.loads(result.stderr)
    assert (problem["status"], problem["job_id"]) == (404, 99)


# ---------------------------------------------------------------------------- logs


def test_logs_prints_the_output_exactly(server: KeptOpen, harness: Harness) -> None:
    ok(allot("submit", "--tasks", 2, "--", "x"))
    run = harness.start(1)
    text = "épée 1\n\tno newline at the end"
    harness.executor.write_log(run.run_id, 0, text.encode())
    harness.executor.write_log(run.run_id, 1, b"task one\n")
    assert ok(allot("logs", 1)) == text
    assert ok(allot("logs", 1, "--task", 1)) == "task one\n"
    chunk = LogChunkOut.model_validate_json(ok(allot("logs", 1, "-o", "json")))
    assert (chunk.data, chunk.run_id, chunk.finished) == (text, run.run_id, False)
    assert "task: must be in 0..1" in failed(allot("logs", 1, "--task", 2), 2)


def test_logs_reads_past_one_chunk(
    server: KeptOpen, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(allot("submit", "--", "x"))
    run = harness.start(1)
    big = "".join(f"line {i}\n" for i in range(20_000))  # larger than the server's chunk
    harness.executor.write_log(run.run_id, 0, big.encode())
    assert ok(allot("logs", 1)) == big


def test_logs_follow_ends_when_the_run_has_finished(server: KeptOpen, harness: Harness) -> None:
    ok(allot("submit", "--", "x"))
    run = harness.start(1)
    harness.executor.write_log(run.run_id, 0, b"epoch 1\n")

    def finish_later() -> None:
        time.sleep(0.3)
        harness.executor.write_log(run.run_id, 0, b"epoch 2\n")
        harness.finish(1)

    finisher = threading.Thread(target=finish_later)
    finisher.start()
    try:
        assert ok(allot("logs", 1, "--follow")) == "epoch 1\nepoch 2\n"
    finally:
        finisher.join()
    result = allot("logs", 1, "-f", "-o", "json")
    assert (result.exit_code, result.stdout) == (2, "")
    assert "not with --follow" in json.loads(result.stderr)["detail"]


def test_ctrl_c_while_following_exits_130(server: KeptOpen) -> None:
    ok(allot("submit", "--", "x"))
    server.fail_with = KeyboardInterrupt()
    result = allot("logs", 1, "--follow")
    assert (result.exit_code, result.stdout) == (130, "")
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------------- explain


def test_explain_gives_the_reason_and_the_remedy(server: KeptOpen, harness: Harness) -> None:
    ok(allot("submit", "--gpus", 8, "--hold", "--", "x"))
    assert ok(allot("explain", 1)).splitlines() == [
        "Job 1 (pending): held; release it to let it be scheduled",
        "To unblock it: allot release 1",
    ]
    ok(allot("release", 1))
    harness.loop.explanations[1] = Explanation(
        Reason.NO_CAPACITY, {"tasks": 1, "gpu_milli_per_task": 8000, "free_gpus": 4}
    )
    lines = ok(allot("explain", 1)).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Job 1 (pending): ")
    assert lines[1].startswith("To unblock it: ")
    why = ExplainOut.model_validate_json(ok(allot("explain", 1, "-o", "json")))
    assert (why.reason, why.fields["free_gpus"]) == ("no_capacity", 4)
    harness.start(1)
    harness.finish(1, JobState.FAILED, 3, "exited with code 3")
    assert ok(allot("explain", 1)) == "Job 1 (failed): exited with code 3\n"
