"""``SqlStore``: the durable ``Store`` on SQLite (the embedded default) or PostgreSQL.

Threads: one Engine (a connection pool) serves every thread; each method checks out a
connection and runs exactly one transaction, which also appends the events of its changes.

Transactions:
- SQLite: writes begin with ``BEGIN IMMEDIATE`` so a writer takes the write lock before it
  reads, and waits for it (busy timeout 5 s) instead of failing when another writer commits
  first; reads begin a deferred transaction and, in WAL mode, never block or wait for writers.
- PostgreSQL: writes run at READ COMMITTED and lock the rows they read before changing them
  (``SELECT ... FOR UPDATE``); reads run at REPEATABLE READ, so a job and its run come from one
  snapshot.

Files on SQLite: the database (and so its ``-wal`` and ``-shm``) is created with mode 0600.

Durability on SQLite: WAL with ``synchronous=NORMAL``. A commit is durable once ``submit``
returns as long as the operating system survives: killing the server process (even with
SIGKILL) loses nothing, and the database is never corrupted; a power loss may lose the last
few commits.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import IntegrityError

from allot.control.ports import ConflictError, Store
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
    NewJob,
    NodeCheckRecord,
    RunRecord,
    StopCause,
    TokenRecord,
    UsageRecord,
    UserRecord,
)
from allot.core.model import JobState, Node, NodeState
from allot.core.quota.config import FlavorResource, QuotaConfig, Quotas, ResourceQuota
from allot.metering.ledger import Sums
from allot.store import (
    audit,
    cluster,
    dependencies,
    events,
    gpu_usage,
    jobs,
    profiling,
    quotas,
    runs,
    tokens,
    usage,
    users,
)
from allot.store.migrations import alembic_config

_BEGIN = "allot_begin"  # execution option: the statement that opens a SQLite transaction
_MIGRATION_LOCK = 0x616C6C6F74  # PostgreSQL advisory lock key held while migrating


def default_database_url(data_dir: Path) -> str:
    """The SQLite database in ``data_dir``: ``sqlite:///<data_dir>/allot.db``."""
    return f"sqlite:///{data_dir / 'allot.db'}"


