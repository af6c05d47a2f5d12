"""``MemoryStore``: the ``Store`` protocol in dicts, for unit tests of the layers above the store
(API, SDK, CLI, control). The contract tests (``tests/store/contract``) run on it as on
``SqlStore``, so it behaves as the real store does: the same events (kinds, job states, reasons
and data), the same errors (types and messages), orderings, state transitions, usage records,
dependency progress and node sync per pool.

One lock serialises every method, and a method that raises restores the state it started from:
threads of one process see each method as one transaction. What it does not model: durability
and crash safety (nothing outlives the object), concurrency across processes, migrations, and
the rows behind the records (tasks, allocations and dependency rows). Users, tokens, grants and
the audit log are ``MemoryTenancy``'s methods, over the same tables and lock. It starts with
``quotas`` already saved (default: one unconstrained queue ``default`` of tenant
``default``), without a ``quotas_saved`` event.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from allot.control.ports import ConflictError, NotFoundError
from allot.control.records import (
    NEW_ARRAY,
    AuditEntry,
    DependencyProgress,
    EventRecord,
    FlavorSpeed,
    GpuSummary,
    JobFilter,
    JobRecord,
    NewJob,
    NodeCheckRecord,
    RunPhase,
    RunRecord,
    StopCause,
    TokenRecord,
    UsageRecord,
    UserRecord,
)
from allot.core.model import MILLI_PER_GPU, JobState, Node, NodeState, TransitionError, transition
from allot.core.quota.config import (
    FlavorResource,
    QueueSpec,
    QuotaConfig,
    ResourceQuota,
    TenantSpec,
)
from allot.metering.ledger import Interval, Sums, check_groups, sums_of
from allot.metering.rollup import Tally, day_shares, partial_on, plan
from memory_tenancy import MemoryTenancy

DEFAULT_QUOTAS = QuotaConfig((TenantSpec("default"),), (QueueSpec("default", "default"),))
_ENDINGS = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.PENDING)
_UNSUCCESSFUL = (JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True, slots=True)
class _StoredNode:
    node: Node  # with its stored state
    drained: bool = False  # an admin's drain, remembered while the node is away
    reported: bool = True  # in its pool's latest inventory


@dataclass
class _Tables:
    """Everything the store holds; copied before each change so a failed one can be undone."""

    quotas: QuotaConfig
    jobs: dict[int, JobRecord] = field(default_factory=dict)
    runs: dict[str, RunRecord] = field(default_factory=dict)  # in the order they began
    keys: dict[tuple[str, str], tuple[int, str | None]] = field(default_factory=dict)
    nodes: dict[str, _StoredNode] = field(default_factory=dict)
    tokens: dict[str, TokenRecord] = field(default_factory=dict)  # by hash
    events: list[EventRecord] = field(default_factory=list)
    usage: list[UsageRecord] = field(default_factory=list)
    checks: list[NodeCheckRecord] = field(default_factory=list)
    speeds: dict[tuple[str, str], FlavorSpeed] = field(default_factory=dict)
    users: dict[str, UserRecord] = field(default_factory=dict)
    grants: dict[str, dict[FlavorResource, ResourceQuota]] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    gpu_summaries: dict[str, GpuSummary] = field(default_factory=dict)  # by run id
    # The ledger's daily rollup: (day, tenant, user, queue, flavor) -> amounts, holdings.
    daily: dict[tuple[float, str, str, str, str], list[float]] = field(default_factory=dict)

    def copy(self) -> _Tables:
        return _Tables(
            self.quotas,
            dict(self.jobs),
            dict(self.runs),
            dict(self.keys),
            dict(self.nodes),
            dict(self.tokens),
            list(self.events),
            list(self.usage),
            list(self.checks),
            dict(self.speeds),
            dict(self.users),
            dict(self.grants),
            list(self.audit),
            dict(self.gpu_summaries),
            {key: list(amounts) for key, amounts in self.daily.items()},
        )

    def event(
        self,
        at: float,
        kind: str,
        job_id: int | None,
        states: tuple[JobState | None, JobState | None],
        actor: str,
        reason: str,
        **data: object,
    ) -> None:
        if not reason:
            raise ValueError(f"reason: event {kind!r} needs a reason in words, got an empty one")
        before, after = (None if s is None else s.value for s in states)
        self.events.append(
            EventRecord(len(self.events) + 1, at, kind, job_id, before, after, actor, reason, data)
        )

    def job(self, job_id: int) -> JobRecord:
        record = self.jobs.get(job_id)
        if record is None:
            raise NotFoundError(f"job {job_id} does not exist")
        return record

    def run(self, run_id: str) -> RunRecord:
        run = self.runs.get(run_id)
        if run is None:
            raise NotFoundError(f"run {run_id} does not exist")
        return run

    def set_run(self, run: RunRecord) -> None:
        self.runs[run.run_id] = run
        record = self.jobs[run.job_id]
        if record.run is not None and record.run.run_id == run.run_id:
            self.jobs[run.job_id] = replace(record, run=run)

    def by_key(self, actor: str, key: str, request_hash: str | None) -> JobRecord | None:
        seen = self.keys.get((actor, key))
        if seen is None:
            return None
        job_id, first_hash = seen
        if first_hash != request_hash:
            raise ConflictError(
                f"idempotency key {key!r} was used for a different request (job {job_id});"
                " use a new key for a new job"
            )
        return self.jobs[job_id]

    def insert_job(
        self,
        job: NewJob,
        at: float,
        actor: str,
        key: str | None,
        request_hash: str | None,
        array_id: int | None = None,
    ) -> JobRecord:
        record = JobRecord(
            len(self.jobs) + 1, job, JobState.PENDING, at, held=job.held, array_id=array_id
        )
        self.jobs[record.id] = record
        if key is not None:
            self.keys[(actor, key)] = (record.id, request_hash)
        held = ", held" if job.held else ""
        data: dict[str, object] = (
            {"queue": job.queue, "held": True} if job.held else {"queue": job.queue}
        )
        reason = f"submitted by {actor} to queue {job.queue}{held}"
        self.event(at, "submitted", record.id, (None, JobState.PENDING), actor, reason, **data)
        return record

    def cancel(self, record: JobRecord, at: float, actor: str, reason: str) -> None:
        self.jobs[record.id] = replace(record, state=JobState.CANCELLED, end_time=at, reason=reason)
        self.event(
            at, "cancelled", record.id, (JobState.PENDING, JobState.CANCELLED), actor, reason
        )

    def stopping_event(
        self,
        run: RunRecord,
        from_phase: RunPhase,
        *,
        at: float,
        actor: str,
        reason: str,
        **data: object,
    ) -> None:
        self.event(
            at,
            "stopping",
            run.job_id,
            (JobState.RUNNING, JobState.RUNNING),
            actor,
            reason,
            run_id=run.run_id,
            phase=RunPhase.STOPPING.value,
            from_phase=from_phase.value,
            stop_by=run.stop_by,
            **data,
        )

    def node_event(
        self,
        at: float,
        name: str,
        old: NodeState | None,
        new: NodeState,
        actor: str,
        reason: str,
        **data: object,
    ) -> None:
        self.event(
            at,
            "node_state",
            None,
            (None, None),
            actor,
            reason,
            node=name,
            from_node_state=None if old is None else old.value,
            node_state=new.value,
            **data,
        )


def _matches(record: JobRecord, where: JobFilter) -> bool:
    job = record.job
    return (
        (where.before is None or record.id < where.before)
        and (not where.states or record.state in where.states)
        and where.queue in (None, job.queue)
        and where.user in (None, job.user)
        and where.tenant in (None, job.tenant)
        and (where.tenants is None or job.tenant in where.tenants)
    )


def _checked(job_id: int, current: JobState, target: JobState) -> None:
    try:
        transition(current, target)
    except TransitionError as err:
        detail = str(err).removeprefix("job state: ")
        raise ConflictError(f"job {job_id}: {detail}") from err


class MemoryStore(MemoryTenancy):
    """The ``Store`` protocol in memory (see the module docstring for what it leaves out)."""

    def __init__(self, quotas: QuotaConfig | None = None) -> None:
        self._lock = threading.RLock()
        self._db = _Tables(quotas if quotas is not None else DEFAULT_QUOTAS)

    @contextmanager
    def _transaction(self) -> Iterator[_Tables]:
        with self._lock:
            before = self._db.copy()
            try:
                yield self._db
            except BaseException:
                self._db = before
                raise

    @contextmanager
    def _reading(self) -> Iterator[_Tables]:
        with self._lock:
            yield self._db

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
        with self._transaction() as db:
            if idempotency_key is not None:
                found = db.by_key(actor, idempotency_key, request_hash)
                if found is not None:
                    return found, False
            return db.insert_job(job, at, actor, idempotency_key, request_hash), True

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
        with self._transaction() as db:
            if array is not None and array != NEW_ARRAY:
                named = db.jobs.get(array)
                if named is None or named.array_id != array:
                    raise NotFoundError(f"array {array} does not exist")
            batch = list(zip(jobs, idempotency_keys, request_hashes, strict=True))
            new_keys = [k for _, k, _ in batch if k is not None and (actor, k) not in db.keys]
            if len(new_keys) != len(set(new_keys)):
                # SqlStore's unique (actor, key) index refuses such a batch in these words.
                raise ConflictError(
                    "the batch collided with concurrent submissions twice; retry it"
                )
            array_id = None if array == NEW_ARRAY else array
            out: list[tuple[JobRecord, bool]] = []
            for job, key, digest in batch:
                found = None if key is None else db.by_key(actor, key, digest)
                if found is not None:
                    out.append((found, False))
                else:
                    out.append((db.insert_job(job, at, actor, key, digest, array_id), True))
            if array == NEW_ARRAY and out:
                first = out[0][0].id  # the stored job's, for a retried batch
                for index, (record, created) in enumerate(out):
                    if created:
                        db.jobs[record.id] = replace(record, array_id=first)
                        out[index] = (db.jobs[record.id], True)
            return out

    def find_idempotent(
        self, actor: str, idempotency_key: str, request_hash: str | None
    ) -> JobRecord | None:
        with self._reading() as db:
            return db.by_key(actor, idempotency_key, request_hash)

    def get_job(self, job_id: int) -> JobRecord:
        with self._reading() as db:
            return db.job(job_id)

    def list_jobs(self, where: JobFilter) -> list[JobRecord]:
        with self._reading() as db:
            newest_first = sorted(db.jobs.values(), key=lambda r: -r.id)
            return [r for r in newest_first if _matches(r, where)][: max(0, where.limit)]

    def pending_jobs(self, *, include_held: bool = True) -> list[JobRecord]:
        with self._reading() as db:
            return [
                r
                for r in sorted(db.jobs.values(), key=lambda r: r.id)
                if r.state is JobState.PENDING and (include_held or not r.held)
            ]

    def active_jobs(self) -> list[JobRecord]:
        with self._reading() as db:
            return [r for r in sorted(db.jobs.values(), key=lambda r: r.id) if r.run is not None]

    def dependency_progress(self, job_ids: Collection[int]) -> dict[int, DependencyProgress]:
        with self._reading() as db:
            found = {}
            for target in set(job_ids):
                named = db.jobs.get(target)
                if named is None:
                    continue
                array = named.array_id == target  # an array's id is its first member's
                members = (
                    [r for r in db.jobs.values() if r.array_id == target] if array else [named]
                )
                bad = sorted((r.id, r.state) for r in members if r.state in _UNSUCCESSFUL)
                ok = sum(r.state is JobState.SUCCEEDED for r in members)
                found[target] = DependencyProgress(
                    target, array, len(members), ok, len(bad), bad[0] if bad else None
                )
            return found

    def set_held(self, job_id: int, held: bool, *, at: float, actor: str) -> JobRecord:
        with self._transaction() as db:
            record = db.job(job_id)
            kind = "held" if held else "released"
            if record.state is not JobState.PENDING:
                raise ConflictError(
                    f"job {job_id} is {record.state}; only a pending job can be {kind}"
                )
            if record.held != held:  # no change, no event
                # The job's own ``held`` reads back as stored, as from SqlStore's one column.
                db.jobs[job_id] = replace(record, held=held, job=replace(record.job, held=held))
                states = (JobState.PENDING, JobState.PENDING)
                db.event(at, kind, job_id, states, actor, f"{kind} by {actor}")
            return db.jobs[job_id]

    def cancel_pending(self, job_id: int, *, at: float, actor: str, reason: str) -> JobRecord:
        with self._transaction() as db:
            record = db.job(job_id)
            if record.state is not JobState.PENDING:
                raise ConflictError(
                    f"job {job_id} is {record.state}, not pending; only a pending job is"
                    " cancelled at once"
                )
            db.cancel(record, at, actor, reason or f"cancelled by {actor}")
            return db.jobs[job_id]

    def cancel_pending_many(
        self, reasons: Mapping[int, str], *, at: float, actor: str
    ) -> list[int]:
        with self._transaction() as db:
            pending = [
                job_id
                for job_id in sorted(reasons)
                if job_id in db.jobs and db.jobs[job_id].state is JobState.PENDING
            ]
            for job_id in pending:
                db.cancel(db.jobs[job_id], at, actor, reasons[job_id])
            return pending

    # -- runs

    def begin_run(self, run: RunRecord, *, actor: str) -> bool:
        with self._transaction() as db:
            record = db.jobs.get(run.job_id)
            if record is None or record.state is not JobState.PENDING or record.held:
                return False
            tasks = len(record.job.tasks)
            if len(run.placement) != tasks:
                raise ConflictError(
                    f"run {run.run_id}: placement has {len(run.placement)} tasks, "
                    f"job {run.job_id} has {tasks}"
                )
            if run.run_id in db.runs:
                raise ConflictError(f"run {run.run_id} already exists; run ids are never reused")
            started = RunRecord(
                run.run_id,
                run.job_id,
                RunPhase.STARTING,
                run.flavor,
                run.placement,
                run.started_at,
                executor=run.executor,
            )
            db.runs[run.run_id] = started
            nodes = ", ".join(dict.fromkeys(p.node for p in run.placement))
            reason = f"placed on {nodes} ({run.flavor})"
            first = record.start_time if record.start_time is not None else run.started_at
            attempt = record.run_count + 1
            db.jobs[run.job_id] = replace(
                record,
                state=JobState.RUNNING,
                run=started,
                start_time=first,
                run_count=attempt,
                reason=reason,
            )
            db.event(
                run.started_at,
                "starting",
                run.job_id,
                (JobState.PENDING, JobState.RUNNING),
                actor,
                reason,
                run_id=run.run_id,
                phase=RunPhase.STARTING.value,
                flavor=run.flavor,
                attempt=attempt,
            )
            return True

    def mark_running(self, run_id: str, *, at: float) -> None:
        with self._transaction() as db:
            run = db.run(run_id)
            if run.phase is RunPhase.ENDED:
                raise ConflictError(f"run {run_id} has ended; it cannot be marked running")
            if run.phase is not RunPhase.STARTING:
                return
            db.set_run(replace(run, phase=RunPhase.RUNNING))
            db.event(
                at,
                "running",
                run.job_id,
                (JobState.RUNNING, JobState.RUNNING),
                "executor",
                "launch confirmed",
                run_id=run_id,
                phase=RunPhase.RUNNING.value,
                from_phase=run.phase.value,
            )

    def request_stop(
        self, run_id: str, *, stop_by: float, cause: StopCause, reason: str, at: float, actor: str
    ) -> None:
        with self._transaction() as db:
            reason = reason or f"stop requested by {actor}"
            run = db.run(run_id)
            if run.phase in (RunPhase.STOPPING, RunPhase.ENDED):
                return
            stopping = replace(
                run, phase=RunPhase.STOPPING, stop_by=stop_by, stop_cause=cause, stop_reason=reason
            )
            db.set_run(stopping)
            db.stopping_event(stopping, run.phase, at=at, actor=actor, reason=reason)

    def restate_stop(
        self, run_id: str, *, cause: StopCause, reason: str, at: float, actor: str
    ) -> None:
        with self._transaction() as db:
            run = db.run(run_id)
            if run.phase is not RunPhase.STOPPING or run.stop_cause is cause:
                return
            restated = replace(run, stop_cause=cause, stop_reason=reason)
            db.set_run(restated)
            db.stopping_event(
                restated,
                RunPhase.STOPPING,
                at=at,
                actor=actor,
                reason=reason,
                replaces=run.stop_reason,
            )

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
        if outcome not in _ENDINGS:
            allowed = ", ".join(s.value for s in _ENDINGS)
            raise ValueError(f"outcome: must be one of {allowed} (pending requeues), got {outcome}")
        reason = reason or f"run ended: {outcome}"
        with self._transaction() as db:
            run = db.run(run_id)
            record = db.jobs[run.job_id]
            state, job_id = record.state, run.job_id
            if run.phase is RunPhase.ENDED:
                raise ConflictError(
                    f"run {run_id} has already ended; job {job_id} is {state} and cannot go "
                    f"from {state} to {outcome} by ending it again"
                )
            steps = (
                [(state, JobState.PREEMPTED), (JobState.PREEMPTED, JobState.PENDING)]
                if outcome is JobState.PENDING
                else [(state, outcome)]
            )
            for current, target in steps:
                _checked(job_id, current, target)
            current_run = None if record.run is None else record.run.run_id
            if current_run != run_id:
                raise ConflictError(
                    f"run {run_id} is not the current run of job {job_id} (that is {current_run})"
                )
            tasks = record.job.tasks
            if exit_codes and len(exit_codes) != len(tasks):
                raise ValueError(
                    f"exit_codes: run {run_id} has {len(tasks)} tasks, "
                    f"got {len(exit_codes)} exit codes"
                )
            gpus = sum(t.gpu_milli for t in tasks) / MILLI_PER_GPU
            held_for = max(0.0, at - run.started_at)
            db.runs[run_id] = replace(
                run,
                phase=RunPhase.ENDED,
                ended_at=at,
                exit_code=exit_code,
                exit_codes=tuple(exit_codes) or (None,) * len(tasks),
            )
            requeued = outcome is JobState.PENDING  # it has not ended: no end time, no code
            db.jobs[job_id] = replace(
                record,
                state=outcome,
                run=None,
                reason=reason,
                attained_service=record.attained_service + gpus * held_for,
                end_time=record.end_time if requeued else at,
                exit_code=record.exit_code if requeued else exit_code,
            )
            job = record.job
            amounts = [sum(t.gpu_milli for t in tasks), sum(t.cpu_milli for t in tasks)]
            amounts.append(sum(t.memory_mib for t in tasks))
            for share in day_shares(run.started_at, max(at, run.started_at)):
                key = (share.day, job.tenant, job.user, job.queue, run.flavor)
                slot = db.daily.setdefault(key, [0.0] * 6)
                for i, amount in enumerate(amounts):
                    slot[i] += amount * share.seconds
                    slot[3 + i] += amount if share.whole else 0
            db.usage.append(
                UsageRecord(
                    len(db.usage) + 1,
                    job_id,
                    run_id,
                    job.tenant,
                    job.user,
                    job.queue,
                    run.flavor,
                    run.started_at,
                    max(at, run.started_at),
                    sum(t.gpu_milli for t in tasks),
                    sum(t.cpu_milli for t in tasks),
                    sum(t.memory_mib for t in tasks),
                )
            )
            data: dict[str, object] = {
                "run_id": run_id,
                "phase": RunPhase.ENDED.value,
                "from_phase": run.phase.value,
                "exit_code": exit_code,
                "gpu_seconds": gpus * held_for,
            }
            if exit_codes:
                data["exit_codes"] = list(exit_codes)
            for current, target in steps:
                kind = "requeued" if target is JobState.PENDING else target.value
                db.event(at, kind, job_id, (current, target), actor, reason, **data)
            return db.jobs[job_id]

    def runs_of(self, job_id: int) -> list[RunRecord]:
        with self._reading() as db:
            return [run for run in db.runs.values() if run.job_id == job_id]

    def usage(self, *, after: int = 0, ended_after: float | None = None) -> list[UsageRecord]:
        with self._reading() as db:
            return [
                u
                for u in db.usage
                if u.id > after and (ended_after is None or u.ended_at > ended_after)
            ]

    def usage_sums(
        self,
        by: Sequence[str],
        cuts: Sequence[float],
        tenants: Collection[str] | None = None,
    ) -> list[Sums]:
        # As ``SqlStore`` reads it: the rollup for whole days, its holdings and the records
        # starting or ending inside a day for pieces of days (``allot.metering.rollup``).
        groups = check_groups(by)
        read = plan(cuts)
        with self._reading() as db:
            records = [u for u in db.usage if tenants is None or u.tenant in tenants]
            daily = [(k, v) for k, v in db.daily.items() if tenants is None or k[1] in tenants]
        tally = Tally()
        for (day, tenant, user, queue, flavor), amounts in daily:
            fields = {"tenant": tenant, "user": user, "queue": queue, "flavor": flavor}
            key = tuple(fields[name] for name in groups)
            for segment, first, end in read.whole:
                if first <= day < end:
                    tally.add(key, flavor, segment, amounts[:3])
            if day in read.pieces:
                tally.add_holdings(key, flavor, read.pieces[day], amounts[3:])
        for day, pieces in read.pieces.items():
            partial = [
                Interval(
                    u.job_id, u.tenant, u.user, u.queue, u.flavor, u.started_at, u.ended_at,
                    u.gpu_milli, u.cpu_milli, u.memory_mib,
                )
                for u in records
                if partial_on(u.started_at, u.ended_at, day)
            ]  # fmt: skip
            for piece in pieces:
                for s in sums_of(partial, groups, [piece.lo, piece.hi]):
                    tally.add(s.key, s.flavor, piece.segment, _amounts(s))
        return tally.sums()

    # -- cluster

    def sync_nodes(
        self, nodes: Sequence[Node], *, at: float, pool: str | None = None
    ) -> list[Node]:
        with self._transaction() as db:
            seen: set[str] = set()
            for node in nodes:
                if node.name in seen:
                    raise ValueError(
                        f"nodes: node name {node.name!r} appears twice in the inventory"
                    )
                seen.add(node.name)
            for node in nodes:
                old = db.nodes.get(node.name)
                state = NodeState.DRAINING if old is not None and old.drained else node.state
                reported = replace(node, state=state)
                if old is None:
                    db.nodes[node.name] = _StoredNode(reported)
                    db.node_event(at, node.name, None, state, "executor", "new node")
                elif old.node != reported or not old.reported:
                    db.nodes[node.name] = replace(old, node=reported, reported=True)
                    if old.node.state is not state:
                        db.node_event(
                            at, node.name, old.node.state, state, "executor", "reported again"
                        )
            for name, old in list(db.nodes.items()):
                if name in seen or (old.node.state is NodeState.DOWN and not old.reported):
                    continue
                if pool is not None and old.node.pool != pool:
                    continue  # another executor's node
                down = replace(old.node, state=NodeState.DOWN)
                db.nodes[name] = replace(old, node=down, reported=False)
                if old.node.state is not NodeState.DOWN:
                    db.node_event(
                        at,
                        name,
                        old.node.state,
                        NodeState.DOWN,
                        "executor",
                        "missing from the inventory",
                    )
            return sorted((n.node for n in db.nodes.values()), key=lambda n: n.name)

    def nodes(self) -> list[Node]:
        with self._reading() as db:
            return sorted((n.node for n in db.nodes.values()), key=lambda n: n.name)

    def set_node_state(self, name: str, state: NodeState, *, at: float, actor: str) -> Node:
        with self._transaction() as db:
            old = db.nodes.get(name)
            if old is None:
                raise NotFoundError(f"node {name} does not exist")
            drained = {NodeState.DRAINING: True, NodeState.UP: False}.get(state, old.drained)
            # A missing node stays down whatever is asked; the drain is remembered for its return.
            new = state if old.reported or state is NodeState.DOWN else NodeState.DOWN
            if new is not old.node.state or drained != old.drained:
                db.nodes[name] = replace(old, node=replace(old.node, state=new), drained=drained)
                db.node_event(
                    at,
                    name,
                    old.node.state,
                    new,
                    actor,
                    f"{state} requested by {actor}",
                    requested=state.value,
                )
            return db.nodes[name].node

    def save_quotas(self, config: QuotaConfig, *, at: float) -> None:
        with self._transaction() as db:
            db.quotas = config
            counts = {
                "tenants": len(config.tenants),
                "cohorts": len(config.cohorts),
                "queues": len(config.queues),
            }
            reason = "quotas saved ({})".format(", ".join(f"{k}: {v}" for k, v in counts.items()))
            db.event(at, "quotas_saved", None, (None, None), "config", reason, **counts)

    def quotas(self) -> QuotaConfig:
        with self._reading() as db:
            return db.quotas

    # -- profiling

    def pending_counts(self) -> dict[tuple[str, str, bool], int]:
        found: dict[tuple[str, str, bool], int] = {}
        for record in self.pending_jobs():
            key = (record.job.queue, record.job.tenant, record.held)
            found[key] = found.get(key, 0) + 1
        return found

    def record_event(
        self, job_id: int | None, kind: str, reason: str, *, at: float, actor: str,
        data: Mapping[str, object] | None = None,
    ) -> None:  # fmt: skip
        with self._transaction() as db:
            db.event(at, kind, job_id, (None, None), actor, reason, **dict(data or {}))

    def record_gpu_summary(self, summary: GpuSummary) -> None:
        with self._transaction() as db:
            db.gpu_summaries[summary.run_id] = summary

    def gpu_summaries(self, job_id: int) -> list[GpuSummary]:
        with self._reading() as db:
            found = [s for s in db.gpu_summaries.values() if s.job_id == job_id]
            return sorted(found, key=lambda s: s.first_at)

    def record_node_check(self, check: NodeCheckRecord) -> NodeCheckRecord:
        with self._transaction() as db:
            stored = replace(check, id=len(db.checks) + 1)
            db.checks.append(stored)
            return stored

    def node_checks(self) -> dict[str, NodeCheckRecord]:
        with self._reading() as db:
            return {c.node: c for c in db.checks}  # later checks replace earlier ones

    def record_speeds(self, speeds: Sequence[FlavorSpeed]) -> None:
        with self._transaction() as db:
            for speed in speeds:
                key = (speed.job_class, speed.flavor)
                stored = db.speeds.get(key)
                if stored is None or not (stored.basis == "measured" and speed.basis != "measured"):
                    db.speeds[key] = speed

    def flavor_speeds(self, job_class: str | None = None) -> list[FlavorSpeed]:
        with self._reading() as db:
            return [db.speeds[k] for k in sorted(db.speeds) if job_class in (None, k[0])]

    # -- events

    def events(
        self, job_id: int | None = None, *, after: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        with self._reading() as db:
            found = [e for e in db.events if e.id > after and job_id in (None, e.job_id)]
            return found[: max(0, limit)]


def _amounts(s: Sums) -> tuple[float, float, float]:
    return s.gpu_milli_seconds, s.cpu_milli_seconds, s.memory_mib_seconds
