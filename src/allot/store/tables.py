"""The durable schema: SQLAlchemy declarative tables for SQLite and PostgreSQL.

Invariants the tables carry (the migrations in ``migrations/versions`` create exactly these):
- times are float seconds since the epoch, always passed in by the caller;
- ``events``, ``usage_records`` and ``audit_log`` are append-only: rows are inserted, never
  updated or deleted (``audit_log.job_id`` has no foreign key: a refused request may name a
  job that does not exist); ``usage_daily`` sums ``usage_records`` per UTC day and group, and
  is added to only in the transaction that appends the records it sums;
- a token belongs to a user and a membership to a user; a membership's tenant is a name, kept
  when the tenant leaves the quotas (it then grants nothing);
- a job's ``current_run_id`` names its run that has not ended (None otherwise); it has no
  foreign key because jobs and runs would then reference each other;
- a job's dependencies are its ``job_dependencies`` rows (one per job or array named, written
  with the job and never changed); ``jobs.dependencies`` holds the same list as JSON for the
  bulk reads, or NULL for none (revision 0002 databases had neither);
- a job array's members carry the id of its first member in ``array_id`` (NULL for a job of no
  array), so ``array_id = id`` marks the job that names its array; it has no foreign key, since
  the first member's id is known only once it is inserted;
- a job's tasks are its ``tasks`` rows in ``task_index`` order (0, 1, ...), written with the
  job and never changed; ``jobs.tasks`` holds the same list as JSON (the form the bulk reads of
  job records decode; revision 0001 databases had only it);
- a run's placement is its ``allocations`` rows in ``task_index`` order, one per task of the
  job; ``released`` turns true when the run ends, and ``exit_code`` then holds that task's exit
  code (negative: the signal that ended it; None when the executor did not report one);
- ``tenants``, ``cohorts`` and ``queues`` keep a ``position`` so a ``QuotaConfig`` is rebuilt
  in the order it was saved; ``quota_settings`` has one row (id 1);
- ``node_checks`` is append-only, and a node's latest check is its row with the highest id;
  ``flavor_speeds`` has one row per (job class, flavor), and a measured row is never replaced
  by an estimate;
- a node's ``drained`` is the admin's drain, kept while the node is missing from the
  inventory, so it is draining again when it comes back; ``state`` is what the scheduler sees.

JSON columns hold plain lists and objects; their shapes are written in ``reads.py`` and the
modules that write them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints let Alembic's batch mode on SQLite find and recreate them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit ids on PostgreSQL; SQLite needs exactly INTEGER for a rowid (autoincrementing) key.
BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base: one metadata for every table of the store."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {float: Double(), str: String()}


class TenantRow(Base):
    """A team or project with its fair-share entitlement."""

    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(primary_key=True)
    share: Mapped[float]
    position: Mapped[int]


class UserRow(Base):
    """A user of the API; ``cluster_admin`` may do everything."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(primary_key=True)
    created_at: Mapped[float]
    cluster_admin: Mapped[bool]


class MembershipRow(Base):
    """A user's role (``tenant_admin``, ``member`` or ``viewer``) in one tenant."""

    __tablename__ = "memberships"

    user: Mapped[str] = mapped_column(ForeignKey("users.name"), primary_key=True)
    tenant: Mapped[str] = mapped_column(primary_key=True)
    role: Mapped[str]


