"""Translation between wire models (``allot.wire.schemas``) and control-plane records.

Inbound: a ``JobSubmission`` becomes a ``NewJob`` (units to milli-units, a shell string to
``/bin/sh -c``, priority class names to numbers; the user and tenant are left to the control
plane, which takes them from the caller and the queue, never from the body; CPU or memory
not given becomes 0, which the control plane fills in from the node shape). Outbound: records
become response models, in whole units and UTC timestamps.

Invariant: no outbound model carries an environment variable's value, only its name.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime

from pydantic import JsonValue, TypeAdapter

from allot.control.estimates import StartEstimate
from allot.control.records import (
    Condition,
    Dependency,
    EventRecord,
    GpuSummary,
    JobRecord,
    Launch,
    NewJob,
    ProfileRequest,
    RunPhase,
    RunRecord,
)
from allot.control.services import Explained, LogChunk, QueueView, RejectedError
from allot.core.model import JobState, Node, NodeState, Resources
from allot.wire import schemas
from allot.wire.profiling import NodeCheckOut, ProfileSettings
from allot.wire.schemas import (
    MILLI,
    ConditionName,
    EventOut,
    ExplainOut,
    GpuUsageOut,
    JobOut,
    JobStateName,
    JobSubmission,
    LogChunkOut,
    NodeOut,
    NodeStateName,
    PlacementOut,
    QueueOut,
    ResourcesOut,
    RunOut,
    RunPhaseName,
    StartEstimateOut,
)

# The wire names of the core's states, spelled out so a renamed state cannot silently change
# the API (a test checks that every state has one).
JOB_STATES: dict[JobState, JobStateName] = {
    JobState.PENDING: "pending",
    JobState.RUNNING: "running",
    JobState.SUCCEEDED: "succeeded",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "cancelled",
    JobState.PREEMPTED: "preempted",
}
RUN_PHASES: dict[RunPhase, RunPhaseName] = {
    RunPhase.STARTING: "starting",
    RunPhase.RUNNING: "running",
    RunPhase.STOPPING: "stopping",
    RunPhase.ENDED: "ended",
}
NODE_STATES: dict[NodeState, NodeStateName] = {
    NodeState.UP: "up",
    NodeState.DRAINING: "draining",
    NodeState.DOWN: "down",
}

CONDITIONS: dict[Condition, ConditionName] = {
    Condition.OK: "ok",
    Condition.FAILED: "failed",
    Condition.ANY: "any",
}
_CONDITION_OF = {name: condition for condition, name in CONDITIONS.items()}

_json_fields: TypeAdapter[dict[str, JsonValue]] = TypeAdapter(dict[str, JsonValue])


def request_hash(submission: JobSubmission) -> str:
    """SHA-256 of the submission's canonical JSON (sorted keys, defaults filled in), so a
    retry that spells the same request differently still matches."""
    data = submission.model_dump(mode="json")
    data["user"] = None  # a field submissions once had: hashes stay as they were
    if not data["after"]:
        # A submission without dependencies hashes as it did before they existed, so a retry
        # across an upgrade of the server still matches its first request.
        del data["after"]
    if data.get("profile") is None:
        del data["profile"]  # likewise for submissions without profiling
    # ... and for those that set no placement option or GPU memory.
    for key, default in (
        ("flavor_order", True),
        ("speeds", {}),
        ("colocate", ""),
        ("colocate_required", False),
    ):
        if data.get(key) == default:
            data.pop(key, None)
    if data["resources"].get("gpu_memory_mib") is None:
        data["resources"].pop("gpu_memory_mib", None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def resolve_priority(priority: int | str, classes: Mapping[str, int]) -> int:
    """The number a priority stands for; raises RejectedError for an unknown class name."""
    if isinstance(priority, int):
        return priority
    if priority in classes:
        return classes[priority]
    known = ", ".join(sorted(classes)) or "none are configured"
    raise RejectedError("priority", f"unknown priority class {priority!r}; known: {known}")


def new_job(submission: JobSubmission, *, priority: int) -> NewJob:
    """The control plane's form of a submission. Its user and (unless named) tenant are left
    empty: the control plane sets them from the caller and the queue."""
    s = submission
    argv = tuple(s.command) if isinstance(s.command, list) else ("/bin/sh", "-c", s.command)
    profile = None if s.profile is None else ProfileRequest(s.profile.steps, s.profile.skip)
    # 0 stands for "not given": the control plane fills it in from the node shape.
    r = s.resources
    task = Resources(r.gpu_milli, r.cpu_milli or 0, r.memory_mib or 0, r.gpu_memory_mib or 0)
    return NewJob(
        name=s.name,
        tenant=s.tenant or "",
        user="",
        queue=s.queue,
        tasks=(task,) * s.tasks,
        launch=Launch(argv, s.workdir, dict(s.env), profile),
        priority=priority,
        flavors=tuple(s.flavors),
        runtime_estimate=s.runtime_estimate_seconds,
        time_limit=s.time_limit_seconds,
        checkpointable=s.checkpointable,
        preemptible=s.preemptible,
        held=s.hold,
        after=tuple(Dependency(d.job, _CONDITION_OF[d.condition]) for d in s.after),
        flavor_order=s.flavor_order,
        speeds=tuple(s.speeds.items()),
        colocate=s.colocate,
        colocate_required=s.colocate_required,
    )


def wire_size(model: JobOut) -> int:
    """About how many bytes ``model`` takes as JSON (its strings dominate: argv, names)."""
    job = model
    return (
        1024
        + sum(len(a) for a in job.command)
        + len(job.name)
        + len(job.reason)
        + sum(len(k) for k in job.env_keys)
    )


def _instant(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _maybe_instant(seconds: float | None) -> datetime | None:
    return None if seconds is None else _instant(seconds)


def run_out(run: RunRecord) -> RunOut:
    """A run as sent to clients."""
    return RunOut(
        run_id=run.run_id,
        phase=RUN_PHASES[run.phase],
        flavor=run.flavor,
        placement=[
            PlacementOut(
                node=p.node,
                devices=list(p.devices),
                gpu_fraction=p.gpu_milli_per_device / MILLI,
            )
            for p in run.placement
        ],
        started_at=_instant(run.started_at),
        stop_by=_maybe_instant(run.stop_by),
        stop_reason=run.stop_reason,
    )


def estimate_out(estimate: StartEstimate | None) -> StartEstimateOut | None:
    """A start-time estimate as sent to clients."""
    if estimate is None:
        return None
    return StartEstimateOut(
        start=_maybe_instant(estimate.start),
        computed_at=_instant(estimate.computed_at),
        basis=estimate.basis,
    )


def gpu_usage_out(summary: GpuSummary) -> GpuUsageOut:
    """A run's GPU telemetry as sent to clients."""
    return GpuUsageOut(
        run_id=summary.run_id,
        node=summary.node,
        devices=list(summary.devices),
        samples=summary.samples,
        first_at=_instant(summary.first_at),
        last_at=_instant(summary.last_at),
        mean_utilization=summary.mean_utilization,
        p95_utilization=summary.p95_utilization,
        peak_memory_bytes=summary.peak_memory_bytes,
        energy_joules=summary.energy_joules,
        mean_sm_active=summary.mean_sm_active,
    )


