"""Dependencies over the API: ``after`` on POST /v1/jobs and in batches, arrays named by their
first job, refusals naming the ``after`` field (unknown job, the job itself, bad syntax, a
dependency that can never hold), jobs showing their dependencies and why they wait, and the
OpenAPI schema documenting the wire form."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from allot.control.dependencies import judge_job
from allot.core.model import JobState
from harness import Harness

VALID: dict[str, Any] = {"command": ["python", "train.py"], "resources": {"gpus": 1}}


def _submit(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = api.post("/v1/jobs", json={**VALID, **fields})
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def _errors(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 422, response.text
    errors: list[dict[str, str]] = response.json()["errors"]
    return errors


def test_a_job_shows_its_dependencies(api: httpx.Client) -> None:
    first = _submit(api)["id"]
    second = _submit(api)["id"]
    after = [{"job": first}, {"job": second, "condition": "any"}]
    job = _submit(api, after=after)
    expected = [{"job": first, "condition": "ok"}, {"job": second, "condition": "any"}]
    assert job["after"] == expected
    assert job["array_id"] is None
    assert api.get(f"/v1/jobs/{job['id']}").json()["after"] == expected


@pytest.mark.parametrize(
    ("after", "field", "rule"),
    [
        ("12", "after", "valid list"),
        ([12], "after[0]", "valid dictionary"),
        ([{"job": "12"}], "after[0].job", "valid integer"),
        ([{"job": 0}], "after[0].job", "greater than or equal to 1"),
        ([{"job": 1, "condition": "afterok"}], "after[0].condition", "'ok', 'failed' or 'any'"),
        ([{"job": 1, "when": "ok"}], "after[0].when", "Extra inputs are not permitted"),
        ([{"job": 1}, {"job": 1, "condition": "any"}], "after", "names job 1 twice"),
        ([{"job": 1}] * 101, "after", "at most 100 items"),
    ],
)
def test_malformed_dependencies_are_named(
    api: httpx.Client, harness: Harness, after: object, field: str, rule: str
) -> None:
    errors = _errors(api.post("/v1/jobs", json={**VALID, "after": after}))
    assert [e["field"] for e in errors] == [field]
    assert rule in errors[0]["rule"]
    assert harness.store.pending_jobs() == []


def test_an_unknown_job_or_the_job_itself_is_refused(api: httpx.Client, harness: Harness) -> None:
    first = _submit(api)["id"]
    errors = _errors(api.post("/v1/jobs", json={**VALID, "after": [{"job": 99}]}))
    assert errors == [{"field": "after[0].job", "rule": "job 99 does not exist"}]
    # The next job's own id does not exist until it is stored: it cannot name itself.
    mine = first + 1
    errors = _errors(api.post("/v1/jobs", json={**VALID, "after": [{"job": mine}]}))
    assert errors == [{"field": "after[0].job", "rule": f"job {mine} does not exist"}]
    assert [r.id for r in harness.store.pending_jobs()] == [first]


def test_a_dependency_that_can_never_hold_is_refused(api: httpx.Client, harness: Harness) -> None:
    failed = _submit(api)["id"]
    harness.start(failed)
    harness.finish(failed, JobState.FAILED, 1)
    body = {**VALID, "after": [{"job": failed, "condition": "any"}, {"job": failed + 0}]}
    errors = _errors(api.post("/v1/jobs", json=body))
    assert [e["field"] for e in errors] == ["after"]  # named twice: caught by the schema
    errors = _errors(api.post("/v1/jobs", json={**VALID, "after": [{"job": failed}]}))
    assert errors == [
        {"field": "after[0]", "rule": f"job {failed} failed, so 'ok' (afterok) can never hold"}
    ]
    ok = _submit(api, after=[{"job": failed, "condition": "failed"}])
    assert ok["after"] == [{"job": failed, "condition": "failed"}]


def test_a_batch_names_the_job_and_its_dependency(api: httpx.Client, harness: Harness) -> None:
    body = {"jobs": [VALID, {**VALID, "after": [{"job": 42}]}]}
    errors = _errors(api.post("/v1/jobs/batch", json=body))
    assert errors == [{"field": "jobs[1].after[0].job", "rule": "job 42 does not exist"}]
    assert harness.store.pending_jobs() == []


def test_an_array_is_named_by_its_first_job(api: httpx.Client, harness: Harness) -> None:
    response = api.post("/v1/jobs/batch", json={"jobs": [VALID] * 3, "array": True})
    assert response.status_code == 201, response.text
    members = response.json()
    array_id = members[0]["id"]
    assert [m["array_id"] for m in members] == [array_id] * 3
    more = api.post("/v1/jobs/batch", json={"jobs": [VALID], "array_id": array_id}).json()
    assert more[0]["array_id"] == array_id
    waiting = api.post(
        "/v1/jobs/batch",
        json={"jobs": [{**VALID, "after": [{"job": array_id}]}] * 2, "array": True},
    ).json()
    progress = harness.store.dependency_progress([array_id])
    assert progress[array_id].members == 4
    record = harness.store.get_job(waiting[0]["id"])
    assert judge_job(record.job.after, progress).wait is not None


def test_array_requests_are_checked(api: httpx.Client) -> None:
    single = _submit(api)["id"]
    errors = _errors(api.post("/v1/jobs/batch", json={"jobs": [VALID], "array_id": single}))
    assert errors[0]["field"] == "array_id"
    assert "does not name an array" in errors[0]["rule"]
    body = {"jobs": [VALID], "array": True, "array_id": single}
    assert "not both" in _errors(api.post("/v1/jobs/batch", json=body))[0]["rule"]


def test_a_waiting_job_says_why_in_job_and_explain(api: httpx.Client, harness: Harness) -> None:
    first = _submit(api)["id"]
    second = _submit(api, after=[{"job": first}])["id"]
    record = harness.store.get_job(second)
    progress = harness.store.dependency_progress([first])
    wait = judge_job(record.job.after, progress).wait
    assert wait is not None
    harness.loop.waits[second] = wait  # what the loop's cycle would have found
    assert api.get(f"/v1/jobs/{second}").json()["reason"] == (
        f"dependency: waits for job {first} to succeed"
    )
    explained = api.get(f"/v1/jobs/{second}/explain").json()
    assert explained["reason"] == "dependency"
    assert explained["message"] == f"waits for job {first} to succeed"
    assert explained["fields"]["after"] == first


def test_the_openapi_schema_documents_dependencies(api: httpx.Client) -> None:
    schemas = api.get("/v1/openapi.json").json()["components"]["schemas"]
    dependency = schemas["Dependency"]
    assert dependency["required"] == ["job"]
    assert dependency["properties"]["condition"]["enum"] == ["ok", "failed", "any"]
    assert "afternotok" in dependency["properties"]["condition"]["description"]
    submission = schemas["JobSubmission"]["properties"]["after"]
    assert submission["items"] == {"$ref": "#/components/schemas/Dependency"}
    assert "array" in schemas["JobBatch"]["properties"]