class TokenRow(Base):
    """An API token of a user, stored by its SHA-256 hash only."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(ForeignKey("users.name"))
    name: Mapped[str]
    token_hash: Mapped[str] = mapped_column(unique=True)
    created_at: Mapped[float]
    expires_at: Mapped[float | None]
    last_used_at: Mapped[float | None]
    revoked_at: Mapped[float | None]


class GrantRow(Base):
    """What a cluster admin gave a tenant: the most its queues may hold together, per flavor
    and resource (a list of quota objects), when a tenant admin changes them."""

    __tablename__ = "tenant_grants"

    tenant: Mapped[str] = mapped_column(primary_key=True)
    quotas: Mapped[list[Any]] = mapped_column(JSON)


class AuditRow(Base):
    """One line of the append-only audit log."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_actor_id", "actor", "id"),
        Index("ix_audit_log_tenant_id", "tenant", "id"),
        Index("ix_audit_log_job_id_id", "job_id", "id"),
        Index("ix_audit_log_time", "time"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    time: Mapped[float]
    actor: Mapped[str]
    tenant: Mapped[str]
    action: Mapped[str]
    target: Mapped[str]
    outcome: Mapped[str]
    reason: Mapped[str]
    job_id: Mapped[int | None] = mapped_column(BIG_ID)


class CohortRow(Base):
    """An inner node of the quota tree; ``quotas`` is a list of quota objects."""

    __tablename__ = "cohorts"

    name: Mapped[str] = mapped_column(primary_key=True)
    parent: Mapped[str | None]
    quotas: Mapped[list[Any]] = mapped_column(JSON)
    weight: Mapped[float]  # fair-sharing weight among its siblings
    position: Mapped[int]


class QueueRow(Base):
    """A queue; ``quotas`` NULL means unconstrained, ``preemption`` is an object."""

    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(primary_key=True)
    tenant: Mapped[str]
    cohort: Mapped[str | None]
    weight: Mapped[float]
    quotas: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True))
    preemption: Mapped[dict[str, Any]] = mapped_column(JSON)
    position: Mapped[int]
    idle_timeout: Mapped[float | None]


class QuotaSettingsRow(Base):
    """The one row of quota-wide settings: fair-share half-life and usage, priority classes."""

    __tablename__ = "quota_settings"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    usage_half_life: Mapped[float]
    priority_classes: Mapped[dict[str, Any]] = mapped_column(JSON)
    min_runtime_by_class: Mapped[dict[str, Any]] = mapped_column(JSON)
    fair_share_usage: Mapped[str] = mapped_column(server_default="gpu_seconds")


class NodeRow(Base):
    """A machine as last reported by the executor, with the admin's drain."""

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(primary_key=True)
    flavor: Mapped[str]
    gpus: Mapped[int]
    cpu_milli: Mapped[int]
    memory_mib: Mapped[int]
    topology: Mapped[list[Any]] = mapped_column(JSON)
    state: Mapped[str]
    drained: Mapped[bool]
    reported: Mapped[bool]
    pool: Mapped[str]  # the node pool (executor) that reports it
    updated_at: Mapped[float]


