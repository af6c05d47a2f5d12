"""Records the control plane keeps: submitted jobs, their runs, nodes, events, users, tokens
and the audit log.

Nomenclature
- ``NewJob``: a validated submission: the scheduling request (tenant, queue, tasks, flavors,
  estimates) plus how to launch it (``Launch``: argv, working directory, environment).
- ``JobRecord``: a job as stored: its ``NewJob``, its state in the job state machine, and its
  current run, if any.
- ``Dependency``: a job another job waits for (``after``), with the ``Condition`` its end must
  meet: ``ok`` (Slurm's afterok), ``failed`` (afternotok: any end but success) or ``any``
  (afterany). A dependency on an array's id means every member of that array.
- array: jobs submitted together as one job array; each member's ``array_id`` is the id of its
  first member, the id users name the array by.
- ``RunRecord``: one attempt to run a job: a run id (unique, never reused), the placement it
  was given, and its phase. A job that is preempted and started again gets a new run.
- run phases: ``starting`` (the intent is recorded; the executor may or may not have launched
  it yet), ``running`` (the executor confirmed the launch), ``stopping`` (cancelled, preempted
  or over its time limit; it must be gone by ``stop_by``), ``ended``.

Invariants: a job is ``running`` exactly while it has a run that has not ended; a run's
placement is held (counts against capacity) until the run ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from allot.control.principal import Principal, Role
from allot.core.model import JobSpec, JobState, Resources, TaskPlacement


@dataclass(frozen=True, slots=True)
class ProfileRequest:
    """Run each task under the PyTorch profiler: record ``steps`` optimizer steps after the
    first ``skip`` (see ``allot.profile.capture``)."""

    steps: int = 5
    skip: int = 3


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start each task: argv, working directory (None: the server's data directory's
    ``work`` folder), extra environment variables, and whether to profile it."""

    argv: tuple[str, ...]
    workdir: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    profile: ProfileRequest | None = None


class Condition(StrEnum):
    """What a dependency's end must be for the job waiting on it to start."""

    OK = "ok"  # it succeeded (afterok)
    FAILED = "failed"  # it ended without success: failed or cancelled (afternotok)
    ANY = "any"  # it ended, however (afterany)


@dataclass(frozen=True, slots=True)
class Dependency:
    """One job (or, when ``job_id`` is an array's id, every member of that array) that a job
    waits for, and the condition its end must meet."""

    job_id: int
    condition: Condition = Condition.OK


NEW_ARRAY = 0
"""``Store.submit_many(array=NEW_ARRAY)``: the batch is a new array, named by its first job's id."""


@dataclass(frozen=True, slots=True)
class DependencyProgress:
    """How far the jobs a dependency names have got: the one job, or every member of the array
    it names. ``first_unsuccessful`` is the lowest-id member that ended without success, with
    its state (failed or cancelled), or None."""

    job_id: int
    array: bool
    members: int
    succeeded: int
    unsuccessful: int
    first_unsuccessful: tuple[int, JobState] | None = None

    @property
    def ended(self) -> int:
        """Members that have ended, however."""
        return self.succeeded + self.unsuccessful


@dataclass(frozen=True, slots=True)
class NewJob:
    """A validated submission."""

    name: str
    tenant: str
    user: str
    queue: str
    tasks: tuple[Resources, ...]
    launch: Launch
    priority: int = 0
    flavors: tuple[str, ...] = ()
    runtime_estimate: float | None = None
    time_limit: float | None = None
    checkpointable: bool = False
    preemptible: bool = True
    held: bool = False
    after: tuple[Dependency, ...] = ()  # all must hold before it may start
    # Placement options (``JobSpec``): listed flavors as alternatives of equal standing,
    # relative speed per flavor, and the topology domain its tasks share.
    flavor_order: bool = True
    speeds: tuple[tuple[str, float], ...] = ()
    colocate: str = ""
    colocate_required: bool = False


class StopCause(StrEnum):
    """Why a run was asked to stop; decides how the job ends when the run does."""

    CANCELLED = "cancelled"  # a user cancelled it: the job ends cancelled
    PREEMPTED = "preempted"  # the scheduler took its room: the job is requeued
    TIME_LIMIT = "time_limit"  # it ran past its time limit: the job fails
    GANG_FAILED = "gang_failed"  # another task of its gang failed: the job fails


