"""The cluster routes: nodes (list, drain, undrain) and queues."""

from __future__ import annotations

import httpx

from allot.core.model import NodeState
from allot.core.quota.config import QueueSpec, QuotaConfig, ResourceQuota, TenantSpec
from harness import Harness


def test_nodes_are_listed_in_whole_units(api: httpx.Client) -> None:
    nodes = api.get("/v1/nodes").json()
    assert nodes[0] == {
        "name": "gpu-1",
        "flavor": "H100-80G",
        "gpus": 8,
        "cpus": 64.0,
        "memory_mib": 524288,
        "topology": ["zone-a", "rack-1", "gpu-1"],
        "state": "up",
        "gpu_source": "declared",
        "gpu_sharing": "",
        "gpu_memory_mib": 0,
        "check": None,
    }
    assert [n["name"] for n in nodes] == ["gpu-1", "gpu-2"]


def test_drain_and_undrain(api: httpx.Client, harness: Harness) -> None:
    drained = api.post("/v1/nodes/gpu-2/drain")
    assert drained.status_code == 200
    assert drained.json()["state"] == "draining"
    assert harness.store.nodes()[1].state is NodeState.DRAINING
    assert harness.loop.wakes == 1
    events = harness.store.events()
    assert (events[-1].actor, events[-1].data["node"]) == ("alice", "gpu-2")
    assert api.post("/v1/nodes/gpu-2/undrain").json()["state"] == "up"


def test_drain_and_undrain_answer_the_node_as_the_list_does(api: httpx.Client) -> None:
    drained = api.post("/v1/nodes/gpu-2/drain").json()
    listed = {n["name"]: n for n in api.get("/v1/nodes").json()}
    assert drained == listed["gpu-2"]
    assert drained["gpu_source"] == "declared"
    undrained = api.post("/v1/nodes/gpu-2/undrain").json()
    assert undrained == {**drained, "state": "up"}


def test_draining_an_unknown_node_is_404(api: httpx.Client) -> None:
    response = api.post("/v1/nodes/gpu-9/drain")
    assert response.status_code == 404
    assert response.json()["detail"] == "node gpu-9 does not exist"


def test_queues_show_quota_use_and_counts(api: httpx.Client, harness: Harness) -> None:
    quotas = {("H100-80G", "gpu"): ResourceQuota(8000), ("H100-80G", "cpu"): ResourceQuota(64000)}
    config = QuotaConfig(
        (TenantSpec("default"), TenantSpec("vision")),
        (QueueSpec("default", "default"), QueueSpec("vision", "vision", quotas=quotas)),
    )
    harness.store.save_quotas(config, at=0)
    running = api.post(
        "/v1/jobs", json={"command": "true", "queue": "vision", "resources": {"gpus": 0.5}}
    ).json()
    harness.start(running["id"])
    api.post("/v1/jobs", json={"command": "true", "queue": "vision"})
    api.post("/v1/jobs", json={"command": "true"})
    queues = api.get("/v1/queues").json()
    assert queues == [
        {
            "name": "default",
            "tenant": "default",
            "cohort": None,
            "nominal_gpus": {},
            "used_gpus": {},
            "pending": 1,
            "running": 0,
        },
        {
            "name": "vision",
            "tenant": "vision",
            "cohort": None,
            "nominal_gpus": {"H100-80G": 8.0},
            "used_gpus": {"H100-80G": 0.5},
            "pending": 1,
            "running": 1,
        },
    ]


def test_a_node_check_with_a_number_for_drain_is_refused_and_not_stored(
    api: httpx.Client, harness: Harness
) -> None:
    body = {"device": "0", "drain": 0, "measurements": [{"name": "memory", "device": "0",
            "value": 5.0}]}  # fmt: skip
    response = api.post("/v1/nodes/gpu-1/checks", json=body)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["drain"]
    assert harness.store.node_checks() == {}


def test_a_usage_report_with_too_many_buckets_is_refused_naming_the_bucket(
    api: httpx.Client,
) -> None:
    response = api.get("/v1/usage", params={"since": "30d", "bucket": "194s"})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["bucket"]
    assert api.get("/v1/usage", params={"since": "30d", "bucket": "1d"}).status_code == 200
