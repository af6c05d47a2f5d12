"""Wire models of the HTTP API, version 1: what clients send and what the server answers.

The server (``allot.api``) and the SDK (``allot.client``) both use these models, so this
module imports Pydantic and the standard library only, never FastAPI or the control plane.

Units on the wire: GPUs and CPUs as numbers of devices and cores (``0.5`` is half a GPU),
memory in MiB, durations in seconds, instants as RFC 3339 timestamps in UTC.

Invariants: a submission that validates here is well formed (amounts in whole milli-units,
environment names valid, paths absolute, every text valid UTF-8 without NUL, and within the
size limits below, which the OpenAPI description states); whether it can run on this cluster
is decided by the control plane. Responses never carry environment variable values, only
their names, and no error message repeats one.
"""

import math
import re
from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, JsonValue, field_validator, model_validator

from allot.wire.model import WireModel
from allot.wire.profiling import NodeCheckOut, ProfileSettings

MAX_BODY_BYTES = 1 << 20  # larger request bodies are refused with 413 before parsing
MAX_IDEMPOTENCY_KEY = 200
MILLI = 1000

JobStateName = Literal["pending", "running", "succeeded", "failed", "cancelled", "preempted"]
RunPhaseName = Literal["starting", "running", "stopping", "ended"]
NodeStateName = Literal["up", "draining", "down"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PRIORITY_RANGE = 1 << 31  # priorities fit a signed 32-bit column

# Size limits of a job spec (with MAX_BODY_BYTES for the whole request).
MAX_ARGS = 1024
MAX_ARG_CHARS = 65_536
MAX_ENV = 256
MAX_ENV_NAME = 256
MAX_ENV_VALUE = 32_768
MAX_NAME = 200
# Time limits and estimates are at most a year: longer ones are typing mistakes, and every
# timer that enforces them (poll, select, timers of the executors) holds a year safely.
MAX_SECONDS = 366 * 86_400.0

Arg = Annotated[str, Field(max_length=MAX_ARG_CHARS)]
# A shell command has something to run; an argv has at least its program, which is not empty.
ShellCommand = Annotated[str, Field(min_length=1, max_length=MAX_ARG_CHARS, pattern=r"\S")]
Argv = Annotated[
    list[Arg],
    Field(
        min_length=1,
        max_length=MAX_ARGS,
        json_schema_extra={"prefixItems": [{"type": "string", "minLength": 1}]},
    ),
]
EnvName = Annotated[str, Field(max_length=MAX_ENV_NAME)]
EnvValue = Annotated[str, Field(max_length=MAX_ENV_VALUE)]
ShortText = Annotated[str, Field(max_length=MAX_NAME)]


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text (a NUL, or a lone surrogate, which no UTF-8
    encoder, database or log accepts), or None."""
    if "\0" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (a lone surrogate such as \\udfff is not)"
    return None


def _checked_text(value: str | None) -> str | None:
    if value is not None and (problem := text_problem(value)) is not None:
        raise ValueError(problem)
    return value


def _whole_milli(value: float) -> bool:
    scaled = value * MILLI
    return abs(scaled - round(scaled)) < 1e-6


class TaskResources(WireModel):
    """What each task of a job asks for. CPU and memory left out (null) are filled in by the
    server from the shape of the nodes the job accepts: a GPU task gets its GPUs' share of the
    node's CPUs and memory (Slurm's DefCpuPerGPU/DefMemPerGPU), a CPU-only task 1 CPU and
    1024 MiB. The stored job shows the amounts it got."""

    model_config = ConfigDict(
        defer_build=False, extra="forbid", strict=True, allow_inf_nan=False, frozen=True
    )

    gpus: float = Field(
        default=0.0,
        ge=0,
        le=4096,
        description="GPUs per task: a share of one GPU in steps of 0.001, or whole GPUs.",
    )
    cpus: float | None = Field(
        default=None,
        gt=0,
        le=1 << 20,
        description="CPU cores per task, in 0.001 steps. Default (null): for a GPU task, its"
        " GPUs' share of the node's CPUs (gpus x node CPUs / node GPUs, on the accepted"
        " flavor's node with the fewest CPUs per GPU, rounded down to 0.001); for a CPU-only"
        " task, 1.",
    )
    memory_mib: int | None = Field(
        default=None,
        gt=0,
        le=1 << 40,
        description="Memory per task in MiB. Default (null): for a GPU task, its GPUs' share"
        " of the node's memory (as for cpus, rounded down to 1 MiB); for a CPU-only task,"
        " 1024.",
    )
    gpu_memory_mib: int | None = Field(
        default=None,
        gt=0,
        le=1 << 30,
        description="GPU memory per device in MiB (for a share of a GPU: its part of that"
        " GPU's memory). Placed only where each device it takes has that much free; under"
        " CUDA MPS it becomes the task's device memory limit. Only with gpus.",
    )

    @model_validator(mode="after")
    def _gpu_memory_needs_gpus(self) -> "TaskResources":
        if self.gpu_memory_mib is not None and self.gpus == 0:
            raise ValueError("gpu_memory_mib: GPU memory can only be asked for with gpus")
        return self

    @field_validator("gpus")
    @classmethod
    def _gpus_in_whole_units(cls, value: float) -> float:
        if value < 1 and not _whole_milli(value):
            raise ValueError(
                f"a share of one GPU must be a whole number of milli-GPU (0.001 steps), got {value}"
            )
        if value > 1 and value != math.floor(value):
            raise ValueError(f"more than one GPU must be a whole number of GPUs, got {value}")
        return value

    @field_validator("cpus")
    @classmethod
    def _cpus_in_milli_cores(cls, value: float | None) -> float | None:
        if value is not None and (not _whole_milli(value) or round(value * MILLI) == 0):
            raise ValueError(f"must be a whole number of milli-CPU (0.001 steps), got {value}")
        return value

    @property
    def gpu_milli(self) -> int:
        """GPUs per task in milli-GPU."""
        return round(self.gpus * MILLI)

    @property
    def cpu_milli(self) -> int | None:
        """CPU per task in milli-cores; None: the server's default."""
        return None if self.cpus is None else round(self.cpus * MILLI)


