"""Traces of each job's way to running, recorded with the SDK's in-memory exporter: one trace
per first start, submit -> decision -> launch -> running, and nothing when nothing started."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from allot.control.loop import SchedulingLoop
from allot.control.ports import RunState, RunStatus
from allot.control.principal import Principal
from allot.control.records import Launch, NewJob
from allot.core.model import Resources
from allot.core.policy import get_policy
from allot.observe.tracing import NS, JobTracing, TracingError, endpoint_from, otlp_tracing
from harness import FakeExecutor, Harness, make_harness


class Busy(FakeExecutor):
    def status(self, run_id: str, num_tasks: int) -> RunStatus:
        return RunStatus(run_id, RunState.RUNNING, (None,) * num_tasks)


@pytest.fixture
def traced() -> Iterator[tuple[Harness, SchedulingLoop, InMemorySpanExporter]]:
    harness = make_harness()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    loop = SchedulingLoop(harness.store, Busy(harness.executor.nodes), harness.clock,
                          get_policy("allot"))  # fmt: skip
    loop.subscribe(JobTracing(provider, harness.clock))
    yield harness, loop, exporter
    loop.close()
    provider.shutdown()


def submit(harness: Harness, gpus: int = 2) -> int:
    new = NewJob(
        name="t", tenant="default", user="alice", queue="default",
        tasks=(Resources.of(gpus=gpus, cpus=1, memory_mib=64),), launch=Launch(("/bin/true",)),
    )  # fmt: skip
    record, _ = harness.control.submit(new, principal=Principal.admin("alice"))
    return record.id


def test_a_first_start_is_one_trace_from_submission_to_running(
    traced: tuple[Harness, SchedulingLoop, InMemorySpanExporter],
) -> None:
    harness, loop, exporter = traced
    submitted = harness.clock.now()
    job_id = submit(harness)
    harness.clock.advance(7)
    loop.run_once()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {
        "allot.scheduling_cycle", "allot.job", "allot.job.queued", "allot.job.launch",
    }  # fmt: skip
    root, queued, launch = spans["allot.job"], spans["allot.job.queued"], spans["allot.job.launch"]
    assert root.parent is None
    assert queued.parent is not None
    assert queued.parent.span_id == root.context.span_id
    assert launch.parent is not None
    assert launch.parent.span_id == root.context.span_id
    assert {queued.context.trace_id, launch.context.trace_id} == {root.context.trace_id}
    assert root.start_time == queued.start_time == int(submitted * NS)
    assert queued.end_time == launch.start_time == int((submitted + 7) * NS)
    assert launch.end_time == root.end_time
    assert [e.name for e in root.events] == ["submitted", "decided", "running"]
    assert root.attributes is not None
    assert root.attributes["allot.job.id"] == job_id
    assert root.attributes["allot.job.queue"] == "default"
    assert root.attributes["allot.job.gpus"] == 2


def test_a_cycle_that_starts_nothing_emits_nothing(
    traced: tuple[Harness, SchedulingLoop, InMemorySpanExporter],
) -> None:
    harness, loop, exporter = traced
    loop.run_once()
    submit(harness, gpus=8)
    loop.run_once()
    exporter.clear()
    submit(harness, gpus=8)  # the 8-GPU node is taken: it waits
    loop.run_once()
    assert exporter.get_finished_spans() == ()


def test_tracing_is_off_unless_an_endpoint_is_configured() -> None:
    assert endpoint_from(None, {}) is None
    assert endpoint_from(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) == "http://c:4318"
    assert endpoint_from("http://given:4318", {"OTEL_EXPORTER_OTLP_ENDPOINT": "x"}) == (
        "http://given:4318"
    )


def test_an_endpoint_without_the_exporter_installed_is_refused_with_the_remedy() -> None:
    installed = importlib.util.find_spec("opentelemetry.exporter") is not None
    if installed:
        pytest.skip("the OTLP exporter is installed here")
    harness = make_harness()
    with pytest.raises(TracingError, match=r"allot\[otlp\]"):
        otlp_tracing("http://localhost:4318", harness.clock)
