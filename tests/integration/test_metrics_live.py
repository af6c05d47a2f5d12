"""``/metrics`` of a real ``allot up``: scraped with the scrape token the server wrote, parsed
with Prometheus's text parser, after a job ran through the real loop and local executor."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from allot.datadir import TOKEN_FILE
from live_server import allot_up


def test_a_running_server_serves_its_metrics_to_the_scrape_token(tmp_path: Path) -> None:
    with allot_up(tmp_path, gpus=2) as server:
        scrape = (server.data_dir / "metrics-token").read_text().strip()
        assert (server.data_dir / "metrics-token").stat().st_mode & 0o077 == 0
        admin = (server.data_dir / TOKEN_FILE).read_text().strip()
        api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {admin}"})
        job = api.post("/v1/jobs", json={"command": ["/bin/true"], "resources": {"gpus": 1}})
        assert job.status_code == 201, job.text
        job_id = job.json()["id"]
        deadline = time.monotonic() + 30
        while api.get(f"/v1/jobs/{job_id}").json()["state"] != "succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert httpx.get(f"{server.url}/metrics").status_code == 401
        answer = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {scrape}"})
        assert answer.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(answer.text)}
        api.close()
    placed = families["allot_placements"].samples
    assert sum(s.value for s in placed if s.name == "allot_placements_total") == 1
    waits = families["allot_job_queue_wait_seconds"].samples
    assert [s.value for s in waits if s.name.endswith("_count")] == [1]
    launches = families["allot_executor_launch_duration_seconds"].samples
    assert [s.value for s in launches if s.name.endswith("_count")] == [1]
    cycles = families["allot_scheduling_cycle_duration_seconds"].samples
    assert next(s.value for s in cycles if s.name.endswith("_count")) >= 1
    submits = [
        s for s in families["allot_http_requests"].samples
        if s.labels.get("handler") == "submit_job" and s.labels.get("code") == "201"
    ]  # fmt: skip
    assert [s.value for s in submits] == [1]
    gpus = {s.labels["status"]: s.value for s in families["allot_gpus"].samples}
    assert gpus == {"allocated": 0, "free": 2}
    assert str(job_id) not in {v for f in families.values() for s in f.samples
                               for v in s.labels.values()}  # fmt: skip