MAX_BATCH = 1000
MAX_DEPENDENCIES = 100

ConditionName = Literal["ok", "failed", "any"]


class Dependency(WireModel):
    """A job (or, by its id, a whole job array) that a job waits for, and how it must end."""

    model_config = ConfigDict(defer_build=False, extra="forbid", strict=True, frozen=True)

    job: int = Field(
        ge=1,
        lt=1 << 63,
        description="The job's id; an array's id (its first job's id) means every job of it.",
    )
    condition: ConditionName = Field(
        default="ok",
        description="ok: it succeeded (Slurm's afterok); failed: it ended without success,"
        " failed or cancelled (afternotok); any: it ended, however (afterany). For an array:"
        " ok when every job succeeded, failed when every job ended and one did not succeed,"
        " any when every job ended.",
    )


class JobSubmission(WireModel):
    """A job to run: where it queues, what each task needs, and how to start it."""

    model_config = ConfigDict(
        defer_build=False, extra="forbid", strict=True, allow_inf_nan=False, frozen=True
    )

    name: str = Field(default="", max_length=MAX_NAME)
    queue: str = Field(default="default", min_length=1, max_length=MAX_NAME)
    tenant: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description=(
            "The tenant the job is for: the one its queue belongs to (the default); naming "
            "another is refused. The job's user is always the caller."
        ),
    )
    priority: int | str = Field(
        default=0, description="An integer, or the name of one of the cluster's priority classes."
    )
    tasks: int = Field(default=1, ge=1, le=4096, description="More than one task makes a gang.")
    resources: TaskResources = Field(default_factory=TaskResources)
    flavors: list[ShortText] = Field(
        default_factory=list, max_length=64, description="Accepted GPU flavors, preferred first."
    )
    flavor_order: bool = Field(
        default=True,
        description="false: the listed flavors are alternatives of equal standing, and the"
        " scheduler picks among them (by packing and by speed), as it does when none is listed.",
    )
    speeds: dict[
        Annotated[str, Field(min_length=1, max_length=200)],
        Annotated[float, Field(gt=0, le=1000)],
    ] = Field(
        default_factory=dict,
        max_length=64,
        description="Relative speed per flavor (1.0 for a flavor not listed): throughput-aware"
        " placement prefers the flavors the job gains most on.",
    )
    colocate: Literal["", "node", "rack", "block"] = Field(
        default="",
        description="Keep the tasks of a gang within one node, rack or block of the topology.",
    )
    colocate_required: bool = Field(
        default=False,
        description="true: never place the gang across domains; false: only prefer one domain.",
    )
    command: Argv | ShellCommand = Field(
        description=f"The argv to run (at most {MAX_ARGS} arguments), or a string run with"
        " /bin/sh -c.",
    )
    workdir: str | None = Field(
        default=None,
        max_length=4096,
        description="An absolute path; never inside the server's data directory (and, where"
        " the site says so, inside one of its allowed roots).",
    )
    env: dict[EnvName, EnvValue] = Field(
        default_factory=dict,
        max_length=MAX_ENV,
        description="Extra environment variables. Their values are secret: never shown in an"
        " answer, an event, the audit log or an error message.",
    )
    runtime_estimate_seconds: float | None = Field(default=None, gt=0, le=MAX_SECONDS)
    time_limit_seconds: float | None = Field(default=None, gt=0, le=MAX_SECONDS)
    checkpointable: bool = False
    preemptible: bool = True
    hold: bool = Field(default=False, description="Submit held: it waits until released.")
    after: list[Dependency] = Field(
        default_factory=list,
        max_length=MAX_DEPENDENCIES,
        description="Jobs this one waits for: it starts once every condition holds, and is"
        " cancelled when one never can (like sbatch --dependency=afterok:12,afterany:13).",
    )
    profile: ProfileSettings | None = Field(
        default=None,
        description="Run it under the PyTorch profiler for a window of steps (allot profile).",
    )

    @field_validator("priority", mode="before")
    @classmethod
    def _priority_is_number_or_class(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            if not -_PRIORITY_RANGE <= value < _PRIORITY_RANGE:
                raise ValueError(f"must be in {-_PRIORITY_RANGE}..{_PRIORITY_RANGE - 1}")
            return value
        if isinstance(value, str) and 0 < len(value) <= MAX_NAME:
            return _checked_text(value)
        raise ValueError("must be an integer or the name of a priority class")

    @field_validator("command", mode="before")
    @classmethod
    def _command_is_argv_or_shell(cls, value: object) -> object:
        # Checked before the union so a bad command gets one error under "command", not one
        # per union member.
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("must not be empty")
            if len(value) > MAX_ARG_CHARS:
                raise ValueError(f"must be at most {MAX_ARG_CHARS} characters")
            return _checked_text(value)
        if isinstance(value, list):
            if not value:
                raise ValueError("must list at least the program to run")
            if len(value) > MAX_ARGS:
                raise ValueError(f"must have at most {MAX_ARGS} arguments")
            for i, arg in enumerate(value):
                if not isinstance(arg, str):
                    raise ValueError(f"argument {i} must be a string")
                if len(arg) > MAX_ARG_CHARS:
                    raise ValueError(f"argument {i} must be at most {MAX_ARG_CHARS} characters")
                if (problem := text_problem(arg)) is not None:
                    raise ValueError(f"argument {i} {problem}")
            if not value[0]:
                raise ValueError("the program (argument 0) must not be empty")
            return value
        raise ValueError("must be a list of strings (argv) or a string run with /bin/sh -c")

    @field_validator("workdir")
    @classmethod
    def _workdir_is_absolute(cls, value: str | None) -> str | None:
        _checked_text(value)
        if value is not None and not PurePosixPath(value).is_absolute():
            raise ValueError(f"must be an absolute path, got {value!r}")
        return value

    @field_validator("name", "queue", "tenant")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return _checked_text(value)

    @field_validator("flavors")
    @classmethod
    def _flavors_are_named_once(cls, value: list[str]) -> list[str]:
        if any(not flavor for flavor in value):
            raise ValueError("a flavor name must not be empty")
        for flavor in value:
            _checked_text(flavor)
        if len(set(value)) != len(value):
            raise ValueError(f"lists a flavor twice: {value}")
        return value

    @field_validator("speeds")
    @classmethod
    def _speeds_are_positive(cls, value: dict[str, float]) -> dict[str, float]:
        for flavor, speed in value.items():
            if not flavor:
                raise ValueError("a flavor name must not be empty")
            if not speed > 0:
                raise ValueError(f"the speed on {flavor} must be > 0, got {speed}")
        return value

    @model_validator(mode="after")
    def _colocation_needs_a_level(self) -> "JobSubmission":
        if self.colocate_required and not self.colocate:
            raise ValueError("colocate_required: needs colocate (node, rack or block)")
        return self

    @field_validator("after")
    @classmethod
    def _each_job_named_once(cls, value: list[Dependency]) -> list[Dependency]:
        named: set[int] = set()
        for dependency in value:
            if dependency.job in named:
                raise ValueError(f"names job {dependency.job} twice")
            named.add(dependency.job)
        return value

    @field_validator("env")
    @classmethod
    def _env_names_are_valid(cls, value: dict[str, str]) -> dict[str, str]:
        # Messages name the variable, never its value: values may be secrets.
        for name, text in value.items():
            if not _ENV_NAME.match(name):
                shown = name if text_problem(name) is None else ascii(name)
                raise ValueError(
                    f"{shown!r} is not a valid environment variable name "
                    "(letters, digits and _, not starting with a digit)"
                )
            if (problem := text_problem(text)) is not None:
                raise ValueError(f"the value of {name} {problem}")
        return value


class ResourcesOut(WireModel):
    """Resources of one task."""

    gpus: float
    cpus: float
    memory_mib: int


class PlacementOut(WireModel):
    """Where one task of a run is placed."""

    node: str
    devices: list[int]
    gpu_fraction: float = Field(description="Share of each listed device: 1.0 for whole GPUs.")


class RunOut(WireModel):
    """The job's current run."""

    run_id: str
    phase: RunPhaseName
    flavor: str
    placement: list[PlacementOut]
    started_at: datetime
    stop_by: datetime | None
    stop_reason: str | None


class StartEstimateOut(WireModel):
    """When a pending job is expected to start, and how that was worked out."""

    start: datetime | None = Field(
        description="Null: the forward run found no start within its horizon (see basis)."
    )
    computed_at: datetime = Field(description="When the queue was last run forward.")
    basis: str = Field(description="How the estimate was derived, in one sentence.")


class GpuUsageOut(WireModel):
    """What NVML saw of one run's GPUs."""

    run_id: str
    node: str
    devices: list[int]
    samples: int
    first_at: datetime
    last_at: datetime
    mean_utilization: float = Field(description="0..1, over every sample of every device.")
    p95_utilization: float
    peak_memory_bytes: int = Field(description="The devices together, at their peak.")
    energy_joules: float
    mean_sm_active: float | None = Field(description="0..1; null where GPM is unsupported.")


class JobOut(WireModel):
    """A job as the server knows it."""

    id: int
    name: str
    state: JobStateName
    held: bool
    queue: str
    tenant: str
    user: str
    priority: int
    tasks: int
    resources: ResourcesOut = Field(description="Per task.")
    flavors: list[str]
    flavor_order: bool = True
    speeds: dict[str, float] = Field(default_factory=dict)
    colocate: str = ""
    colocate_required: bool = False
    gpu_memory_mib: int = Field(default=0, description="GPU memory per device, per task (MiB).")
    command: list[str]
    workdir: str | None
    env_keys: list[str] = Field(description="Names of the extra environment variables.")
    runtime_estimate_seconds: float | None
    time_limit_seconds: float | None
    checkpointable: bool
    preemptible: bool
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    exit_code: int | None
    reason: str = Field(
        description="Why the job is where it is. Pending: the latest scheduling cycle's reason"
        " as 'code: sentence' (like squeue's REASON), 'held', or empty before the first cycle;"
        " running: what the executor noticed, if anything; ended: how it ended."
    )
    attained_gpu_seconds: float
    run_count: int
    run: RunOut | None
    after: list[Dependency] = Field(
        default_factory=list, description="The jobs and arrays it waits for (as submitted)."
    )
    array_id: int | None = Field(
        default=None, description="The array it belongs to (its first job's id), if any."
    )
    estimated_start: StartEstimateOut | None = Field(
        default=None,
        description="Pending jobs: the expected start, from running the queue forward through"
        " the scheduler (null before the first estimate, and for held jobs or jobs waiting on"
        " dependencies).",
    )
    gpu_usage: list[GpuUsageOut] | None = Field(
        default=None,
        description="GPU telemetry per run (GET /v1/jobs/{id} only; null when none was"
        " recorded, e.g. without NVML).",
    )
    profile: ProfileSettings | None = Field(
        default=None, description="Its profiling window, when submitted with one."
    )


class JobPage(WireModel):
    """One page of jobs, newest first; pass ``next`` as ``before`` for the following page."""

    items: list[JobOut]
    next: str | None = Field(description="Opaque cursor of the next page; null on the last.")


class EventOut(WireModel):
    """One entry of a job's event log."""

    id: int
    time: datetime
    kind: str
    job_id: int | None
    from_state: str | None
    to_state: str | None
    actor: str
    reason: str
    data: dict[str, JsonValue]


class ExplainOut(WireModel):
    """Why a job is where it is, and what would change that."""

    job_id: int
    state: JobStateName
    reason: str = Field(description="A stable code, e.g. no_capacity or held.")
    message: str
    remedy: str = Field(description="What would unblock it; empty when nothing is blocking.")
    fields: dict[str, JsonValue]
    estimated_start: StartEstimateOut | None = Field(
        default=None, description="A pending job's expected start (see JobOut)."
    )


class LogChunkOut(WireModel):
    """Part of a task's output; ask again from ``next_offset`` for more."""

    run_id: str | None
    data: str = Field(description="Output decoded as UTF-8 (invalid bytes replaced).")
    next_offset: int
    finished: bool = Field(description="The run has ended: no more output will come.")


class NodeOut(WireModel):
    """One machine."""

    name: str
    flavor: str
    gpus: int
    cpus: float
    memory_mib: int
    topology: list[str]
    state: NodeStateName
    gpu_source: str = Field(
        default="", description="nvml (detected), declared (configured) or none (no GPU)"
    )
    gpu_sharing: str = Field(
        default="",
        description="How shares of one GPU are bounded: mps (CUDA MPS limits), unenforced"
        " (no MPS daemon: tasks sharing a device are not limited), or empty (not known).",
    )
    gpu_memory_mib: int = Field(default=0, description="Memory per GPU in MiB; 0: not known.")
    check: NodeCheckOut | None = Field(
        default=None, description="Its latest allot node check, if it has had one."
    )


class QueueOut(WireModel):
    """A queue with its nominal GPU quota, what its running jobs hold, and job counts."""

    name: str
    tenant: str
    cohort: str | None
    nominal_gpus: dict[str, float] = Field(description="Per flavor; empty when unconstrained.")
    used_gpus: dict[str, float] = Field(description="Per flavor, held by running jobs.")
    pending: int
    running: int


class Health(WireModel):
    """The server answers."""

    status: Literal["ok"] = "ok"


class FieldProblem(WireModel):
    """One invalid field of a request and the rule it broke."""

    field: str
    rule: str


class Problem(WireModel):
    """An error, as RFC 9457 problem details (``application/problem+json``)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    instance: str | None = None
    errors: list[FieldProblem] | None = None


__all__ = [
    "MAX_BODY_BYTES",
    "MAX_IDEMPOTENCY_KEY",
    "ConditionName",
    "Dependency",
    "EventOut",
    "ExplainOut",
    "FieldProblem",
    "Health",
    "JobOut",
    "JobPage",
    "JobStateName",
    "JobSubmission",
    "LogChunkOut",
    "NodeOut",
    "NodeStateName",
    "PlacementOut",
    "Problem",
    "QueueOut",
    "ResourcesOut",
    "RunOut",
    "RunPhaseName",
    "TaskResources",
]


class JobBatch(WireModel):
    """Many jobs in one request (a job array, or a sweep): all are validated before any is
    stored, then stored in one transaction."""

    model_config = ConfigDict(defer_build=False, extra="forbid")

    jobs: list[JobSubmission] = Field(min_length=1, max_length=MAX_BATCH)
    array: bool = Field(
        default=False,
        description="The jobs form a new job array, named by its first job's id (its array_id);"
        " a dependency on that id waits for every job of the array.",
    )
    array_id: int | None = Field(
        default=None,
        ge=1,
        description="Add the jobs to this existing array (for arrays of more than 1,000 jobs,"
        " sent in several batches).",
    )

    @model_validator(mode="after")
    def _one_array(self) -> "JobBatch":
        if self.array and self.array_id is not None:
            raise ValueError("give array (a new array) or array_id (an existing one), not both")
        return self