def _create_private(database: str | None) -> None:
    """Create a SQLite file readable by its owner only (0600) before SQLite opens it: its
    ``-wal`` and ``-shm`` files then get the same mode (SQLite copies the database's). An
    existing file is left as it is."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    # A missing folder is left for SQLite to report, as it would without this.
    with suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own implicit BEGIN is switched off; ``_sqlite_begin`` emits ours.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (
        "busy_timeout = 5000",
        "journal_mode = WAL",
        "synchronous = NORMAL",
        "foreign_keys = ON",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql(conn.get_execution_options().get(_BEGIN, "BEGIN"))


class SqlStore(Store):
    """The ``Store`` port on a SQLAlchemy URL (``sqlite:///path`` or
    ``postgresql+psycopg://...``). Call ``migrate()`` once before use; ``close()`` at the end."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        parsed = make_url(url)
        self.engine: Engine = create_engine(parsed, echo=echo)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            _create_private(parsed.database)
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
            self._writer: Engine = self.engine.execution_options(**{_BEGIN: "BEGIN IMMEDIATE"})
            self._reader: Engine = self.engine
        else:
            self._writer = self.engine
            self._reader = self.engine.execution_options(isolation_level="REPEATABLE READ")

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic ``upgrade head``); a no-op when it
        is already there. Concurrent callers wait for each other."""
        with self._writer.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            command.upgrade(alembic_config(self.engine.url, conn), "head")

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._reader.connect() as conn, conn.begin():
            yield conn

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
        try:
            with self._writing() as conn:
                record = jobs.submit(
                    conn,
                    job,
                    at=at,
                    actor=actor,
                    idempotency_key=idempotency_key,
                    request_hash=request_hash,
                )
            return record, True
        except IntegrityError as err:
            if idempotency_key is None:
                raise
            collision = err
        # Another request with this key won (now or earlier): answer with its job.
        with self._reading() as conn:
            found = jobs.find_by_key(conn, actor, idempotency_key, request_hash)
        if found is None:
            raise collision
        return found, False

    def submit_many(
        self,
        jobs_: Sequence[NewJob],
        *,
        at: float,
        actor: str,
        idempotency_keys: Sequence[str | None],
        request_hashes: Sequence[str | None],
        array: int | None = None,
    ) -> list[tuple[JobRecord, bool]]:
        # Keys already used answer with their job; the rest are inserted together. A key that
        # another request inserts meanwhile makes the insert fail, and the retry finds it.
        for _ in range(2):
            try:
                with self._writing() as conn:
                    return jobs.submit_batch(
                        conn,
                        list(jobs_),
                        at=at,
                        actor=actor,
                        idempotency_keys=list(idempotency_keys),
                        request_hashes=list(request_hashes),
                        array=array,
                    )
            except IntegrityError:
                continue
        raise ConflictError("the batch collided with concurrent submissions twice; retry it")

    def find_idempotent(
        self, actor: str, idempotency_key: str, request_hash: str | None
    ) -> JobRecord | None:
        with self._reading() as conn:
            return jobs.find_by_key(conn, actor, idempotency_key, request_hash)

    def get_job(self, job_id: int) -> JobRecord:
        """The job; raises NotFoundError."""
        with self._reading() as conn:
            return jobs.get(conn, job_id)

    def list_jobs(self, where: JobFilter) -> list[JobRecord]:
        """Jobs matching ``where``, newest first."""
        with self._reading() as conn:
            return jobs.listed(conn, where)

    def pending_jobs(self, *, include_held: bool = True) -> list[JobRecord]:
        """Every pending job (held ones only with ``include_held``), oldest first."""
        with self._reading() as conn:
            return jobs.in_state(conn, JobState.PENDING, include_held=include_held)

    def pending_counts(self) -> dict[tuple[str, str, bool], int]:
        """How many jobs are pending, per (queue, tenant, held), without reading them."""
        with self._reading() as conn:
            return jobs.pending_counts(conn)

    def active_jobs(self) -> list[JobRecord]:
        """Every job with a run that has not ended (the running jobs), with that run."""
        with self._reading() as conn:
            return jobs.in_state(conn, JobState.RUNNING)

    def dependency_progress(self, job_ids: Collection[int]) -> dict[int, DependencyProgress]:
        """How far each named job, or each named array's members, have got."""
        with self._reading() as conn:
            return dependencies.progress(conn, job_ids)

    def set_held(self, job_id: int, held: bool, *, at: float, actor: str) -> JobRecord:
        """Hold or release a pending job; raises ConflictError if it is not pending."""
        with self._writing() as conn:
            return jobs.set_held(conn, job_id, held, at=at, actor=actor)

    def cancel_pending(self, job_id: int, *, at: float, actor: str, reason: str) -> JobRecord:
        """Cancel a job that is pending; raises ConflictError if it is not."""
        with self._writing() as conn:
            return jobs.cancel_pending(conn, job_id, at=at, actor=actor, reason=reason)

    def cancel_pending_many(
        self, reasons: Mapping[int, str], *, at: float, actor: str
    ) -> list[int]:
        """Cancel each job of ``reasons`` still pending, with its reason; returns their ids."""
        if not reasons:
            return []
        with self._writing() as conn:
            return dependencies.cancel_many(conn, reasons, at=at, actor=actor)

    # -- runs

    def begin_run(self, run: RunRecord, *, actor: str) -> bool:
        """Record the intent to start ``run`` (phase starting, its allocations held) and move
        the job to running. Returns False, changing nothing, when the job is no longer
        pending, is held, or already has a run. Raises ConflictError for a run id already
        used."""
        try:
            with self._writing() as conn:
                return runs.begin_run(conn, run, actor=actor)
        except IntegrityError as err:
            message = f"run {run.run_id} already exists; run ids are never reused"
            raise ConflictError(message) from err

    def mark_running(self, run_id: str, *, at: float) -> None:
        """The executor confirmed the launch (no change once running or stopping)."""
        with self._writing() as conn:
            runs.mark_running(conn, run_id, at=at)

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
        """Move a run to stopping, for ``cause`` (no-op if it is already stopping or ended)."""
        with self._writing() as conn:
            runs.request_stop(
                conn, run_id, stop_by=stop_by, cause=cause, reason=reason, at=at, actor=actor
            )

    def restate_stop(
        self, run_id: str, *, cause: StopCause, reason: str, at: float, actor: str
    ) -> None:
        """Replace a stopping run's stop cause (its deadline stays); no-op otherwise."""
        with self._writing() as conn:
            runs.restate_stop(conn, run_id, cause=cause, reason=reason, at=at, actor=actor)

    def usage(self, *, after: int = 0, ended_after: float | None = None) -> list[UsageRecord]:
        """Usage records with an id above ``after`` (ended after ``ended_after``, when
        given), in the order they were written."""
        with self._reading() as conn:
            return runs.usage(conn, after=after, ended_after=ended_after)

    def usage_sums(
        self,
        by: Sequence[str],
        cuts: Sequence[float],
        tenants: Collection[str] | None = None,
    ) -> list[Sums]:
        """The ledger's sums per group of ``by``, flavor and segment of ``cuts``
        (``allot.store.usage``)."""
        with self._reading() as conn:
            return usage.usage_sums(conn, by, cuts, tenants)

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
        """End a run, release its allocations (recording ``exit_codes``, one per task, when
        given), add its GPU-seconds to the job's attained service, and move the job to
        ``outcome`` (succeeded, failed, cancelled, or pending to requeue it after a
        preemption). Raises ConflictError for a run that has ended or a transition the job
        state machine forbids, ValueError for ``exit_codes`` not matching the tasks."""
        with self._writing() as conn:
            return runs.end_run(
                conn,
                run_id,
                outcome=outcome,
                exit_code=exit_code,
                reason=reason,
                at=at,
                actor=actor,
                exit_codes=exit_codes,
            )

    def runs_of(self, job_id: int) -> list[RunRecord]:
        """Every run of the job, oldest first."""
        with self._reading() as conn:
            return runs.runs_of(conn, job_id)

    # -- cluster

    def sync_nodes(
        self, nodes: Sequence[Node], *, at: float, pool: str | None = None
    ) -> list[Node]:
        """Insert or update nodes from an executor's inventory, keeping an admin's drain;
        nodes no longer reported (of ``pool``, when given) go down. Returns every node with
        its stored state."""
        with self._writing() as conn:
            return cluster.sync(conn, nodes, at=at, pool=pool)

    def nodes(self) -> list[Node]:
        """Every node with its stored state, by name."""
        with self._reading() as conn:
            return cluster.listed(conn)

    def set_node_state(self, name: str, state: NodeState, *, at: float, actor: str) -> Node:
        """Drain, undrain (up) or mark a node down; raises NotFoundError."""
        with self._writing() as conn:
            return cluster.set_state(conn, name, state, at=at, actor=actor)

    def save_quotas(self, config: QuotaConfig, *, at: float) -> None:
        """Replace tenants, queues and cohorts with ``config``."""
        with self._writing() as conn:
            quotas.save(conn, config, at=at)

    def quotas(self) -> QuotaConfig:
        """The stored tenants, queues and cohorts."""
        with self._reading() as conn:
            return quotas.load(conn)

    # -- profiling

    def record_event(
        self, job_id: int | None, kind: str, reason: str, *, at: float, actor: str,
        data: Mapping[str, object] | None = None,
    ) -> None:  # fmt: skip
        """Append an event that changes no state (a warning) to the job's event log, or
        one about no job (``job_id`` None: a budget's soft limit passed)."""
        row = events.event_values(at=at, kind=kind, job_id=job_id, from_state=None,
                                  to_state=None, actor=actor, reason=reason, data=data)  # fmt: skip
        with self._writing() as conn:
            events.append(conn, row)

    def record_gpu_summary(self, summary: GpuSummary) -> None:
        """Store a run's GPU telemetry summary (replacing the run's earlier one)."""
        with self._writing() as conn:
            gpu_usage.record(conn, summary)

    def gpu_summaries(self, job_id: int) -> list[GpuSummary]:
        """The GPU telemetry summaries of the job's runs, oldest first."""
        with self._reading() as conn:
            return gpu_usage.of_job(conn, job_id)

    def record_node_check(self, check: NodeCheckRecord) -> NodeCheckRecord:
        """Store a node check; returns it with its id."""
        with self._writing() as conn:
            return profiling.add_check(conn, check)

    def node_checks(self) -> dict[str, NodeCheckRecord]:
        """The latest check of each node that has one."""
        with self._reading() as conn:
            return profiling.latest_checks(conn)

    def record_speeds(self, speeds: Sequence[FlavorSpeed]) -> None:
        """Store step times by (job class, flavor); an estimate never replaces a measurement."""
        if not speeds:
            return
        with self._writing() as conn:
            profiling.record_speeds(conn, speeds)

    def flavor_speeds(self, job_class: str | None = None) -> list[FlavorSpeed]:
        """Stored step times (of one job class, when given)."""
        with self._reading() as conn:
            return profiling.speeds(conn, job_class)

    # -- users, tokens and grants

    def add_user(self, name: str, *, cluster_admin: bool, at: float) -> UserRecord:
        """Store a new user; raises ConflictError when the name is taken."""
        try:
            with self._writing() as conn:
                return users.add(conn, name, cluster_admin=cluster_admin, at=at)
        except IntegrityError as err:
            raise ConflictError(f"user {name!r} already exists") from err

    def get_user(self, name: str) -> UserRecord:
        """The user with its memberships; raises NotFoundError."""
        with self._reading() as conn:
            return users.get(conn, name)

    def users(self) -> list[UserRecord]:
        """Every user with its memberships, by name."""
        with self._reading() as conn:
            return users.listed(conn)

    def set_membership(self, user: str, tenant: str, role: Role | None) -> UserRecord:
        """Give ``user`` ``role`` in ``tenant`` (None: out of it); returns the user."""
        with self._writing() as conn:
            return users.set_membership(conn, user, tenant, role)

    def add_token(
        self, user: str, name: str, token_hash: str, *, at: float, expires_at: float | None = None
    ) -> TokenRecord:
        """Store a token of ``user`` by its hash; raises NotFoundError for an unknown user
        and ConflictError when the hash is already stored."""
        try:
            with self._writing() as conn:
                return tokens.add(conn, user, name, token_hash, at=at, expires_at=expires_at)
        except IntegrityError as err:
            raise ConflictError(f"token {name!r}: a token with this hash already exists") from err

    def find_token(self, token_hash: str) -> TokenRecord | None:
        """The token with this hash unless it was revoked."""
        with self._reading() as conn:
            return tokens.find(conn, token_hash)

    def tokens(self, user: str | None = None) -> list[TokenRecord]:
        """Every token (of ``user``, when given), oldest first."""
        with self._reading() as conn:
            return tokens.listed(conn, user)

    def revoke_token(self, token_id: int, *, at: float) -> TokenRecord:
        """Revoke a token (no change when it already is); raises NotFoundError."""
        with self._writing() as conn:
            return tokens.revoke(conn, token_id, at=at)

    def touch_tokens(self, uses: Mapping[int, float]) -> None:
        """Record when tokens were last used."""
        if uses:
            with self._writing() as conn:
                tokens.touch(conn, uses)

    def set_grant(self, tenant: str, quotas: Quotas | None) -> None:
        """Replace ``tenant``'s grant (None: no grant)."""
        with self._writing() as conn:
            users.set_grant(conn, tenant, quotas)

    def grants(self) -> dict[str, dict[FlavorResource, ResourceQuota]]:
        """Every tenant's grant, by tenant."""
        with self._reading() as conn:
            return users.grants(conn)

    # -- the audit log and events

    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append entries to the audit log in one transaction."""
        if entries:
            with self._writing() as conn:
                audit.append(conn, entries)

    def audit(self, where: AuditFilter) -> list[AuditEntry]:
        """Audit entries matching ``where``, newest first."""
        with self._reading() as conn:
            return audit.read(conn, where)

    def events(
        self, job_id: int | None = None, *, after: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        """Events, oldest first, optionally of one job."""
        with self._reading() as conn:
            return events.read(conn, job_id, after, limit)
