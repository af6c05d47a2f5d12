"""The job files in ``examples/jobs`` run as shipped: each reads into a submission that a laptop
can hold and says how to submit it and what it needs; each command runs, from the working
directory the file gives, the way allot's local executor runs it (a string through /bin/sh,
the gang as two processes with ``RANK`` set), with only smaller sizes appended (argparse takes
the last value given)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from allot.cli.jobfile import load_job_file
from allot.wire.schemas import JobSubmission

EnvFor = Callable[..., dict[str, str]]  # the fixtures of conftest.py
ReadUntil = Callable[[subprocess.Popen[str], str], list[str]]

REPO = Path(__file__).resolve().parents[2]
JOBS = REPO / "examples" / "jobs"
TIMEOUT_S = 120  # a guard against a hang, never a speed target
SMALL_TRAINING = ["--steps", "30", "--samples", "256"]


def job(name: str) -> JobSubmission:
    return load_job_file(JOBS / name).submission()


def argv(submission: JobSubmission, extra: list[str]) -> list[str]:
    """The process the executor starts: a string runs with /bin/sh -c."""
    command = submission.command
    if isinstance(command, str):
        return ["/bin/sh", "-c", " ".join([command, *extra])]
    return [*command, *extra]


def run(submission: JobSubmission, extra: list[str], env: dict[str, str]) -> str:
    env = {**env, **submission.env}
    done = subprocess.run(
        argv(submission, extra),
        cwd=submission.workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_every_job_file_reads_fits_a_laptop_and_says_how_to_run_it() -> None:
    paths = sorted(JOBS.glob("*.yaml"))
    assert len(paths) >= 5
    for path in paths:
        submission = load_job_file(path).submission()
        assert submission.resources.cpus <= 2, path.name
        assert submission.resources.memory_mib <= 2048, path.name
        text = path.read_text(encoding="utf-8")
        assert f"allot submit examples/jobs/{path.name}" in text, path.name
        assert "# Needs: " in text, path.name


def test_every_script_a_job_file_names_exists() -> None:
    named = set()
    for path in JOBS.glob("*.yaml"):
        submission = load_job_file(path).submission()
        command = submission.command
        words = command.split() if isinstance(command, str) else command
        for word in words:
            if word.endswith(".py"):
                assert submission.workdir is not None
                assert (Path(submission.workdir) / word).is_file(), (path.name, word)
                named.add(Path(word).name)
    assert named == {"train.py", "preprocess.py", "serve.py"}


def test_the_training_job_runs_as_shipped(tmp_path: Path, env_for: EnvFor) -> None:
    submission = job("train-1gpu.yaml")
    assert submission.workdir == str(REPO)
    out = run(submission, [*SMALL_TRAINING, "--checkpoint-dir", str(tmp_path)], env_for())
    assert out.splitlines()[0].startswith("one process: NumPy on the CPU")
    assert f"done: step 30, checkpoint {tmp_path / 'checkpoint.npz'}" in out
    assert re.search(r"step 30/30  loss \d+\.\d+  accuracy", out)


def test_the_gang_job_runs_as_two_ranks(tmp_path: Path, env_for: EnvFor, free_port: int) -> None:
    submission = job("gang-2task.yaml")
    assert submission.tasks == 2
    extra = [*SMALL_TRAINING, "--checkpoint-dir", str(tmp_path)]
    procs = [
        subprocess.Popen(
            argv(submission, extra),
            cwd=submission.workdir,
            env={**env_for(rank=rank, world=2, port=free_port), **submission.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = []
    for proc in procs:
        with proc:
            out, _ = proc.communicate(timeout=TIMEOUT_S)
            assert proc.returncode == 0, out
            outputs.append(out)
    assert "rank 0: joined the gang of 2" in outputs[0]
    assert "done: step 30" in outputs[0]
    assert "rank 1: joined the gang of 2" in outputs[1]
    assert "rank 1: done at step 30" in outputs[1]
    assert (tmp_path / "checkpoint.npz").is_file()


def test_the_preprocessing_job_runs_as_shipped(tmp_path: Path, env_for: EnvFor) -> None:
    submission = job("preprocess-cpu.yaml")
    assert submission.resources.gpus == 0
    out = run(submission, ["--output", str(tmp_path)], env_for())
    docs = sorted((REPO / "docs").glob("*.md"))
    assert f"2 worker(s) tokenized {len(docs)} files from docs" in out
    summary = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert summary["files"] == len(docs)
    assert summary["shards"] == ["tokens-00000.npy"]


def test_the_server_job_runs_as_shipped(env_for: EnvFor, read_until: ReadUntil) -> None:
    submission = job("inference-half-gpu.yaml")
    assert submission.resources.gpus == 0.5
    env = {**env_for(extra={"ALLOT_GPU_FRACTION": "0.5"}), **submission.env}
    with subprocess.Popen(
        argv(submission, []),
        cwd=submission.workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        try:
            first = read_until(proc, "listening on ")[-1]
            url = first.split()[2]
            request = urllib.request.Request(
                f"{url}/embed", data=json.dumps({"texts": ["a GPU job"]}).encode()
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert len(json.load(response)["embeddings"][0]) == 256
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 0, out
    assert "stopped after embedding 1 text(s)" in out


def test_the_held_job_with_its_own_environment_runs_as_shipped(env_for: EnvFor) -> None:
    submission = job("env-workdir-limit.yaml")
    assert submission.hold
    assert run(submission, [], env_for()) == "eval in /tmp with 4 threads\n"


@pytest.mark.parametrize("name", ["train-1gpu.yaml", "gang-2task.yaml"])
def test_a_shell_command_hands_its_place_to_python(name: str) -> None:
    """With ``exec``, SIGTERM reaches train.py (which saves a checkpoint), not only /bin/sh."""
    command = job(name).command
    assert isinstance(command, str)
    assert command.startswith("exec python3 examples/jobs/train.py ")
