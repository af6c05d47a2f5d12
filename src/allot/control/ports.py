"""Ports: the interfaces the control plane drives. Adapters implement them
(``allot.store.SqlStore``, ``allot.executors.local.LocalExecutor``); tests may use fakes.

Crash safety rests on three rules the implementations keep:
1. ``Store.submit`` commits before the API answers: an accepted job is durable.
2. ``Store.begin_run`` commits the intent (run id, placement) before ``Executor.launch``, and
   only moves a job that is still pending and not held.
3. ``Executor.launch`` is idempotent per run id: a second launch of the same run id never
   starts the task again, even across a crash of the server (the executor claims each run
   with an atomic marker before starting it). So reconcile may always re-launch a run that is
   ``starting``: either it starts now, or it is already running and is adopted.

Dependencies need no rule of their own: ``submit`` stores them with the job, and the loop
derives eligibility afresh from stored job states each cycle; a met dependency stays met
(ended jobs never change), so ``begin_run`` need not check them again.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

from allot.control.dependencies import DependencyWait
from allot.control.principal import Role
from allot.control.records import (
    AuditEntry,
    AuditFilter,
    DependencyProgress,
    EventRecord,
    FlavorSpeed,
    GpuSummary,
    JobFilter,
    JobRecord,
    Launch,
    NewJob,
    NodeCheckRecord,
    RunRecord,
    StopCause,
    TokenRecord,
    UsageRecord,
    UserRecord,
)
from allot.core.explain import Explanation
from allot.core.model import JobState, Node, NodeState, Resources, TaskPlacement
from allot.core.quota.config import FlavorResource, QuotaConfig, Quotas, ResourceQuota
from allot.metering.ledger import Sums


class Clock(Protocol):
    """Wall time in seconds since the epoch; tests inject a virtual one."""

    def now(self) -> float: ...


class ConflictError(ValueError):
    """The request conflicts with the stored state (the message says how)."""


class NotFoundError(LookupError):
    """No such job, node or queue."""


class Store(Protocol):
    """Durable state: jobs, runs and their allocations, nodes, quotas, users and tokens,
    events and the audit log.

    Every method is one transaction; every state change appends an event in the same
    transaction.
    """

    # -- jobs
    def submit(
        self,
        job: NewJob,
        *,
        at: float,
        actor: str,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Store a new pending job; returns it and True. With an ``idempotency_key`` already
        used by ``actor``, returns the stored job and False instead (raises ConflictError when
        ``request_hash`` differs from the first request's)."""
        ...

    def submit_many(
        self,
        jobs: Sequence[NewJob],
        *,
        at: float,
        actor: str,
        idempotency_keys: Sequence[str | None],
        request_hashes: Sequence[str | None],
        array: int | None = None,
    ) -> list[tuple[JobRecord, bool]]:
        """``submit`` for each job, in one transaction (all or none). ``array``: None for
        separate jobs; ``NEW_ARRAY`` to make them one new array, whose id is its first job's
        id; an array's id to add them to that array (raises NotFoundError when it is none)."""
        ...

    def find_idempotent(
        self, actor: str, idempotency_key: str, request_hash: str | None
    ) -> JobRecord | None:
        """The job ``actor`` already submitted with this key, or None; raises ConflictError
        when it was submitted with a different ``request_hash``."""
        ...

    def get_job(self, job_id: int) -> JobRecord:
        """The job; raises NotFoundError."""
        ...

    def list_jobs(self, where: JobFilter) -> list[JobRecord]:
        """Jobs matching ``where``, newest first."""
        ...

    def pending_jobs(self, *, include_held: bool = True) -> list[JobRecord]:
        """Every pending job (held ones only with ``include_held``), oldest first."""
        ...

    def pending_counts(self) -> dict[tuple[str, str, bool], int]:
        """How many jobs are pending, per (queue, tenant, held), without reading them."""
        ...

    def active_jobs(self) -> list[JobRecord]:
        """Every job with a run that has not ended, with that run."""
        ...

    def dependency_progress(self, job_ids: Collection[int]) -> dict[int, DependencyProgress]:
        """For each id that names a job: how far it has got, or, when it is an array's id,
        how far every member has got. Ids of no job are left out. A bounded number of
        queries however many ids (the loop asks once per cycle)."""
        ...

    def set_held(self, job_id: int, held: bool, *, at: float, actor: str) -> JobRecord:
        """Hold or release a pending job; raises ConflictError if it is not pending."""
        ...

    def cancel_pending(self, job_id: int, *, at: float, actor: str, reason: str) -> JobRecord:
        """Cancel a job that is pending; raises ConflictError if it is not."""
        ...

    def cancel_pending_many(
        self, reasons: Mapping[int, str], *, at: float, actor: str
    ) -> list[int]:
        """Cancel each job of ``reasons`` that is still pending, with its reason, in one
        transaction; returns the ids cancelled (others are left as they are)."""
        ...

    # -- runs
    def begin_run(self, run: RunRecord, *, actor: str) -> bool:
        """Record the intent to start ``run`` (phase starting, its allocations held) and move
        the job to running. Returns False, changing nothing, when the job is no longer
        pending, is held, or already has a run."""
        ...

    def mark_running(self, run_id: str, *, at: float) -> None:
        """The executor confirmed the launch."""
        ...

    def request_stop(
        self,
        run_id: str,
        *,
        stop_by: float,
        cause: StopCause,
        reason: str,
        at: float,
        actor: str,
    ) -> None:
        """Move a run to stopping, recording why (no-op if it is already stopping or ended)."""
        ...

    def restate_stop(
        self, run_id: str, *, cause: StopCause, reason: str, at: float, actor: str
    ) -> None:
        """Give a run that is already stopping a new stop cause (its deadline stays), as when
        a job being preempted is cancelled: the cause decides how the job ends. No-op for a
        run that is not stopping or already stops for this cause."""
        ...

    def end_run(
        self,
        run_id: str,
        *,
        outcome: JobState,
        exit_code: int | None,
        reason: str,
        at: float,
        actor: str,
        exit_codes: Sequence[int | None] = (),
    ) -> JobRecord:
        """End a run, release its allocations, add its GPU-seconds to the job's attained
        service, and move the job to ``outcome`` (succeeded, failed, cancelled, or pending to
        requeue it after a preemption). ``exit_codes``, when the executor reported them, has
        one entry per task (``RunStatus.exit_codes``); ``exit_code`` is the run's."""
        ...

    def runs_of(self, job_id: int) -> list[RunRecord]:
        """Every run of the job, oldest first."""
        ...

    def usage(self, *, after: int = 0, ended_after: float | None = None) -> list[UsageRecord]:
        """The usage ledger: records with an id above ``after`` (and that ended after
        ``ended_after``, when given), in the order they were written (``end_run`` appends
        one per run, in its transaction)."""
        ...

    def usage_sums(
        self,
        by: Sequence[str],
        cuts: Sequence[float],
        tenants: Collection[str] | None = None,
    ) -> list[Sums]:
        """The usage ledger's amounts per group of ``by`` (tenant, user, queue, flavor),
        flavor and segment of ``cuts`` (consecutive instants), of ``tenants`` only when
        given: each record counted for its overlap with each segment."""
        ...

    # -- cluster
    def sync_nodes(
        self, nodes: Sequence[Node], *, at: float, pool: str | None = None
    ) -> list[Node]:
        """Insert or update nodes from an executor's inventory, keeping an admin's drain;
        nodes no longer reported go down (only nodes of ``pool``, when given: each executor
        reports its own pool). Returns every node with its stored state."""
        ...

    def nodes(self) -> list[Node]:
        """Every node with its stored state."""
        ...

    def set_node_state(self, name: str, state: NodeState, *, at: float, actor: str) -> Node:
        """Drain, undrain (up) or mark a node down; raises NotFoundError."""
        ...

    def save_quotas(self, config: QuotaConfig, *, at: float) -> None:
        """Replace tenants, queues and cohorts with ``config``."""
        ...

    def quotas(self) -> QuotaConfig:
        """The stored tenants, queues and cohorts."""
        ...

    # -- profiling
    def record_event(
        self, job_id: int | None, kind: str, reason: str, *, at: float, actor: str,
        data: Mapping[str, object] | None = None,
    ) -> None:  # fmt: skip
        """Append an event that changes no state (a warning) to the job's event log, or
        one about no job (``job_id`` None: a budget's soft limit passed)."""
        ...

    def record_gpu_summary(self, summary: GpuSummary) -> None:
        """Store a run's GPU telemetry summary (replacing the run's earlier one)."""
        ...

    def gpu_summaries(self, job_id: int) -> list[GpuSummary]:
        """The GPU telemetry summaries of the job's runs, oldest first."""
        ...

    def record_node_check(self, check: NodeCheckRecord) -> NodeCheckRecord:
        """Store a node check (its ``id`` is assigned here); returns it as stored."""
        ...

    def node_checks(self) -> dict[str, NodeCheckRecord]:
        """The latest check of each node that has one, by node name."""
        ...

    def record_speeds(self, speeds: Sequence[FlavorSpeed]) -> None:
        """Store step times by (job class, flavor), replacing what is stored for the pair,
        except that an estimate never replaces a measurement."""
        ...

    def flavor_speeds(self, job_class: str | None = None) -> list[FlavorSpeed]:
        """Stored step times (of one job class, when given), by job class and flavor."""
        ...

    # -- users, tokens and grants
    def add_user(self, name: str, *, cluster_admin: bool, at: float) -> UserRecord:
        """Store a new user (no memberships); raises ConflictError when the name is taken."""
        ...

    def get_user(self, name: str) -> UserRecord:
        """The user with its memberships; raises NotFoundError."""
        ...

    def users(self) -> list[UserRecord]:
        """Every user with its memberships, by name."""
        ...

    def set_membership(self, user: str, tenant: str, role: Role | None) -> UserRecord:
        """Give ``user`` ``role`` in ``tenant``, replacing the role it had there (None: take
        it out of the tenant); returns the user. Raises NotFoundError for an unknown user,
        ValueError for ``cluster_admin`` (not a role within a tenant)."""
        ...

    def add_token(
        self, user: str, name: str, token_hash: str, *, at: float, expires_at: float | None = None
    ) -> TokenRecord:
        """Store a token of ``user`` by its hash; raises NotFoundError for an unknown user and
        ConflictError when the hash is already stored."""
        ...

    def find_token(self, token_hash: str) -> TokenRecord | None:
        """The token with this hash unless it was revoked (an expired one is returned: the
        caller judges expiry by its clock)."""
        ...

    def tokens(self, user: str | None = None) -> list[TokenRecord]:
        """Every token (of ``user``, when given), revoked ones too, oldest first."""
        ...

    def revoke_token(self, token_id: int, *, at: float) -> TokenRecord:
        """Revoke a token (no change when it already is); raises NotFoundError."""
        ...

    def touch_tokens(self, uses: Mapping[int, float]) -> None:
        """Record when tokens were last used (token id -> time; an earlier time than the one
        stored changes nothing; unknown ids are ignored)."""
        ...

    def set_grant(self, tenant: str, quotas: Quotas | None) -> None:
        """Replace what the cluster admin grants ``tenant`` (None: no grant)."""
        ...

    def grants(self) -> dict[str, dict[FlavorResource, ResourceQuota]]:
        """Every tenant's grant, by tenant."""
        ...

    # -- the audit log and events
    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append entries to the audit log in one transaction (their ``id`` is ignored: the
        store numbers them in the order given)."""
        ...

    def audit(self, where: AuditFilter) -> list[AuditEntry]:
        """Audit entries matching ``where``, newest first."""
        ...

    def events(
        self, job_id: int | None = None, *, after: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        """Events, oldest first, optionally of one job."""
        ...


class Scheduler(Protocol):
    """What the use cases need from the scheduling loop."""

    def wake(self) -> None:
        """Run a cycle soon (something changed)."""
        ...

    def stop_run(self, run: RunRecord, *, cause: StopCause, reason: str, actor: str) -> None:
        """Stop a run: SIGTERM now, SIGKILL when its grace period is over."""
        ...

    def explanation(self, job_id: int) -> Explanation | None:
        """Why a pending job did not start in the latest cycle (None before its first)."""
        ...

    def dependency_wait(self, job_id: int) -> DependencyWait | None:
        """The dependency a pending job waited for in the latest cycle (None if none)."""
        ...


class RunState(StrEnum):
    """What the executor knows about a run."""

    UNKNOWN = "unknown"  # never launched (or its records are gone)
    RUNNING = "running"  # at least one task process is alive
    EXITED = "exited"  # every task has ended and reported its exit code
    LOST = "lost"  # a task died without reporting (killed from outside, machine reboot)


@dataclass(frozen=True, slots=True)
class RunStatus:
    """The executor's view of one run. ``exit_codes`` has one entry per task once known
    (a negative code is the signal that ended the task)."""

    run_id: str
    state: RunState
    exit_codes: tuple[int | None, ...] = ()  # per task; None while that task still runs
    timed_out: bool = False  # a task was stopped by its time limit
    detail: str = ""
    # Tasks no runner has claimed (never launched, or launched by a server that died before
    # the runner came up): launching them again is always safe.
    unclaimed: tuple[int, ...] = ()
    # What a user should know about tasks that still run, in words ("task 0 runs without its
    # runner ..."); the control plane shows these with the running job.
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TaskLaunch:
    """Everything the executor needs to start one task of a run."""

    run_id: str
    job_id: int
    task_index: int
    num_tasks: int
    placement: TaskPlacement
    launch: Launch
    time_limit: float | None
    # What the task asked for (CPUs, memory), for engines that allocate them themselves.
    resources: Resources | None = None
    gpu_memory_mib: int = 0  # GPU memory per device the task asked for (0: none)


class Executor(Protocol):
    """Runs tasks on machines."""

    def inventory(self) -> list[Node]:
        """The nodes this executor can run on (detected, or declared by configuration)."""
        ...

    def inventory_source(self) -> str:
        """How those nodes' GPUs were found: ``nvml`` (detected), ``declared`` (configured,
        e.g. ``--gpus``) or ``none`` (no GPU)."""
        ...

    def launch(self, tasks: Sequence[TaskLaunch]) -> None:
        """Start every task of one run; idempotent per run id (see the module docstring)."""
        ...

    def status(self, run_id: str, num_tasks: int) -> RunStatus:
        """What is known about a run now."""
        ...

    def statuses(self, runs: Sequence[tuple[str, int]]) -> list[RunStatus]:
        """``status`` of each (run id, task count), in one call (an engine may answer a batch
        with one query)."""
        ...

    def notify_on_exit(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(run_id)`` (from any thread; it must be quick) as soon as a task of
        a run this executor started has ended, so the control plane need not poll."""
        ...

    def signal(self, run_id: str, *, kill: bool) -> None:
        """Ask every task of the run to stop (SIGTERM), or force it (SIGKILL)."""
        ...

    def read_log(self, run_id: str, task_index: int, offset: int, limit: int) -> tuple[bytes, int]:
        """Bytes of a task's combined stdout/stderr from ``offset``; returns (data, next offset)."""
        ...


@runtime_checkable
class ProfileSource(Protocol):
    """An executor that collects profiled tasks' traces where the server can read them."""

    def profile_dir(self, run_id: str, task_index: int) -> Path:
        """The folder a profiled task of the run writes its traces to."""
        ...
