"""``allot up`` as real processes on real data directories: a second server on a taken port
or a held data directory is refused before it touches anything; quotas stay in force across
restarts and the banner says so; the banner's ``try:`` command works; CPU defaults follow the
node shape, so a 2-CPU box with 4 GPUs runs 4 one-GPU jobs at once."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from live_server import LiveServer, allot_cli, allot_command, banner_line, cli_env, free_port

QUOTAS = """\
tenants:
  - name: vision
queues:
  - name: train
    tenant: vision
    quotas:
      gpu:
        gpu: 2
  - name: eval
    tenant: vision
"""


def refused_up(data_dir: Path, port: int, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*allot_command(), "up", "--gpus", "2", "--port", str(port)],
        env=cli_env(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    return lines[0]


def test_a_second_server_is_refused_before_it_touches_anything(tmp_path: Path) -> None:
    first = LiveServer(tmp_path / "data", tmp_path / "first.log")
    first.start("--gpus", "2")
    try:
        assert first.proc is not None
        pid = first.proc.pid
        lock = json.loads((tmp_path / "data" / "server.lock").read_text())
        assert (lock["pid"], lock["port"]) == (pid, first.port)
        database = tmp_path / "data" / "allot.db"
        before = database.stat().st_mtime_ns

        # The port is taken: refused before the new data directory is even created.
        other = tmp_path / "other"
        error = one_error_line(refused_up(other, first.port, tmp_path))
        assert f"127.0.0.1:{first.port} is already in use" in error
        assert not other.exists()

        # The same port and data directory: the message names the server that has both.
        error = one_error_line(refused_up(tmp_path / "data", first.port, tmp_path))
        assert f"pid {pid}, serving on http://127.0.0.1:{first.port}" in error

        # Another port, same data directory: the lock refuses it, naming the first server.
        error = one_error_line(refused_up(tmp_path / "data", free_port(), tmp_path))
        assert f"already running on the data directory {tmp_path / 'data'}" in error
        assert f"(pid {pid}, serving on http://127.0.0.1:{first.port})" in error
        assert "allot is up" not in error
        assert database.stat().st_mtime_ns == before  # nothing migrated, nothing reconciled
        assert json.loads((tmp_path / "data" / "server.lock").read_text())["pid"] == pid
        assert allot_cli(first, "jobs").returncode == 0  # the first one still serves

        # The lock dies with its process: after kill -9 a new server starts at once.
        first.kill9()
        first.start("--gpus", "2")
        assert first.proc is not None
        lock = json.loads((tmp_path / "data" / "server.lock").read_text())
        assert lock["pid"] == first.proc.pid
    finally:
        first.stop()


def test_quotas_stay_in_force_across_restarts_and_the_banner_says_which(
    tmp_path: Path,
) -> None:
    quotas = tmp_path / "quotas.yaml"
    quotas.write_text(QUOTAS)
    server = LiveServer(tmp_path / "data", tmp_path / "server.log")
    banner = server.start("--gpus", "2", "--quotas", str(quotas))
    server.stop()
    assert "loaded now and kept for later starts" in banner_line(banner, "quotas")

    banner = server.start("--gpus", "2")  # a plain restart keeps them
    try:
        line = banner_line(banner, "quotas")
        assert str(quotas.resolve()) in line
        assert "kept from the store (loaded at " in line
        assert "allot up --quotas default" in line
        queues = banner_line(banner, "queues")
        assert queues == "train (tenant vision, gpu 2 GPUs); eval (tenant vision, unconstrained)"
        hint = banner_line(banner, "try")
        assert "--queue train" in hint

        # Without --queue there is no queue to go to: the error says which exist.
        failed = allot_cli(server, "submit", "--", "true")
        assert failed.returncode == 2
        assert "no queue 'default'" in failed.stderr
        assert "known queues: eval, train" in failed.stderr
        assert "--queue train" in failed.stderr

        # The banner's own hint works, as printed.
        venv_bin = str(Path(sys.executable).parent)
        env = {**cli_env(server.data_dir, server.url), "PATH": f"{venv_bin}:{os.environ['PATH']}"}
        tried = subprocess.run(
            ["sh", "-c", hint], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert tried.returncode == 0, tried.stderr
        assert "Submitted job 1" in tried.stdout
    finally:
        server.stop()

    banner = server.start("--gpus", "2", "--quotas", "default")  # back to the default
    try:
        assert banner_line(banner, "quotas").startswith("the built-in default")
        assert banner_line(banner, "queues") == "default (tenant default, unconstrained)"
        assert "--queue" not in banner_line(banner, "try")
        submitted = allot_cli(server, "submit", "--", "true")
        assert submitted.returncode == 0, submitted.stderr
    finally:
        server.stop()


def test_four_gpus_on_a_two_cpu_node_run_four_one_gpu_jobs_at_once(tmp_path: Path) -> None:
    cpus = sorted(os.sched_getaffinity(0))[:2]  # the server sees at most 2 CPUs
    server = LiveServer(tmp_path / "data", tmp_path / "server.log")
    server.start("--gpus", "4", cpus=cpus)
    gate = tmp_path / "go"
    try:
        script = (
            f"touch {shlex.quote(str(tmp_path))}/started-$ALLOT_JOB_ID;"
            f" while [ ! -e {shlex.quote(str(gate))} ]; do sleep 0.1; done"
        )
        for _ in range(4):
            submitted = allot_cli(server, "submit", "--gpus", "1", "--", "sh", "-c", script)
            assert submitted.returncode == 0, submitted.stderr
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("started-*"))) < 4:
            assert time.monotonic() < deadline, allot_cli(server, "jobs").stdout
            time.sleep(0.1)
        shown = allot_cli(server, "show", "1", "-o", "json")
        resources = json.loads(shown.stdout)["job"]["resources"]
        assert resources["cpus"] == len(cpus) / 4
        assert "CPU" in allot_cli(server, "show", "1").stdout
        gate.touch()
    finally:
        gate.touch()
        server.stop()


if sys.platform != "linux":  # pragma: no cover - the executor and flock are Linux-only here
    pytestmark = pytest.mark.skip(reason="needs Linux (/proc, sched_setaffinity)")
