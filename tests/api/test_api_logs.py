"""GET /v1/jobs/{id}/logs: chunks of a task's output as text, with the offset to ask from next
and whether the run has ended."""

from __future__ import annotations

from typing import Any

import httpx

from allot.core.model import JobState
from harness import Harness


def submitted(api: httpx.Client, tasks: int = 1) -> int:
    job_id: int = api.post("/v1/jobs", json={"command": "true", "tasks": tasks}).json()["id"]
    return job_id


def logs(api: httpx.Client, job_id: int, **params: Any) -> dict[str, Any]:
    response = api.get(f"/v1/jobs/{job_id}/logs", params=params)
    assert response.status_code == 200, response.text
    chunk: dict[str, Any] = response.json()
    return chunk


def test_before_the_first_start_there_is_nothing_yet(api: httpx.Client) -> None:
    job_id = submitted(api)
    assert logs(api, job_id) == {"run_id": None, "data": "", "next_offset": 0, "finished": False}


def test_a_job_cancelled_before_it_started_has_finished_logs(api: httpx.Client) -> None:
    job_id = submitted(api)
    api.post(f"/v1/jobs/{job_id}/cancel")
    assert logs(api, job_id)["finished"] is True


def test_output_is_read_from_an_offset_until_the_run_ends(
    api: httpx.Client, harness: Harness
) -> None:
    job_id = submitted(api, tasks=2)
    run = harness.start(job_id)
    harness.executor.write_log(run.run_id, 0, b"epoch 1\n")
    harness.executor.write_log(run.run_id, 1, b"worker 1 ready\n")
    first = logs(api, job_id)
    assert first == {"run_id": run.run_id, "data": "epoch 1\n", "next_offset": 8, "finished": False}
    assert logs(api, job_id, task=1)["data"] == "worker 1 ready\n"
    harness.executor.write_log(run.run_id, 0, b"epoch 2\n")
    harness.finish(job_id, JobState.SUCCEEDED)
    rest = logs(api, job_id, offset=first["next_offset"])
    assert rest == {"run_id": run.run_id, "data": "epoch 2\n", "next_offset": 16, "finished": True}
    assert logs(api, job_id, offset=2, limit=3)["data"] == "och"


def test_invalid_utf8_is_replaced(api: httpx.Client, harness: Harness) -> None:
    job_id = submitted(api)
    run = harness.start(job_id)
    harness.executor.write_log(run.run_id, 0, b"ok \xff\xfe done\n")
    assert logs(api, job_id)["data"] == "ok \ufffd\ufffd done\n"


def test_a_character_cut_by_the_limit_waits_for_the_next_chunk(
    api: httpx.Client, harness: Harness
) -> None:
    job_id = submitted(api)
    run = harness.start(job_id)
    harness.executor.write_log(run.run_id, 0, "loss → 0.1".encode())  # the arrow is 3 bytes
    first = logs(api, job_id, limit=6)
    assert (first["data"], first["next_offset"]) == ("loss ", 5)
    second = logs(api, job_id, offset=5, limit=6)
    assert second["data"] == "→ 0."


def test_a_cut_character_at_the_end_of_an_ended_run_is_replaced(
    api: httpx.Client, harness: Harness
) -> None:
    job_id = submitted(api)
    run = harness.start(job_id)
    harness.executor.write_log(run.run_id, 0, b"half \xe2\x86")
    running = logs(api, job_id)
    assert (running["data"], running["next_offset"]) == ("half ", 5)
    harness.finish(job_id)
    ended = logs(api, job_id, offset=5)
    assert (ended["data"], ended["next_offset"], ended["finished"]) == ("\ufffd", 7, True)


def test_a_limit_too_small_for_one_character_still_moves_on(
    api: httpx.Client, harness: Harness
) -> None:
    job_id = submitted(api)
    run = harness.start(job_id)
    harness.executor.write_log(run.run_id, 0, "→".encode())
    chunk = logs(api, job_id, limit=1)
    assert chunk["next_offset"] == 1


def test_a_task_out_of_range_is_422(api: httpx.Client) -> None:
    job_id = submitted(api)
    response = api.get(f"/v1/jobs/{job_id}/logs", params={"task": 1})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "task", "rule": "must be in 0..0, got 1"}]
    assert api.get("/v1/jobs/999/logs").status_code == 404