def job_out(
    record: JobRecord,
    estimate: StartEstimate | None = None,
    gpu_usage: list[GpuSummary] | None = None,
) -> JobOut:
    """A job as sent to clients: environment variable names only, never their values; with
    its start-time estimate when pending and one is given, and its runs' GPU telemetry when
    given."""
    job = record.job
    # Jobs submitted through the API have identical tasks; the first one stands for all.
    task = job.tasks[0]
    return JobOut(
        id=record.id,
        name=job.name,
        state=JOB_STATES[record.state],
        held=record.held,
        queue=job.queue,
        tenant=job.tenant,
        user=job.user,
        priority=job.priority,
        tasks=len(job.tasks),
        resources=ResourcesOut(
            gpus=task.gpu_milli / MILLI,
            cpus=task.cpu_milli / MILLI,
            memory_mib=task.memory_mib,
        ),
        flavors=list(job.flavors),
        flavor_order=job.flavor_order,
        speeds=dict(job.speeds),
        colocate=job.colocate,
        colocate_required=job.colocate_required,
        gpu_memory_mib=task.gpu_memory_mib,
        command=list(job.launch.argv),
        workdir=job.launch.workdir,
        env_keys=sorted(job.launch.env),
        runtime_estimate_seconds=job.runtime_estimate,
        time_limit_seconds=job.time_limit,
        checkpointable=job.checkpointable,
        preemptible=job.preemptible,
        submitted_at=_instant(record.submit_time),
        started_at=_maybe_instant(record.start_time),
        ended_at=_maybe_instant(record.end_time),
        exit_code=record.exit_code,
        reason=record.reason,
        attained_gpu_seconds=record.attained_service,
        run_count=record.run_count,
        run=run_out(record.run) if record.run is not None else None,
        after=[
            schemas.Dependency(job=d.job_id, condition=CONDITIONS[d.condition]) for d in job.after
        ],
        array_id=record.array_id,
        estimated_start=estimate_out(estimate) if record.state is JobState.PENDING else None,
        gpu_usage=None if gpu_usage is None else [gpu_usage_out(g) for g in gpu_usage],
        profile=_profile_out(job.launch.profile),
    )


