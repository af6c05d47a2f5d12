"""Submitting GPU memory, flavor alternatives, speeds and colocation through the API."""

from __future__ import annotations

import httpx

from harness import Harness


def test_placement_options_reach_the_stored_job(api: httpx.Client, harness: Harness) -> None:
    response = api.post(
        "/v1/jobs",
        json={
            "command": "true",
            "tasks": 2,
            "resources": {"gpus": 1, "cpus": 1, "memory_mib": 1024, "gpu_memory_mib": 40960},
            "flavors": ["H100-80G"],
            "flavor_order": False,
            "speeds": {"H100-80G": 2.0},
            "colocate": "rack",
            "colocate_required": True,
        },
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert (job["colocate"], job["colocate_required"], job["flavor_order"]) == ("rack", True, False)
    assert job["gpu_memory_mib"] == 40960
    spec = harness.store.get_job(job["id"]).spec()
    assert spec.tasks[0].gpu_memory_mib == 40960
    assert spec.speed_on("H100-80G") == 2.0


def test_bad_placement_options_name_the_field(api: httpx.Client) -> None:
    for body, field in (
        ({"resources": {"gpu_memory_mib": 1024}}, "gpu_memory_mib"),
        ({"colocate": "zone"}, "colocate"),
        ({"colocate_required": True}, "colocate_required"),
        ({"speeds": {"H100-80G": 0}}, "speeds"),
    ):
        response = api.post("/v1/jobs", json={"command": "true", **body})
        assert response.status_code == 422, body
        assert field in response.text
