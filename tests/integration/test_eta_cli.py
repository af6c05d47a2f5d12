"""Start-time estimates end to end: a real ``allot up`` estimates when a queued job starts, and
``allot jobs --start``, ``allot show`` and ``allot explain`` show it."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from allot.datadir import TOKEN_FILE
from live_server import allot_cli, allot_up


def test_the_cli_shows_when_a_queued_job_is_expected_to_start(tmp_path: Path) -> None:
    with allot_up(tmp_path, gpus=1) as server:
        admin = (server.data_dir / TOKEN_FILE).read_text().strip()
        api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {admin}"})
        body = {"command": ["sleep", "60"], "resources": {"gpus": 1},
                "runtime_estimate_seconds": 600}  # fmt: skip
        first = api.post("/v1/jobs", json=body).json()["id"]
        second = api.post("/v1/jobs", json=body).json()["id"]
        deadline = time.monotonic() + 30
        while True:
            shown = api.get(f"/v1/jobs/{second}").json()["estimated_start"]
            if shown is not None and shown["start"] is not None:
                break
            assert time.monotonic() < deadline, "no estimate within 30 s"
            time.sleep(0.2)
        listed = allot_cli(server, "jobs", "--start")
        assert listed.returncode == 0, listed.stderr
        header = listed.stdout.splitlines()[0]
        assert "START" in header
        assert "unknown" not in listed.stdout
        assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", listed.stdout), listed.stdout
        explained = allot_cli(server, "explain", str(second))
        assert explained.returncode == 0, explained.stderr
        assert "Expected to start:" in explained.stdout
        assert "run forward through the scheduler" in explained.stdout
        show = allot_cli(server, "show", str(second))
        assert "expected start" in show.stdout
        for job_id in (second, first):
            api.post(f"/v1/jobs/{job_id}/cancel")
        api.close()
