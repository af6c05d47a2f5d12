"""The reason a job shows: a pending job's latest explanation (code and sentence, in get and
list, as squeue's REASON column), a running job's executor notes (a task without its runner),
and a cancel of a job already stopping, which changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from allot.control.ports import RunState, RunStatus
from allot.core.explain import Explanation, Reason
from harness import Harness

ORPHAN = "the task runs without its runner (pid 4242 is gone), so its exit code will not be known"


def submit(api: httpx.Client, **changes: Any) -> dict[str, Any]:
    response = api.post("/v1/jobs", json={"command": "sleep 60", **changes})
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def test_a_pending_job_shows_why_it_waits_in_get_and_list(
    api: httpx.Client, harness: Harness
) -> None:
    waiting = submit(api, resources={"gpus": 8})
    held = submit(api, hold=True)
    fresh = submit(api)
    harness.loop.explanations[waiting["id"]] = Explanation(
        Reason.NO_CAPACITY,
        {
            "tasks": 1,
            "gpu_milli_per_task": 8000,
            "flavors": "H100-80G",
            "shortfall": "largest free block of H100-80G is 1 GPU",
        },
    )
    expected = (
        "no_capacity: needs 8 GPUs of H100-80G on one node; largest free block of H100-80G is 1 GPU"
    )
    assert api.get(f"/v1/jobs/{waiting['id']}").json()["reason"] == expected
    listed = {j["id"]: j["reason"] for j in api.get("/v1/jobs").json()["items"]}
    assert listed == {waiting["id"]: expected, held["id"]: "held", fresh["id"]: ""}


def test_a_running_job_shows_what_the_executor_notes(
    api: httpx.Client, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = submit(api)
    run = harness.start(job["id"])

    def status(run_id: str, num_tasks: int) -> RunStatus:
        assert (run_id, num_tasks) == (run.run_id, 1)
        return RunStatus(run_id, RunState.RUNNING, (None,), notes=(ORPHAN,))

    monkeypatch.setattr(harness.executor, "status", status)
    assert api.get(f"/v1/jobs/{job['id']}").json()["reason"] == ORPHAN
    explained = api.get(f"/v1/jobs/{job['id']}/explain").json()
    assert explained["reason"] == "running"
    assert explained["message"].endswith(f"; {ORPHAN}")
    assert explained["fields"]["notes"] == [ORPHAN]
    assert "without an exit code" in explained["remedy"]


def test_a_running_job_without_notes_keeps_its_reason(api: httpx.Client, harness: Harness) -> None:
    job = submit(api, resources={"gpus": 1})
    harness.start(job["id"])
    explained = api.get(f"/v1/jobs/{job['id']}/explain").json()
    assert explained["message"].startswith("running on gpu-1 (H100-80G) since ")
    assert ";" not in explained["message"]
    assert "notes" not in explained["fields"]


def test_cancelling_a_job_already_stopping_changes_nothing(
    api: httpx.Client, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = submit(api)
    harness.start(job["id"])
    stops: list[str] = []
    stop_run = harness.loop.stop_run

    def counted(run: Any, *, cause: Any, reason: str, actor: str) -> None:
        stops.append(reason)
        stop_run(run, cause=cause, reason=reason, actor=actor)

    monkeypatch.setattr(harness.loop, "stop_run", counted)
    first = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert first.status_code == 200
    harness.clock.advance(5)
    again = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 200
    assert again.json() == first.json()  # the job as it is: same stop, same deadline
    assert stops == ["cancelled by alice"]
    kinds = [e.kind for e in harness.store.events(job["id"])]
    assert kinds.count("stopping") == 1


def test_a_cpu_only_job_is_described_without_gpu_words(api: httpx.Client, harness: Harness) -> None:
    refused = api.post("/v1/jobs", json={"command": "x", "resources": {"gpus": 0, "cpus": 100}})
    assert refused.status_code == 422
    [error] = refused.json()["errors"]
    assert error["field"] == "resources.cpus"
    assert error["rule"] == "needs 100 CPUs per task on one node; the largest node has 64 CPUs"
    job = submit(api, resources={"gpus": 0, "cpus": 2})
    harness.start(job["id"])
    explained = api.get(f"/v1/jobs/{job['id']}/explain").json()
    assert explained["message"].startswith("running on gpu-1 since ")
    assert "H100" not in explained["message"]


def test_a_job_behind_an_unreservable_head_is_told_what_helps(
    api: httpx.Client, harness: Harness
) -> None:
    job = submit(api)
    harness.loop.explanations[job["id"]] = Explanation(Reason.NO_RESERVATION, {"head": 8})
    explained = api.get(f"/v1/jobs/{job['id']}/explain").json()
    assert explained["reason"] == "no_reservation"
    assert explained["message"].endswith(
        "jobs with a --time-limit let the scheduler reserve a start and backfill around it"
    )
    assert explained["remedy"].startswith("submit jobs with a --time-limit")
    listed = api.get(f"/v1/jobs/{job['id']}").json()["reason"]
    assert listed.startswith("no_reservation: waits behind job 8, which does not fit yet")
