"""Prometheus metrics: the cycle observer, the scrape-time gauges, the request counter and who
may scrape ``/metrics``; parsed with prometheus_client's own text parser."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.samples import Sample

from allot.api.app import create_app
from allot.control.credentials import hash_token
from allot.control.loop import SchedulingLoop
from allot.control.principal import Principal, Role
from allot.control.records import Launch, NewJob
from allot.control.registry import ExecutorRegistry
from allot.core.model import Resources
from allot.core.policy import get_policy
from allot.core.quota.config import QueueSpec, QuotaConfig, ResourceQuota, TenantSpec
from allot.observe.metrics import ControlMetrics, TimedExecutors, samples
from harness import Harness, InProcessTransport, add_token, make_harness

SCRAPE = "scrape-token-0123456789"
BASE = "http://allot.test"
QUOTAS = QuotaConfig(
    (TenantSpec("vision"),),
    (QueueSpec("train", "vision", quotas={("H100-80G", "gpu"): ResourceQuota(2000)}),),
)


def job(gpus: float = 1) -> NewJob:
    return NewJob(
        name="t", tenant="vision", user="alice", queue="train",
        tasks=(Resources.of(gpus=gpus, cpus=1, memory_mib=64),), flavors=("H100-80G",),
        launch=Launch(("/bin/true",)),
    )  # fmt: skip


def value(found: dict[str, list[Sample]], family: str, name: str, **labels: str) -> float:
    for sample in found[family]:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return float(sample.value)
    raise AssertionError(f"no sample {name} {labels} in {found[family]}")


@dataclass
class World:
    harness: Harness
    loop: SchedulingLoop
    metrics: ControlMetrics

    def submit(self, gpus: float = 1) -> int:
        record, _ = self.harness.control.submit(job(gpus), principal=Principal.admin("alice"))
        return record.id

    def scrape(self) -> dict[str, list[Sample]]:
        return samples(self.metrics.exposition().decode())


@pytest.fixture
def world() -> Iterator[World]:
    harness = make_harness(quotas=QUOTAS)
    metrics = ControlMetrics(harness.store, harness.clock, cache_seconds=0)
    executors = TimedExecutors(ExecutorRegistry.of(harness.executor), metrics.launch_seconds_of)
    loop = SchedulingLoop(harness.store, executors, harness.clock, get_policy("allot"))
    loop.subscribe(metrics)
    yield World(harness, loop, metrics)
    loop.close()


def test_a_cycle_counts_placements_waits_launches_and_its_duration(world: World) -> None:
    first = world.submit(2)
    world.harness.clock.advance(30)
    world.submit(4)  # more than the queue's nominal 2 GPUs: waits on quota
    world.loop.run_once()
    found = world.scrape()
    assert value(found, "allot_placements", "allot_placements_total", flavor="H100-80G") == 1
    assert value(found, "allot_scheduling_cycle_duration_seconds",
                 "allot_scheduling_cycle_duration_seconds_count") >= 1  # fmt: skip
    wait = "allot_job_queue_wait_seconds"
    assert value(found, wait, f"{wait}_count", queue="train") == 1
    assert value(found, wait, f"{wait}_sum", queue="train") == pytest.approx(30)
    start = "allot_job_start_latency_seconds"
    assert value(found, start, f"{start}_count") == 1  # the first cycle to see it started it
    assert value(found, start, f"{start}_sum") == pytest.approx(30)
    launch = "allot_executor_launch_duration_seconds"
    assert value(found, launch, f"{launch}_count", pool="local") == 1
    reasons = {s.labels["reason"]: s.value for s in found["allot_pending_jobs_by_reason"]}
    assert sum(reasons.values()) == 1
    assert value(found, "allot_jobs", "allot_jobs", state="running", queue="train",
                 tenant="vision") == 1  # fmt: skip
    assert value(found, "allot_jobs", "allot_jobs", state="pending", queue="train",
                 tenant="vision") == 1  # fmt: skip
    labels = {"queue": "train", "tenant": "vision", "flavor": "H100-80G"}
    assert value(found, "allot_queue_nominal_gpus", "allot_queue_nominal_gpus", **labels) == 2
    assert value(found, "allot_queue_used_gpus", "allot_queue_used_gpus", **labels) == 2
    assert value(found, "allot_queue_borrowed_gpus", "allot_queue_borrowed_gpus", **labels) == 0
    assert value(found, "allot_node_gpus_allocated", "allot_node_gpus_allocated",
                 node="gpu-1", flavor="H100-80G") == 2  # fmt: skip
    assert value(found, "allot_gpus", "allot_gpus", flavor="H100-80G", status="free") == 6
    assert first


def test_start_latency_counts_only_jobs_that_found_room_at_once(world: World) -> None:
    world.submit(2)
    world.harness.clock.advance(0.5)
    world.loop.run_once()
    world.submit(2)  # the queue's 2 GPUs are taken: it waits for room
    world.loop.run_once()
    world.harness.finish(1)
    world.harness.clock.advance(60)
    world.loop.run_once()
    found = world.scrape()
    start = "allot_job_start_latency_seconds"
    assert value(found, start, f"{start}_count") == 1
    assert value(found, start, f"{start}_sum") == pytest.approx(0.5)
    assert value(found, "allot_placements", "allot_placements_total", flavor="H100-80G") == 2


def test_no_label_holds_a_job_id_or_a_user(world: World) -> None:
    ids = {str(world.submit()) for _ in range(3)}
    world.loop.run_once()
    for family in world.scrape().values():
        for sample in family:
            assert not ids & set(sample.labels.values()), sample
            assert "alice" not in sample.labels.values(), sample


# ------------------------------------------------------------------ /metrics over HTTP


@pytest.fixture
def client(world: World) -> Iterator[httpx.Client]:
    store = world.harness.store
    add_token(store, "t-root", "root")
    add_token(store, "t-max", "max", cluster_admin=False, roles={"vision": Role.MEMBER})
    app = create_app(world.harness.control, metrics=world.metrics,
                     scrape_token_hash=hash_token(SCRAPE))  # fmt: skip
    with httpx.Client(transport=InProcessTransport(app), base_url=BASE) as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_scrape_token_and_cluster_admins_may_scrape(client: httpx.Client) -> None:
    for token in (SCRAPE, "t-root"):
        answer = client.get("/metrics", headers=bearer(token))
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "allot_scheduling_cycle_duration_seconds" in answer.text


def test_nobody_else_may_scrape(client: httpx.Client) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer("not-a-token")).status_code == 401
    member = client.get("/metrics", headers=bearer("t-max"))
    assert member.status_code == 403
    assert "allot_jobs" not in member.text


def test_the_scrape_token_opens_nothing_else(client: httpx.Client) -> None:
    assert client.get("/v1/jobs", headers=bearer(SCRAPE)).status_code == 401


def test_requests_are_counted_by_handler_and_code(client: httpx.Client) -> None:
    client.get("/v1/jobs/12345", headers=bearer("t-root"))
    client.get("/v1/jobs")  # no token: answered before routing
    found = samples(client.get("/metrics", headers=bearer(SCRAPE)).text)
    family = "allot_http_requests"
    name = "allot_http_requests_total"
    assert value(found, family, name, method="GET", handler="get_job", code="404") == 1
    assert value(found, family, name, method="GET", handler="unrouted", code="401") == 1
    handlers = {s.labels["handler"] for s in found[family]}
    assert not any("12345" in h for h in handlers)
    latency = "allot_http_request_duration_seconds"
    assert value(found, latency, f"{latency}_count", handler="get_job") == 1


def test_the_api_without_metrics_serves_no_metrics(world: World) -> None:
    app = create_app(world.harness.control)
    with httpx.Client(transport=InProcessTransport(app), base_url=BASE) as http:
        assert http.get("/metrics", headers=bearer("t-root")).status_code == 404
