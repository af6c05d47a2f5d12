"""The ``allot`` command against a real ``allot up`` in a subprocess (SQLite, the local
executor, real processes), with no token given anywhere: the CLI reads the one the server
wrote. Jobs start where they were submitted, as with sbatch; a job file's relative
``workdir`` is taken from the file's folder."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from allot.cli.main import app
from live_server import LiveServer, allot_up

# Prints where it runs and reads a file next to it, as a training script reads its config.
SCRIPT = "import os; print(os.getcwd()); print(open('config.txt').read().strip())\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with allot_up(tmp_path_factory.mktemp("server")) as live:
        yield live


@pytest.fixture
def env(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment of a shell on the server's machine: its data directory, no token."""
    monkeypatch.setenv("ALLOT_DATA_DIR", str(server.data_dir))
    monkeypatch.setenv("ALLOT_URL", server.url)
    monkeypatch.delenv("ALLOT_TOKEN", raising=False)


def allot(*args: str | int | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def submitted(*args: str | Path) -> int:
    out = ok(allot("submit", *args))
    assert out.startswith("Submitted job "), out
    return int(out.split()[2])


def finished(job_id: int) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while True:
        job: dict[str, object] = json.loads(ok(allot("show", job_id, "-o", "json")))["job"]
        if job["state"] not in ("pending", "running"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} did not finish"
        time.sleep(0.1)


def project(folder: Path, config: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "train.py").write_text(SCRIPT)
    (folder / "config.txt").write_text(config + "\n")
    return folder


@pytest.mark.usefixtures("env")
def test_a_session_with_no_token_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    job_id = submitted("--gpus", "1", "--", "sh", "-c", "echo hello")
    assert finished(job_id)["state"] == "succeeded"
    assert ok(allot("logs", job_id)) == "hello\n"


@pytest.mark.usefixtures("env")
def test_a_job_starts_where_it_was_submitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = project(tmp_path / "project", "lr=3e-4")
    monkeypatch.chdir(here)
    # The README's first example, `allot submit --gpus 1 -- python train.py`.
    job_id = submitted("--gpus", "1", "--", sys.executable, "train.py")
    job = finished(job_id)
    assert (job["state"], job["workdir"]) == ("succeeded", str(here))
    assert ok(allot("logs", job_id)) == f"{here}\nlr=3e-4\n"


@pytest.mark.usefixtures("env")
def test_a_job_file_workdir_is_relative_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = project(tmp_path / "data", "from the file's folder")
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "train.yaml").write_text(
        f"command: [{sys.executable}, train.py]\nworkdir: ../data\nresources: {{gpus: 0}}\n"
    )
    (jobs / "here.yaml").write_text(f"command: [{sys.executable}, train.py]\n")
    elsewhere = project(tmp_path / "elsewhere", "from where it was submitted")
    monkeypatch.chdir(elsewhere)
    relative = submitted(jobs / "train.yaml")
    # Without a workdir in the file, the job starts where it was submitted, not by the file.
    unsaid = submitted(jobs / "here.yaml")
    assert finished(relative)["workdir"] == str(data)
    assert ok(allot("logs", relative)) == f"{data}\nfrom the file's folder\n"
    assert finished(unsaid)["workdir"] == str(elsewhere)
    assert ok(allot("logs", unsaid)) == f"{elsewhere}\nfrom where it was submitted\n"


@pytest.mark.usefixtures("env")
def test_whatif_replays_the_jobs_that_ran_under_each_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ran = [submitted("--gpus", "1", "--", "sh", "-c", "sleep 0.2") for _ in range(2)]
    assert all(finished(job_id)["state"] == "succeeded" for job_id in ran)
    out = json.loads(ok(allot("whatif", "--policy", "allot,fifo", "--since", "1d", "-o", "json")))
    assert list(out) == ["allot", "fifo"]
    assert all(figures["completed"] == figures["jobs"] >= 2 for figures in out.values())
    table = ok(allot("whatif", "--policy", "las", "--since", "1d"))
    assert "Mean JCT" in table or "JCT" in table


@pytest.mark.usefixtures("env")
def test_whatif_names_a_bad_span() -> None:
    result = allot("whatif", "--since", "soon")
    assert result.exit_code != 0
    assert "--since" in result.output