class RunPhase(StrEnum):
    """Where a run is in its life."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One attempt to run a job."""

    run_id: str
    job_id: int
    phase: RunPhase
    flavor: str
    placement: tuple[TaskPlacement, ...]
    started_at: float
    stop_by: float | None = None  # set while stopping
    stop_cause: StopCause | None = None  # set while stopping (and kept once ended)
    stop_reason: str | None = None  # the same in words: "preempted for job 12 (reclaim)"
    ended_at: float | None = None
    exit_code: int | None = None
    # One per task once the run has ended (None where the executor reported none); empty before.
    exit_codes: tuple[int | None, ...] = ()
    executor: str = "local"  # the node pool whose executor runs it


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One line of the usage ledger: what an ended run held (summed over its tasks), from
    when to when, and whose it was. ``id`` orders records as they were written."""

    id: int
    job_id: int
    run_id: str
    tenant: str
    user: str
    queue: str
    flavor: str
    started_at: float
    ended_at: float
    gpu_milli: int
    cpu_milli: int
    memory_mib: int


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as stored."""

    id: int
    job: NewJob
    state: JobState
    submit_time: float
    held: bool = False
    start_time: float | None = None  # first start
    end_time: float | None = None
    exit_code: int | None = None
    reason: str = ""  # why the last transition happened, in words
    attained_service: float = 0.0  # GPU-seconds over all ended runs
    run_count: int = 0
    run: RunRecord | None = None  # the current run, if one has not ended
    array_id: int | None = None  # the array it is a member of (its first member's id)

    def spec(self) -> JobSpec:
        """The scheduling core's view of this job."""
        j = self.job
        return JobSpec(
            self.id,
            j.tenant,
            j.user,
            j.queue,
            j.tasks,
            flavors=j.flavors,
            priority=j.priority,
            submit_time=self.submit_time,
            runtime_estimate=j.runtime_estimate,
            time_limit=j.time_limit,
            name=j.name,
            checkpointable=j.checkpointable,
            preemptible=j.preemptible,
            flavor_order=j.flavor_order,
            speeds=j.speeds,
            colocate=j.colocate,
            colocate_required=j.colocate_required,
        )


@dataclass(frozen=True, slots=True)
class GpuSummary:
    """What NVML saw of one run's GPUs (``allot.observe.telemetry``): utilisation (0..1)
    averaged over every sample of every device and its 95th percentile, the peak of memory
    used on them together, the energy they drew and, where GPM is supported, mean SM
    activity."""

    run_id: str
    job_id: int
    node: str
    devices: tuple[int, ...]
    samples: int
    first_at: float
    last_at: float
    mean_utilization: float
    p95_utilization: float
    peak_memory_bytes: int
    energy_joules: float
    mean_sm_active: float | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One line of the append-only event log: a state transition with time, actor and reason."""

    id: int
    time: float
    kind: str  # "submitted", "starting", "running", "stopping", "succeeded", ...
    job_id: int | None
    from_state: str | None  # a job state (``JobState`` value) or None; equal to ``to_state``
    to_state: str | None  # when the job's state did not change (a run phase is in ``data``)
    actor: str  # "scheduler", "executor", a token's name, ...
    reason: str
    data: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeCheckRecord:
    """One ``allot node check`` of a node: each result (``name``, ``device``, ``value``,
    ``unit``, ``expected``, ``ok``), the verdict (``healthy`` None: nothing to compare with)
    in words, and whether the node was drained for it. ``id`` orders checks as stored."""

    id: int
    node: str
    flavor: str
    checked_at: float
    healthy: bool | None
    summary: str
    device: str
    results: tuple[Mapping[str, object], ...] = ()
    drained: bool = False


@dataclass(frozen=True, slots=True)
class FlavorSpeed:
    """How long one step of a job class takes on a flavor: ``measured`` by a profiled run
    there, or ``estimated`` from a profile on another flavor; for throughput-aware placement."""

    job_class: str
    flavor: str
    step_seconds: float
    basis: str  # "measured" or "estimated"
    job_id: int | None
    recorded_at: float


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A person (or a service) that calls the API: whether it is a cluster admin, and its
    role in each tenant it belongs to."""

    name: str
    created_at: float
    cluster_admin: bool = False
    memberships: Mapping[str, Role] = field(default_factory=dict)  # tenant -> role

    def principal(self) -> Principal:
        """The caller this user is."""
        return Principal(self.name, self.memberships, cluster_admin=self.cluster_admin)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An API token of a user (only its hash is stored): when it was made, when it expires
    (None: never), when it was last used (recorded at most once a minute) and whether it was
    revoked."""

    id: int
    user: str
    name: str
    created_at: float
    expires_at: float | None = None
    last_used_at: float | None = None
    revoked_at: float | None = None

    def live_at(self, now: float) -> bool:
        """True when the token is neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the append-only audit log: who (``actor``) did what (``action``) to what
    (``target``, in words: ``job 12``, ``node gpu-1``), for which tenant ("" when none), when,
    how it ended (``outcome``: ``ok``, ``denied``, ``not_found``, ``invalid``, ``conflict``,
    ...) and why. ``id`` is given by the store and orders entries as they were written.
    Never holds a token or an environment variable's value."""

    time: float
    actor: str
    action: str
    target: str
    outcome: str
    reason: str
    tenant: str = ""
    job_id: int | None = None
    id: int = 0


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What ``Store.audit`` returns: entries matching every given field, newest first,
    ``limit`` of them with an id below ``before``. ``tenants`` None: every tenant."""

    since: float | None = None
    actor: str | None = None
    job_id: int | None = None
    tenants: frozenset[str] | None = None
    limit: int = 100
    before: int | None = None


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What ``list_jobs`` returns: jobs matching every given field, newest first, ``limit`` of
    them with an id below ``before`` (keyset pagination)."""

    states: tuple[JobState, ...] = ()
    queue: str | None = None
    user: str | None = None
    tenant: str | None = None
    limit: int = 100
    before: int | None = None
    tenants: frozenset[str] | None = None  # only jobs of these tenants; None: every tenant