def _profile_out(request: ProfileRequest | None) -> ProfileSettings | None:
    return None if request is None else ProfileSettings(steps=request.steps, skip=request.skip)


def event_out(event: EventRecord) -> EventOut:
    """An event as sent to clients."""
    return EventOut(
        id=event.id,
        time=_instant(event.time),
        kind=event.kind,
        job_id=event.job_id,
        from_state=event.from_state,
        to_state=event.to_state,
        actor=event.actor,
        reason=event.reason,
        data=_json_fields.validate_python(dict(event.data)),
    )


def explain_out(explained: Explained, estimate: StartEstimate | None = None) -> ExplainOut:
    """An explanation as sent to clients (with a pending job's start-time estimate)."""
    return ExplainOut(
        job_id=explained.job_id,
        state=JOB_STATES[explained.state],
        reason=explained.reason,
        message=explained.message,
        remedy=explained.remedy,
        fields=_json_fields.validate_python(dict(explained.fields)),
        estimated_start=(estimate_out(estimate) if explained.state is JobState.PENDING else None),
    )


def log_out(chunk: LogChunk, *, offset: int, limit: int) -> LogChunkOut:
    """A chunk of output as text. A multi-byte UTF-8 character cut by the chunk's end is held
    back (``next_offset`` points at its first byte) until the rest of it can be read; once the
    run has ended and nothing follows, what is left is decoded with replacement."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    at_end = chunk.finished and len(chunk.data) < limit
    text = decoder.decode(chunk.data, final=at_end)
    held_back = len(decoder.getstate()[0])
    next_offset = chunk.next_offset - held_back
    if held_back and next_offset <= offset:
        # Nothing complete fits in ``limit``: decode what there is rather than stall a reader.
        text += decoder.decode(b"", final=True)
        next_offset = chunk.next_offset
    return LogChunkOut(
        run_id=chunk.run_id, data=text, next_offset=next_offset, finished=chunk.finished
    )


def node_out(
    node: Node, gpu_source: str, check: NodeCheckOut | None = None, gpu_sharing: str = ""
) -> NodeOut:
    """A node as sent to clients (``gpu_source``: how its GPUs were found; ``check``: its
    latest node check; ``gpu_sharing``: how shares of a GPU are bounded)."""
    return NodeOut(
        check=check,
        gpu_source=gpu_source,
        gpu_sharing=gpu_sharing if node.gpus else "",
        gpu_memory_mib=node.gpu_memory_mib,
        name=node.name,
        flavor=node.flavor,
        gpus=node.gpus,
        cpus=node.cpu_milli / MILLI,
        memory_mib=node.memory_mib,
        topology=list(node.topology),
        state=NODE_STATES[node.state],
    )


def queue_out(view: QueueView) -> QueueOut:
    """A queue as sent to clients, in GPUs."""
    return QueueOut(
        name=view.name,
        tenant=view.tenant,
        cohort=view.cohort,
        nominal_gpus={f: milli / MILLI for f, milli in view.nominal_gpu_milli.items()},
        used_gpus={f: milli / MILLI for f, milli in view.used_gpu_milli.items()},
        pending=view.pending,
        running=view.running,
    )
