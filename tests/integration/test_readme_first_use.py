"""The README's first use, as a new user types it, on a fresh data directory: ``allot up
--gpus 2`` in one terminal, then ``allot submit``, ``allot jobs`` and ``allot logs`` in
another, and the API docs in a browser, which must load without network.

Every command is a real subprocess against a real server; nothing is faked.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from live_server import LiveServer, allot_cli, banner_line, cli_env


def wait_until_ended(server: LiveServer, job_id: int) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while True:
        shown = allot_cli(server, "show", str(job_id), "-o", "json")
        assert shown.returncode == 0, shown.stderr
        job: dict[str, object] = json.loads(shown.stdout)["job"]
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def submitted_id(result_stdout: str) -> int:
    match = re.search(r"Submitted job (\d+)", result_stdout)
    assert match, result_stdout
    return int(match.group(1))


def test_the_readme_first_use_works_on_a_fresh_data_directory(tmp_path: Path) -> None:
    project = tmp_path / "project"  # where the user works
    project.mkdir()
    server = LiveServer(tmp_path / "data", tmp_path / "up.log")
    banner = server.start("--gpus", "2")
    try:
        assert "allot is up" in banner
        assert banner_line(banner, "queues") == "default (tenant default, unconstrained)"

        # `allot submit -- true`: the simplest job, in the default queue.
        plain = allot_cli(server, "submit", "--", "true", cwd=project)
        assert plain.returncode == 0, plain.stderr
        first = submitted_id(plain.stdout)

        # A one-GPU job as the README shows, with output to read back.
        gpu = allot_cli(
            server, "submit", "--gpus", "1", "--", "sh", "-c", "echo gpu=$CUDA_VISIBLE_DEVICES"
        )
        assert gpu.returncode == 0, gpu.stderr
        second = submitted_id(gpu.stdout)

        listed = allot_cli(server, "jobs", "--all")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines()[0].split()[:3] == ["ID", "NAME", "STATE"]

        assert wait_until_ended(server, first)["state"] == "succeeded"
        ended = wait_until_ended(server, second)
        assert ended["state"] == "succeeded"
        resources = ended["resources"]
        assert isinstance(resources, dict)
        assert resources["gpus"] == 1.0
        logs = allot_cli(server, "logs", str(second))
        assert logs.returncode == 0, logs.stderr
        assert logs.stdout == "gpu=0\n"

        # The README's first example, from the user's project folder: the job starts there,
        # and `python` is the one allot runs with.
        (project / "train.py").write_text(
            "import os, sys\nprint('cwd', os.getcwd(), 'args', sys.argv[1:])\n"
        )
        readme = allot_cli(
            server, "submit", "--gpus", "1", "--", "python", "train.py", "--lr", "3e-4",
            cwd=project,
        )  # fmt: skip
        assert readme.returncode == 0, readme.stderr
        trained = submitted_id(readme.stdout)
        assert wait_until_ended(server, trained)["state"] == "succeeded"
        out = allot_cli(server, "logs", str(trained))
        assert out.stdout == f"cwd {project} args ['--lr', '3e-4']\n"

        # The SDK without arguments finds this server and its token, as the CLI does.
        sdk = subprocess.run(
            [sys.executable, "-c",
             "from allot.client import Client\n"
             "with Client() as allot:\n"
             "    print(sorted(j.id for j in allot.jobs(state='succeeded').items))"],
            env=cli_env(server.data_dir, server.url), capture_output=True, text=True,
            check=False, timeout=60,
        )  # fmt: skip
        assert sdk.returncode == 0, sdk.stderr
        assert sdk.stdout.strip() == str(sorted([first, second, trained]))

        # The docs page, as a browser on a cluster without internet would load it.
        docs = httpx.get(f"{server.url}/v1/docs", timeout=10)
        assert docs.status_code == 200
        assert "https://" not in docs.text
        assert "http://" not in docs.text
        urls = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
        urls += re.findall(r"url: '([^']+)'", docs.text)
        assert len(urls) >= 3
        for url in urls:
            assert url.startswith("/"), url
            assert httpx.get(f"{server.url}{url}", timeout=10).status_code == 200, url
    finally:
        server.stop()


if sys.platform != "linux":  # pragma: no cover - the executor is Linux-only
    pytestmark = pytest.mark.skip(reason="needs Linux (/proc) for the local executor")
