"""POST /v1/jobs/batch: many jobs in one request, checked first and stored together."""

from __future__ import annotations

import httpx

from harness import Harness


def job(**extra: object) -> dict[str, object]:
    return {"command": ["true"], "resources": {"gpus": 1}, **extra}


def test_a_batch_is_stored_in_order(api: httpx.Client) -> None:
    response = api.post("/v1/jobs/batch", json={"jobs": [job(name=f"sweep-{i}") for i in range(3)]})
    assert response.status_code == 201
    names = [j["name"] for j in response.json()]
    assert names == ["sweep-0", "sweep-1", "sweep-2"]
    ids = [j["id"] for j in response.json()]
    assert ids == sorted(ids)


def test_one_bad_job_rejects_the_batch_and_stores_nothing(
    api: httpx.Client, harness: Harness
) -> None:
    before = len(api.get("/v1/jobs").json()["items"])
    response = api.post("/v1/jobs/batch", json={"jobs": [job(), job(queue="nope")]})
    assert response.status_code == 422
    problem = response.json()
    assert problem["errors"][0]["field"] == "jobs[1].queue"
    assert len(api.get("/v1/jobs").json()["items"]) == before
    invalid = api.post("/v1/jobs/batch", json={"jobs": [job(), job(resources={"gpus": -1})]})
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "jobs[1].resources.gpus"


def test_a_retried_batch_returns_the_same_jobs(api: httpx.Client) -> None:
    body = {"jobs": [job(name="a"), job(name="b")]}
    first = api.post("/v1/jobs/batch", json=body, headers={"Idempotency-Key": "sweep-7"})
    again = api.post("/v1/jobs/batch", json=body, headers={"Idempotency-Key": "sweep-7"})
    assert [j["id"] for j in first.json()] == [j["id"] for j in again.json()]


def test_batch_limits(api: httpx.Client) -> None:
    assert api.post("/v1/jobs/batch", json={"jobs": []}).status_code == 422
    assert api.post("/v1/jobs/batch", json={"jobs": [job()] * 1001}).status_code == 422
