"""``allot submit --interactive`` and ``--notebook`` against a real ``allot up``: the shell
opens on the allocated GPUs and its exit gives them back; the notebook's URL is printed from
its log (a stand-in ``jupyter`` on PATH prints one, as Jupyter Lab does)."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from allot.datadir import TOKEN_FILE
from live_server import allot_command, allot_up, cli_env


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_an_interactive_shell_gets_the_jobs_gpus_and_its_exit_cancels_the_job(
    tmp_path: Path,
) -> None:
    seen = tmp_path / "seen.txt"
    script = f'#!/bin/sh\necho "$ALLOT_JOB_ID $CUDA_VISIBLE_DEVICES" > {seen}\nexit 3\n'
    shell = executable(tmp_path / "shell.sh", script)
    with allot_up(tmp_path, gpus=2) as server:
        env = {**cli_env(server.data_dir, server.url), "SHELL": str(shell)}
        result = subprocess.run(
            [*allot_command(), "submit", "--interactive", "--gpus", "2"],
            env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
        )  # fmt: skip
        assert result.returncode == 3, result.stdout + result.stderr
        job_id, devices = seen.read_text().split()
        assert devices == "0,1"
        assert f"Session ended; job {job_id} cancelled" in result.stdout
        admin = (server.data_dir / TOKEN_FILE).read_text().strip()
        job = httpx.get(f"{server.url}/v1/jobs/{job_id}",
                        headers={"Authorization": f"Bearer {admin}"}).json()  # fmt: skip
        assert job["name"] == "shell"
        assert job["command"] == ["sleep", "infinity"]
        assert job["state"] in ("running", "cancelled")  # stopping within its grace period
        assert job["run"] is None or job["run"]["phase"] in ("stopping", "ended")


def test_a_notebook_prints_its_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable(bin_dir / "jupyter", "#!/bin/sh\necho \"[I] Jupyter Server is running at:\"\n"
               "echo \"    http://127.0.0.1:8888/lab?token=abc123\"\nexec sleep 60\n")  # fmt: skip
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with allot_up(tmp_path, gpus=1) as server:
        started = time.monotonic()
        result = subprocess.run(
            [*allot_command(), "submit", "--notebook", "--gpus", "1"],
            env=cli_env(server.data_dir, server.url), capture_output=True, text=True,
            timeout=60, cwd=tmp_path, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert "http://127.0.0.1:8888/lab?token=abc123" in result.stdout
        assert time.monotonic() - started < 60
        job_id = result.stdout.split()[2]
        cancel = subprocess.run([*allot_command(), "cancel", job_id],
                                env=cli_env(server.data_dir, server.url), capture_output=True,
                                text=True, timeout=60, check=False)  # fmt: skip
        assert cancel.returncode == 0, cancel.stderr


def test_interactive_and_notebook_together_are_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [*allot_command(), "submit", "--interactive", "--notebook"],
        env=cli_env(tmp_path, "http://127.0.0.1:9"), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "--interactive, --notebook: give one of them, not both" in result.stderr