class JobRow(Base):
    """A submitted job: the request, how to launch it, and where it is in its life."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("submitted_by", "idempotency_key"),
        Index("ix_jobs_state_id", "state", "id"),
        Index("ix_jobs_array_id", "array_id"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    name: Mapped[str]
    tenant: Mapped[str]
    user: Mapped[str]
    queue: Mapped[str]
    priority: Mapped[int]
    tasks: Mapped[list[Any]] = mapped_column(JSON)
    flavors: Mapped[list[Any]] = mapped_column(JSON)
    argv: Mapped[list[Any]] = mapped_column(JSON)
    workdir: Mapped[str | None]
    env: Mapped[dict[str, Any]] = mapped_column(JSON)
    runtime_estimate: Mapped[float | None]
    time_limit: Mapped[float | None]
    checkpointable: Mapped[bool]
    preemptible: Mapped[bool]
    held: Mapped[bool]
    state: Mapped[str]
    submit_time: Mapped[float]
    start_time: Mapped[float | None]
    end_time: Mapped[float | None]
    exit_code: Mapped[int | None]
    reason: Mapped[str]
    attained_service: Mapped[float]
    run_count: Mapped[int]
    current_run_id: Mapped[str | None]
    submitted_by: Mapped[str]
    idempotency_key: Mapped[str | None]
    request_hash: Mapped[str | None]
    array_id: Mapped[int | None] = mapped_column(BIG_ID)
    dependencies: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True))
    # {"steps": int, "skip": int} for a job run under the profiler, NULL otherwise.
    profile: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # Placement options (flavor order, speeds, colocation), NULL for the defaults.
    placement: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))


class DependencyRow(Base):
    """One job or array a job waits for, and the condition its end must meet (``ok``,
    ``failed`` or ``any``)."""

    __tablename__ = "job_dependencies"
    __table_args__ = (Index("ix_job_dependencies_depends_on", "depends_on"),)

    job_id: Mapped[int] = mapped_column(
        BIG_ID, ForeignKey("jobs.id"), primary_key=True, autoincrement=False
    )
    depends_on: Mapped[int] = mapped_column(
        BIG_ID, ForeignKey("jobs.id"), primary_key=True, autoincrement=False
    )
    condition: Mapped[str]


class TaskRow(Base):
    """One task of a job and what it asks for; ``gpu_milli`` may be a fraction of a GPU."""

    __tablename__ = "tasks"

    job_id: Mapped[int] = mapped_column(
        BIG_ID, ForeignKey("jobs.id"), primary_key=True, autoincrement=False
    )
    task_index: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    gpu_milli: Mapped[int]
    cpu_milli: Mapped[int]
    memory_mib: Mapped[int]
    gpu_memory_mib: Mapped[int] = mapped_column(server_default="0")  # per device


class RunRow(Base):
    """One attempt to run a job; ``attempt`` counts from 1 per job and orders its runs."""

    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("job_id", "attempt"),)

    run_id: Mapped[str] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(BIG_ID, ForeignKey("jobs.id"))
    attempt: Mapped[int]
    phase: Mapped[str]
    flavor: Mapped[str]
    started_at: Mapped[float]
    stop_by: Mapped[float | None]
    stop_cause: Mapped[str | None]  # a ``StopCause`` value, set when the run was asked to stop
    stop_reason: Mapped[str | None]
    ended_at: Mapped[float | None]
    exit_code: Mapped[int | None]
    executor: Mapped[str]  # the node pool whose executor runs it ("local", "slurm:gpu", ...)


class AllocationRow(Base):
    """What one task of a run holds on its node (devices, GPU share, CPU and memory) and, once
    the run ended, how that task ended."""

    __tablename__ = "allocations"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), primary_key=True)
    task_index: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    node: Mapped[str]
    devices: Mapped[list[Any]] = mapped_column(JSON)
    gpu_milli_per_device: Mapped[int]
    cpu_milli: Mapped[int]
    memory_mib: Mapped[int]
    released: Mapped[bool]
    exit_code: Mapped[int | None]


_REPORTED = ("started_at", "tenant", "user", "queue", "flavor", "gpu_milli", "cpu_milli",
             "memory_mib")  # fmt: skip


class UsageRow(Base):
    """What one ended run held, for how long and whose it was: the usage ledger. Append-only,
    one row per run, written in the transaction that ends it; ``id`` orders the rows as they
    were written, so a reader resumes after the last id it saw."""

    __tablename__ = "usage_records"
    __table_args__ = (
        # Reports read the records ending inside a day from this index alone, and those
        # starting inside it and ending after it through the next (0013; the loop reads the
        # records that ended after an instant through the first).
        Index("ix_usage_records_by_end", "ended_at", *_REPORTED),
        Index("ix_usage_records_by_start", "started_at", "ended_at"),
        # Reports sum the ledger in one pass over this index, in group order (0009).
        Index(
            "ix_usage_records_report",
            "tenant",
            "flavor",
            "user",
            "queue",
            "ended_at",
            "started_at",
            "gpu_milli",
            "cpu_milli",
            "memory_mib",
        ),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(BIG_ID, ForeignKey("jobs.id"))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), unique=True)
    tenant: Mapped[str]
    user: Mapped[str]
    queue: Mapped[str]
    flavor: Mapped[str]
    started_at: Mapped[float]
    ended_at: Mapped[float]
    gpu_milli: Mapped[int]  # summed over the run's tasks
    cpu_milli: Mapped[int]
    memory_mib: Mapped[int]


class UsageDayRow(Base):
    """The usage ledger rolled up per UTC day, tenant, user, queue and flavor (see
    ``allot.metering.rollup``): what its records held within the day (milli-GPU-seconds,
    milli-core-seconds, MiB-seconds) and the amounts of those that held all of it. Added to
    in the transaction that appends each record, never otherwise changed (0013). SQLite keeps
    it clustered by day (no rowid), so a window's days are one range of the table."""

    __tablename__ = "usage_daily"
    __table_args__ = ({"sqlite_with_rowid": False},)

    day: Mapped[float] = mapped_column(primary_key=True)  # its UTC midnight, UNIX seconds
    tenant: Mapped[str] = mapped_column(primary_key=True)
    user: Mapped[str] = mapped_column(primary_key=True)
    queue: Mapped[str] = mapped_column(primary_key=True)
    flavor: Mapped[str] = mapped_column(primary_key=True)
    gpu_milli_seconds: Mapped[float]
    cpu_milli_seconds: Mapped[float]
    memory_mib_seconds: Mapped[float]
    whole_gpu_milli: Mapped[int] = mapped_column(BigInteger)
    whole_cpu_milli: Mapped[int] = mapped_column(BigInteger)
    whole_memory_mib: Mapped[int] = mapped_column(BigInteger)


