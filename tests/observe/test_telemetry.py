"""GPU telemetry through a fake NVML (the ``pynvml`` module's functions, faked at the library
boundary): per-run summaries from the samples, stored and shown by the API, metrics without
job ids, and telemetry that is off and says why without a GPU."""

from __future__ import annotations

import httpx
import pytest

from allot.api.app import create_app
from allot.control.principal import Principal
from allot.control.records import Launch, NewJob
from allot.core.model import Resources
from allot.observe.metrics import ControlMetrics, samples
from allot.observe.telemetry import GpuTelemetry
from fake_nvml import FakeNvml
from harness import Harness, InProcessTransport, make_harness

TOKEN = "tok-root-0123456789"


@pytest.fixture
def harness() -> Harness:
    return make_harness(tokens={TOKEN: "root"})


def opened(harness: Harness, nvml: FakeNvml) -> GpuTelemetry:
    return GpuTelemetry.open(harness.store, harness.clock, "gpu-1", nvml, persist_every=1000)


def test_a_runs_samples_become_its_summary_when_it_ends(harness: Harness) -> None:
    nvml = FakeNvml(watts={0: 300.0, 1: 100.0}, memory={0: 10 << 30, 1: 30 << 30})
    telemetry = opened(harness, nvml)
    record, _ = harness.control.submit(_job(2), principal=_admin())
    harness.start(record.id)  # devices 0 and 1 of gpu-1
    for util in (0, 50, 100, 100, 100):  # five samples, 10 s apart
        nvml.util = {0: util, 1: util, 2: 99}
        telemetry.sample()
        harness.clock.advance(10)
    harness.finish(record.id)
    telemetry.sample()
    [summary] = harness.store.gpu_summaries(record.id)
    assert summary.samples == 10  # 5 samples x 2 devices
    assert summary.devices == (0, 1)
    assert summary.mean_utilization == pytest.approx(0.7)
    assert summary.p95_utilization == pytest.approx(1.0)
    assert summary.peak_memory_bytes == 40 << 30
    assert summary.energy_joules == pytest.approx(4 * 10 * 400)  # 4 intervals of 10 s, 400 W
    assert summary.mean_sm_active is None


def test_gpm_sm_activity_is_recorded_where_supported(harness: Harness) -> None:
    telemetry = opened(harness, FakeNvml(gpm=True, sm_percent=40.0))
    record, _ = harness.control.submit(_job(1), principal=_admin())
    harness.start(record.id)
    telemetry.sample()  # the first GPM sample: nothing to compare with yet
    harness.clock.advance(5)
    telemetry.sample()
    harness.finish(record.id)
    telemetry.sample()
    [summary] = harness.store.gpu_summaries(record.id)
    assert summary.mean_sm_active == pytest.approx(0.4)


def test_metrics_carry_node_gpu_and_queue_never_a_job(harness: Harness) -> None:
    nvml = FakeNvml(util={0: 80})
    telemetry = opened(harness, nvml)
    metrics = ControlMetrics(harness.store, harness.clock)
    metrics.add(telemetry)
    record, _ = harness.control.submit(_job(1), principal=_admin())
    harness.start(record.id)
    telemetry.sample()
    harness.clock.advance(5)
    telemetry.sample()
    harness.finish(record.id)
    telemetry.sample()
    found = samples(metrics.exposition().decode())
    [on] = found["allot_gpu_telemetry_enabled"]
    assert on.value == 1
    util = {s.labels["gpu"]: s.value for s in found["allot_gpu_utilization_ratio"]}
    assert util == {"0": 0.8, "1": 0.0, "2": 0.0, "3": 0.0}
    energy = {s.labels["queue"]: s.value for s in found["allot_gpu_energy_joules"]}
    assert energy == {"default": pytest.approx(300.0)}  # 5 s at 60 W
    runs = [s for s in found["allot_run_gpu_utilization_ratio"] if s.name.endswith("_count")]
    assert [s.value for s in runs] == [1]
    keys = {k for family in found.values() for s in family for k in s.labels}
    assert keys <= {"node", "gpu", "queue", "le", "state", "tenant", "flavor", "status",
                    "reason", "kind"}  # fmt: skip


def test_the_api_shows_a_jobs_gpu_usage(harness: Harness) -> None:
    telemetry = opened(harness, FakeNvml(util={0: 30}))
    record, _ = harness.control.submit(_job(1), principal=_admin())
    harness.start(record.id)
    telemetry.sample()
    harness.finish(record.id)
    telemetry.sample()
    app = create_app(harness.control)
    with httpx.Client(transport=InProcessTransport(app), base_url="http://t",
                      headers={"Authorization": f"Bearer {TOKEN}"}) as api:  # fmt: skip
        [usage] = api.get(f"/v1/jobs/{record.id}").json()["gpu_usage"]
        assert usage["mean_utilization"] == pytest.approx(0.3)
        assert usage["devices"] == [0]
        listed = api.get("/v1/jobs", params={"state": "succeeded"}).json()["items"]
        assert listed[0]["gpu_usage"] is None  # listings leave it out


def test_without_a_driver_telemetry_is_off_and_says_why(harness: Harness) -> None:
    telemetry = opened(harness, FakeNvml(init_error="NVML Shared Library Not Found"))
    assert not telemetry.enabled
    assert telemetry.status == "off (NVML did not start: NVML Shared Library Not Found)"
    metrics = ControlMetrics(harness.store, harness.clock)
    metrics.add(telemetry)
    found = samples(metrics.exposition().decode())
    assert [s.value for s in found["allot_gpu_telemetry_enabled"]] == [0]
    assert found["allot_gpu_utilization_ratio"] == []
    telemetry.start()  # nothing to sample: no thread
    telemetry.close()


def test_no_gpu_is_off_too(harness: Harness) -> None:
    telemetry = opened(harness, FakeNvml(count=0))
    assert telemetry.status == "off (NVML sees no GPU on this machine)"


def _admin() -> Principal:
    return Principal.admin("alice")


def _job(gpus: int) -> NewJob:
    return NewJob(
        name="t", tenant="default", user="alice", queue="default",
        tasks=(Resources.of(gpus=gpus, cpus=1, memory_mib=64),), launch=Launch(("/bin/true",)),
    )  # fmt: skip
