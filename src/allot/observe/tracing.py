"""OpenTelemetry traces of each job's way to running: submit -> decision -> launch -> running.

One trace per job, emitted when a scheduling cycle first starts it (a cycle observer): the root
span ``allot.job`` runs from its submission to the moment its run was launched, with two
children, ``allot.job.queued`` (submission to the cycle that decided to start it) and
``allot.job.launch`` (that decision to the launch done, through the executor), and the events
``submitted``, ``decided`` and ``running``. Attributes name the job, its queue, tenant, flavor,
nodes and GPU count. A cycle that started or preempted something is a span of its own,
``allot.scheduling_cycle``. A requeued job's later starts are left out (its submission is long
past; the preemption is in its events).

Off unless an OTLP endpoint is configured (``allot up --otlp-endpoint`` or the standard
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``): then spans are batched
to it over OTLP/HTTP by the exporter of the ``otlp`` extra. The tracer provider is the
server's own, never the process-global one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import trace

from allot.control.observers import CycleReport
from allot.control.ports import Clock

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

NS = 1_000_000_000
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


class TracingError(ValueError):
    """Tracing was asked for and cannot run (the exporter is not installed)."""


def _ns(t: float) -> int:
    return int(t * NS)


class JobTracing:
    """Emits the spans of each first start (see the module docstring); a cycle observer."""

    def __init__(self, provider: TracerProvider, clock: Clock) -> None:
        from allot import __version__

        self.provider = provider
        self.tracer = provider.get_tracer("allot", __version__)
        self.clock = clock

    def cycle_done(self, report: CycleReport) -> None:
        plan, applied = report.plan, report.applied
        if not (applied.started or applied.preempted or applied.failed):
            return
        done = self.clock.now()  # observers run right after the cycle: its launches are done
        cycle = self.tracer.start_span(
            "allot.scheduling_cycle",
            start_time=_ns(report.at),
            attributes={
                "allot.cycle.pending": report.pending,
                "allot.cycle.running": report.running,
                "allot.cycle.started": len(applied.started),
                "allot.cycle.preempted": len(applied.preempted),
                "allot.cycle.failed": len(applied.failed),
            },
        )
        cycle.end(end_time=_ns(report.at + report.seconds))
        starts = {s.job_id: s for s in plan.starts}
        for record in report.started_jobs:
            start = starts.get(record.id)
            if start is None or record.run_count:
                continue
            job = record.job
            attributes: Mapping[str, str | int | float] = {
                "allot.job.id": record.id,
                "allot.job.queue": job.queue,
                "allot.job.tenant": job.tenant,
                "allot.job.flavor": start.flavor,
                "allot.job.nodes": ",".join(start.nodes),
                "allot.job.tasks": len(job.tasks),
                "allot.job.gpus": sum(t.gpu_milli for t in job.tasks) / 1000,
            }
            submitted, decided = _ns(record.submit_time), _ns(report.at)
            running = max(decided, _ns(done))
            root = self.tracer.start_span("allot.job", start_time=submitted, attributes=attributes)
            root.add_event("submitted", timestamp=submitted)
            root.add_event("decided", timestamp=decided)
            root.add_event("running", timestamp=running)
            context = trace.set_span_in_context(root)
            queued = self.tracer.start_span(
                "allot.job.queued", context=context, start_time=submitted
            )
            queued.end(end_time=decided)
            launch = self.tracer.start_span("allot.job.launch", context=context, start_time=decided)
            launch.end(end_time=running)
            root.end(end_time=running)

    def close(self) -> None:
        """Send what is batched, then stop exporting."""
        self.provider.shutdown()


def endpoint_from(given: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The OTLP endpoint: ``given``, else the standard environment variables; None: off."""
    if given:
        return given
    env = os.environ if env is None else env
    for name in ENDPOINT_VARIABLES:
        if env.get(name):
            return env[name]
    return None


def otlp_tracing(endpoint: str, clock: Clock) -> JobTracing:
    """Tracing exported over OTLP/HTTP to ``endpoint``; raises TracingError without the
    exporter (``pip install 'allot[otlp]'``)."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
            OTLPSpanExporter,
        )
    except ImportError:
        raise TracingError(
            "--otlp-endpoint: exporting traces needs the OTLP exporter;"
            " install it with: pip install 'allot[otlp]'"
        ) from None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if "/v1/traces" not in endpoint:
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    provider = TracerProvider(resource=Resource.create({"service.name": "allot"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return JobTracing(provider, clock)