class EventRow(Base):
    """One line of the append-only event log."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    time: Mapped[float]
    job_id: Mapped[int | None] = mapped_column(BIG_ID, ForeignKey("jobs.id"))
    kind: Mapped[str]
    from_state: Mapped[str | None]
    to_state: Mapped[str | None]
    actor: Mapped[str]
    reason: Mapped[str]
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class NodeCheckRow(Base):
    """One ``allot node check`` of a node: its results (a list of objects: name, device, value,
    unit, expected, ok), the verdict and whether the node was drained for it. Append-only."""

    __tablename__ = "node_checks"
    __table_args__ = (Index("ix_node_checks_node_id", "node", "id"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    node: Mapped[str]
    flavor: Mapped[str]
    checked_at: Mapped[float]
    healthy: Mapped[bool | None]
    summary: Mapped[str]
    device: Mapped[str]
    results: Mapped[list[Any]] = mapped_column(JSON)
    drained: Mapped[bool]


class FlavorSpeedRow(Base):
    """A job class's step time on a flavor, measured or estimated (one row per pair)."""

    __tablename__ = "flavor_speeds"

    job_class: Mapped[str] = mapped_column(primary_key=True)
    flavor: Mapped[str] = mapped_column(primary_key=True)
    step_seconds: Mapped[float]
    basis: Mapped[str]  # "measured" or "estimated"
    job_id: Mapped[int | None] = mapped_column(BIG_ID)
    recorded_at: Mapped[float]


class GpuSummaryRow(Base):
    """What NVML saw of one run's GPUs (one row per run, rewritten as samples come in):
    ``devices`` is a list of device indices on ``node``."""

    __tablename__ = "gpu_summaries"
    __table_args__ = (Index("ix_gpu_summaries_job_id", "job_id"),)

    run_id: Mapped[str] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(BIG_ID)
    node: Mapped[str]
    devices: Mapped[list[Any]] = mapped_column(JSON)
    samples: Mapped[int]
    first_at: Mapped[float]
    last_at: Mapped[float]
    mean_utilization: Mapped[float]
    p95_utilization: Mapped[float]
    peak_memory_bytes: Mapped[int] = mapped_column(BigInteger)
    energy_joules: Mapped[float]
    mean_sm_active: Mapped[float | None]
