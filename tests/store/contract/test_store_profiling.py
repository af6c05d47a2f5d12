"""What profiling keeps: a job's profiling request is stored with it and read back by every
read; node checks are appended and a node's latest is the one shown; step times are kept one
per (job class, flavor), and an estimate never replaces a measurement."""

from __future__ import annotations

from dataclasses import replace

from allot.control.ports import Store
from allot.control.records import FlavorSpeed, Launch, NodeCheckRecord, ProfileRequest
from store_builders import new_job


def test_a_profiling_request_is_stored_with_the_job(store: Store) -> None:
    plain = new_job()
    profiled = replace(plain, launch=replace(plain.launch, profile=ProfileRequest(steps=4, skip=2)))
    first = store.submit(plain, at=0.0, actor="ada")[0].id
    second = store.submit(profiled, at=1.0, actor="ada")[0].id
    assert store.get_job(first).job.launch.profile is None
    assert store.get_job(second).job.launch.profile == ProfileRequest(4, 2)
    [listed] = [r for r in store.pending_jobs() if r.id == second]
    assert listed.job.launch == Launch(
        ("python", "train.py", "--epochs", "3"), "/work", {"SEED": "7"}, ProfileRequest(4, 2)
    )
    batch = store.submit_many(
        [profiled], at=2.0, actor="ada", idempotency_keys=[None], request_hashes=[None]
    )
    assert store.get_job(batch[0][0].id).job.launch.profile == ProfileRequest(4, 2)


def _check(node: str, at: float, healthy: bool | None) -> NodeCheckRecord:
    result = {
        "name": "memory",
        "device": "cpu",
        "value": 20.5,
        "unit": "GB/s",
        "expected": None,
        "ok": None,
    }
    return NodeCheckRecord(0, node, "cpu", at, healthy, f"checked at {at}", "cpu", (result,))


def test_node_checks_are_kept_and_the_latest_per_node_is_shown(store: Store) -> None:
    assert store.node_checks() == {}
    first = store.record_node_check(_check("n1", 10.0, True))
    store.record_node_check(_check("n2", 11.0, None))
    latest = store.record_node_check(_check("n1", 12.0, False))
    assert first.id < latest.id
    checks = store.node_checks()
    assert set(checks) == {"n1", "n2"}
    assert checks["n1"] == latest
    assert checks["n1"].healthy is False
    assert checks["n2"].healthy is None
    assert dict(checks["n1"].results[0])["value"] == 20.5


def test_an_estimate_never_replaces_a_measurement(store: Store) -> None:
    store.record_speeds(
        [
            FlavorSpeed("train", "H100-SXM", 0.10, "estimated", 3, 1.0),
            FlavorSpeed("train", "L4", 0.90, "measured", 4, 1.0),
            FlavorSpeed("eval", "L4", 0.20, "estimated", 5, 1.0),
        ]
    )
    store.record_speeds(
        [
            FlavorSpeed("train", "H100-SXM", 0.12, "measured", 6, 2.0),
            FlavorSpeed("train", "L4", 0.50, "estimated", 7, 2.0),
        ]
    )
    assert store.flavor_speeds("train") == [
        FlavorSpeed("train", "H100-SXM", 0.12, "measured", 6, 2.0),
        FlavorSpeed("train", "L4", 0.90, "measured", 4, 1.0),
    ]
    assert [(s.job_class, s.flavor) for s in store.flavor_speeds()] == [
        ("eval", "L4"),
        ("train", "H100-SXM"),
        ("train", "L4"),
    ]
