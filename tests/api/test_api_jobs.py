"""The job routes end to end over the in-memory control plane: submit, list and paginate,
inspect, cancel, hold, release, events, explain and idempotent retries."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from allot.control.records import JobFilter
from allot.core.explain import Explanation, Reason
from allot.core.model import JobState, Resources
from allot.core.quota.config import QueueSpec, QuotaConfig, TenantSpec
from harness import Harness, InProcessTransport, add_token

BOB = "tok-bob-0123456789"
BASE_URL = "http://allot.test"

TRAIN: dict[str, Any] = {
    "name": "train",
    "tasks": 2,
    "resources": {"gpus": 4, "cpus": 8, "memory_mib": 65536},
    "flavors": ["H100-80G"],
    "command": ["python", "train.py", "--lr", "3e-4"],
    "workdir": "/home/alice/proj",
    "env": {"WANDB_API_KEY": "s3cr3t-value", "SEED": "7"},
    "runtime_estimate_seconds": 3600,
    "time_limit_seconds": 7200,
    "checkpointable": True,
}


def submit(api: httpx.Client, **changes: Any) -> dict[str, Any]:
    response = api.post("/v1/jobs", json={"command": "true", **changes})
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def test_submit_returns_the_created_job(api: httpx.Client, harness: Harness) -> None:
    response = api.post("/v1/jobs", json=TRAIN)
    assert response.status_code == 201
    job = response.json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["state"] == "pending"
    assert job["held"] is False
    assert (job["queue"], job["tenant"], job["user"], job["priority"]) == (
        "default",
        "default",
        "alice",
        0,
    )
    assert job["tasks"] == 2
    assert job["resources"] == {"gpus": 4.0, "cpus": 8.0, "memory_mib": 65536}
    assert job["command"] == TRAIN["command"]
    assert job["env_keys"] == ["SEED", "WANDB_API_KEY"]
    assert job["submitted_at"] == "2023-11-14T22:13:20Z"
    assert job["run"] is None
    stored = harness.store.get_job(job["id"]).job
    assert stored.tasks == (Resources(4000, 8000, 65536),) * 2
    assert stored.launch.env == TRAIN["env"]
    assert stored.launch.workdir == "/home/alice/proj"
    assert stored.runtime_estimate == 3600
    assert harness.loop.wakes == 1


def test_a_shell_string_runs_with_sh_and_a_fractional_gpu_is_milli(
    api: httpx.Client, harness: Harness
) -> None:
    job = submit(api, command="echo $HOME | tee out", resources={"gpus": 0.25})
    assert job["command"] == ["/bin/sh", "-c", "echo $HOME | tee out"]
    assert job["resources"]["gpus"] == 0.25
    assert harness.store.get_job(job["id"]).job.tasks[0].gpu_milli == 250


def test_a_priority_class_name_becomes_its_number(api: httpx.Client, harness: Harness) -> None:
    quotas = harness.store.quotas()
    classes = {"low": -10, "urgent": 100}
    config = QuotaConfig(quotas.tenants, quotas.queues, priority_classes=classes)
    harness.store.save_quotas(config, at=0)
    assert submit(api, priority="urgent")["priority"] == 100
    assert submit(api, priority=5)["priority"] == 5
    response = api.post("/v1/jobs", json={"command": "true", "priority": "sky-high"})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "priority", "rule": "unknown priority class 'sky-high'; known: low, urgent"}
    ]


TWO_TENANTS = QuotaConfig(
    (TenantSpec("default"), TenantSpec("vision")),
    (QueueSpec("default", "default"), QueueSpec("vision", "vision")),
)


def test_the_user_is_the_caller_and_the_tenant_the_queues(
    api: httpx.Client, harness: Harness
) -> None:
    harness.store.save_quotas(TWO_TENANTS, at=0)
    job = submit(api, queue="vision", hold=True)
    assert (job["tenant"], job["user"], job["held"]) == ("vision", "alice", True)
    assert submit(api, queue="vision", tenant="vision")["tenant"] == "vision"
    other = api.post("/v1/jobs", json={"command": "true", "queue": "vision", "tenant": "default"})
    assert other.status_code == 422
    assert other.json()["errors"] == [
        {"field": "tenant", "rule": "queue vision belongs to tenant 'vision', not 'default'"}
    ]
    # Nothing in the body says who submits.
    spoof = api.post("/v1/jobs", json={"command": "true", "user": "bob"})
    assert spoof.status_code == 422
    assert spoof.json()["errors"][0]["field"] == "user"


def test_get_returns_the_job_and_404_for_an_unknown_one(api: httpx.Client) -> None:
    job = submit(api)
    assert api.get(f"/v1/jobs/{job['id']}").json() == job
    missing = api.get("/v1/jobs/999")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "job 999 does not exist"


def test_list_filters_by_state_queue_user_and_tenant(
    api: httpx.Client, app: FastAPI, harness: Harness
) -> None:
    add_token(harness.store, BOB, "bob")
    harness.store.save_quotas(TWO_TENANTS, at=0)
    with httpx.Client(
        transport=InProcessTransport(app),
        base_url=BASE_URL,
        headers={"Authorization": f"Bearer {BOB}"},
    ) as bob:
        first = submit(bob)
    second = submit(api, queue="vision")
    third = submit(api)
    harness.start(third["id"])
    api.post(f"/v1/jobs/{first['id']}/cancel")

    def ids(**params: Any) -> list[int]:
        response = api.get("/v1/jobs", params=params)
        assert response.status_code == 200, response.text
        return [j["id"] for j in response.json()["items"]]

    assert ids() == [third["id"], second["id"], first["id"]]
    assert ids(state="pending") == [second["id"]]
    assert ids(state=["running", "cancelled"]) == [third["id"], first["id"]]
    assert ids(user="bob") == [first["id"]]
    assert ids(tenant="vision") == [second["id"]]
    assert ids(queue="default") == [third["id"], first["id"]]
    assert ids(queue="default", user="carol") == []


def test_an_unknown_queue_is_422_naming_the_known_ones(api: httpx.Client) -> None:
    submit(api)
    response = api.get("/v1/jobs", params={"queue": "nope"})
    assert response.status_code == 422
    problem = response.json()
    assert problem["errors"] == [
        {"field": "queue", "rule": "unknown queue 'nope'; known queues: default"}
    ]


def test_pages_walk_every_job_once_newest_first(api: httpx.Client) -> None:
    created = [submit(api)["id"] for _ in range(7)]
    seen: list[list[int]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["before"] = cursor
        page = api.get("/v1/jobs", params=params).json()
        seen.append([j["id"] for j in page["items"]])
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [created[6:3:-1], created[3:0:-1], created[0:1]]


def test_the_last_full_page_has_no_next_cursor(api: httpx.Client) -> None:
    for _ in range(3):
        submit(api)
    assert api.get("/v1/jobs", params={"limit": 3}).json()["next"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"before": "abc"}, "before"),
        ({"before": "-3"}, "before"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"state": "sleeping"}, "state[0]"),
    ],
)
def test_bad_list_parameters_are_422_naming_the_parameter(
    api: httpx.Client, params: dict[str, Any], field: str
) -> None:
    response = api.get("/v1/jobs", params=params)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_cancel_a_pending_job(api: httpx.Client) -> None:
    job = submit(api)
    cancelled = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["reason"] == "cancelled by alice"


def test_cancel_a_running_job_stops_its_run(api: httpx.Client, harness: Harness) -> None:
    job = submit(api, resources={"gpus": 2})
    harness.start(job["id"])
    stopping = api.post(f"/v1/jobs/{job['id']}/cancel").json()
    assert stopping["state"] == "running"
    run = stopping["run"]
    assert run["phase"] == "stopping"
    assert run["stop_reason"] == "cancelled by alice"
    assert run["placement"] == [{"node": "gpu-1", "devices": [0, 1], "gpu_fraction": 1.0}]
    assert run["stop_by"] == "2023-11-14T22:13:50Z"


def test_cancel_an_ended_job_is_a_conflict(api: httpx.Client, harness: Harness) -> None:
    job = submit(api)
    harness.start(job["id"])
    harness.finish(job["id"])
    response = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["type"] == "https://allot.dev/problems/conflict"
    assert "already succeeded" in response.json()["detail"]


def test_hold_and_release(api: httpx.Client, harness: Harness) -> None:
    job = submit(api)
    assert api.post(f"/v1/jobs/{job['id']}/hold").json()["held"] is True
    assert api.get(f"/v1/jobs/{job['id']}").json()["held"] is True
    assert api.post(f"/v1/jobs/{job['id']}/release").json()["held"] is False
    harness.start(job["id"])
    assert api.post(f"/v1/jobs/{job['id']}/hold").status_code == 409
    assert api.post("/v1/jobs/999/release").status_code == 404


def test_events_are_the_jobs_log_oldest_first(api: httpx.Client, harness: Harness) -> None:
    job = submit(api)
    harness.start(job["id"])
    harness.clock.advance(60)
    harness.finish(job["id"], JobState.FAILED, exit_code=3, reason="exit code 3")
    events = api.get(f"/v1/jobs/{job['id']}/events").json()
    assert [e["kind"] for e in events] == ["submitted", "starting", "running", "failed"]
    assert events[0]["actor"] == "alice"
    assert events[-1]["to_state"] == "failed"
    assert events[-1]["time"] == "2023-11-14T22:14:20Z"
    assert api.get("/v1/jobs/999/events").status_code == 404
    ended = api.get(f"/v1/jobs/{job['id']}").json()
    assert (ended["exit_code"], ended["run_count"]) == (3, 1)
    assert ended["attained_gpu_seconds"] == 0.0  # a CPU-only job holds no GPU


def test_explain_says_why(api: httpx.Client, harness: Harness) -> None:
    job = submit(api, resources={"gpus": 8})
    explained = api.get(f"/v1/jobs/{job['id']}/explain").json()
    assert explained["reason"] == "not_yet_considered"
    fields: dict[str, str | int | float] = {"tasks": 1, "gpu_milli_per_task": 8000}
    fields["shortfall"] = "only 4 GPUs are free"
    harness.loop.explanations[job["id"]] = Explanation(Reason.NO_CAPACITY, fields)
    explained = api.get(f"/v1/jobs/{job['id']}/explain").json()
    assert explained["state"] == "pending"
    assert explained["reason"] == "no_capacity"
    assert "only 4 GPUs are free" in explained["message"]
    assert explained["remedy"]
    assert explained["fields"]["gpu_milli_per_task"] == 8000
    api.post(f"/v1/jobs/{job['id']}/hold")
    assert api.get(f"/v1/jobs/{job['id']}/explain").json()["reason"] == "held"
    api.post(f"/v1/jobs/{job['id']}/release")
    harness.start(job["id"])
    assert api.get(f"/v1/jobs/{job['id']}/explain").json()["reason"] == "running"


def test_the_same_idempotency_key_returns_the_same_job(api: httpx.Client) -> None:
    headers = {"Idempotency-Key": "retry-1"}
    first = api.post("/v1/jobs", json=TRAIN, headers=headers)
    # The same request spelled differently (a default written out) is the same request.
    again = api.post("/v1/jobs", json={**TRAIN, "queue": "default"}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert len(api.get("/v1/jobs").json()["items"]) == 1


def test_a_reused_key_with_a_different_body_is_a_conflict(api: httpx.Client) -> None:
    headers = {"Idempotency-Key": "retry-2"}
    assert api.post("/v1/jobs", json=TRAIN, headers=headers).status_code == 201
    response = api.post("/v1/jobs", json={**TRAIN, "tasks": 1}, headers=headers)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert len(api.get("/v1/jobs").json()["items"]) == 1


def test_an_idempotency_key_over_200_characters_is_refused(api: httpx.Client) -> None:
    response = api.post("/v1/jobs", json=TRAIN, headers={"Idempotency-Key": "k" * 201})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["idempotency-key"]


def test_cpus_and_memory_left_out_come_from_the_node_shape(
    api: httpx.Client, harness: Harness
) -> None:
    # Both harness nodes have 8 CPUs and 64 GiB per GPU.
    job = submit(api, resources={"gpus": 2}, flavors=["A100-40G"])
    assert job["resources"] == {"gpus": 2.0, "cpus": 16.0, "memory_mib": 131072}
    assert harness.store.get_job(job["id"]).job.tasks[0] == Resources(2000, 16000, 131072)
    half = submit(api, resources={"gpus": 0.5, "cpus": 1})
    assert half["resources"] == {"gpus": 0.5, "cpus": 1.0, "memory_mib": 32768}
    cpu_only = submit(api, resources={"cpus": None, "memory_mib": None})
    assert cpu_only["resources"] == {"gpus": 0.0, "cpus": 1.0, "memory_mib": 1024}


def test_the_openapi_document_says_how_cpus_default(anon: httpx.Client) -> None:
    schema = anon.get("/v1/openapi.json").json()["components"]["schemas"]["TaskResources"]
    assert "node's CPUs" in schema["properties"]["cpus"]["description"]
    assert "node's memory" in schema["properties"]["memory_mib"]["description"]
    assert "cpus" not in schema.get("required", [])


def test_without_a_default_queue_the_error_names_the_queues_and_how_to_pick_one(
    api: httpx.Client, harness: Harness
) -> None:
    quotas = harness.store.quotas()
    queues = (replace(quotas.queues[0], name="train"), replace(quotas.queues[0], name="eval"))
    harness.store.save_quotas(QuotaConfig(quotas.tenants, queues), at=0)
    response = api.post("/v1/jobs", json={"command": "true"})
    assert response.status_code == 422
    (problem,) = response.json()["errors"]
    assert problem["field"] == "queue"
    assert "no queue 'default'" in problem["rule"]
    assert "known queues: eval, train" in problem["rule"]
    assert "--queue train" in problem["rule"]
    assert harness.store.list_jobs(JobFilter()) == []
