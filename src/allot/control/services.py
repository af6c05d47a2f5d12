"""Use cases of the control plane: what the API (and nothing else) calls.

Each use case validates, changes the store in one transaction, and wakes the scheduling loop
when something it acts on changed. Validation that needs the cluster (flavors, queues, whether
the job could ever fit) happens here, so a rejected request changes nothing; a job that can
never run is refused naming the field that asks too much (``resources.cpus``, ``tasks``, ...),
and one whose dependency names no job, or can already never be met, names it (``after[0]``).
A job can only wait for jobs that exist when it is submitted, whose ids are all lower than its
own, so it can never wait for itself and dependencies never form a cycle.
The reasons users see (why a job waits, what the executor notes about a running one) are
worded by ``allot.control.reasons``.

A submitted task's CPU or memory of 0 means "not given" (the API accepts no 0 there): before
its checks, a submission gets the defaults of ``allot.core.defaults`` from the node shape, and
the job is stored with the amounts it resolved to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from allot.control import reasons
from allot.control.audit import AuditTrail
from allot.control.dependencies import problem_at_submit
from allot.control.estimates import NoEstimates, StartEstimates
from allot.control.metering import Metering
from allot.control.ports import Clock, ConflictError, Executor, NotFoundError, Scheduler, Store
from allot.control.principal import ForbiddenError, Principal
from allot.control.reasons import Explained, wall_time
from allot.control.records import (
    NEW_ARRAY,
    EventRecord,
    JobFilter,
    JobRecord,
    NewJob,
    RunPhase,
    StopCause,
)
from allot.control.registry import ExecutorRegistry
from allot.control.workdirs import WorkdirRule
from allot.core.defaults import fill_task
from allot.core.explain import Explanation, Reason
from allot.core.model import Cluster, JobState, Node, NodeState, Resources, SpecError
from allot.core.placement.diagnose import screen
from allot.core.quota.config import QuotaConfig
from allot.core.snapshot import Snapshot

VIEW_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class _ClusterView:
    """What submissions are checked against: queue names, flavors, and every node as if up
    and empty (a job that cannot fit that can never run here)."""

    read_at: float
    queues: tuple[str, ...]  # in the order the quotas list them
    owners: dict[str, str]  # queue -> the tenant it belongs to
    flavors: list[str]
    nodes: tuple[Node, ...]
    empty: Snapshot


class RejectedError(ValueError):
    """A request that can never be satisfied; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.rule = message


@dataclass(frozen=True, slots=True)
class LogChunk:
    """Part of a task's output."""

    run_id: str | None
    data: bytes
    next_offset: int
    finished: bool  # the run has ended, so no more output will come


@dataclass(frozen=True, slots=True)
class QueueView:
    """A queue with what its running jobs hold, in milli-GPU per flavor."""

    name: str
    tenant: str
    cohort: str | None
    nominal_gpu_milli: dict[str, int]
    used_gpu_milli: dict[str, int]
    pending: int
    running: int


class ControlPlane:
    """The use cases, over a store, an executor, a clock and the scheduling loop."""

    def __init__(
        self,
        store: Store,
        executors: ExecutorRegistry | Executor,
        clock: Clock,
        loop: Scheduler,
        *,
        workdirs: WorkdirRule | None = None,
    ) -> None:
        self.store = store
        self.executors = ExecutorRegistry.of(executors)
        self.clock = clock
        self.loop = loop
        self.workdirs = workdirs or WorkdirRule()
        self.audit = AuditTrail(store, clock)
        self.estimates: StartEstimates = NoEstimates()  # set by an estimator (allot.observe.eta)
        self.metering = Metering(store, clock)
        self._view: _ClusterView | None = None

    def forget_cluster(self) -> None:
        """Re-read queues and nodes at the next submission (the quotas changed)."""
        self._view = None

    # ------------------------------------------------------------------ jobs

    def submit(
        self,
        job: NewJob,
        *,
        principal: Principal,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Accept a job (durably) and wake the loop. Raises RejectedError for a job that could
        never run here (unknown queue or flavor, larger than any node or gang can get) and
        ConflictError for an idempotency key reused with a different request."""
        actor = principal.user
        try:
            job = self._check_runnable(job, principal)
            problem = self._dependency_problems([job], principal).get(0)
            if problem is not None:
                raise problem
        except RejectedError:
            # A retry answers with the job already accepted, even if the cluster changed since.
            if idempotency_key is not None:
                known = self.store.find_idempotent(actor, idempotency_key, request_hash)
                if known is not None:
                    return known, False
            raise
        record, created = self.store.submit(
            job,
            at=self.clock.now(),
            actor=actor,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )
        if created and not record.held:
            self.loop.wake()
        return record, created

    def submit_many(
        self,
        jobs: Sequence[NewJob],
        *,
        principal: Principal,
        idempotency_keys: Sequence[str | None],
        request_hashes: Sequence[str | None],
        array: int | None = None,
    ) -> list[tuple[JobRecord, bool]]:
        """Accept many jobs at once: every job is checked first (a RejectedError names the
        job by its index, ``jobs[3].tasks``), then all are stored in one transaction.
        ``array``: None, ``NEW_ARRAY`` (they form a new array) or the id of an array to add
        them to (``array_id``)."""
        actor = principal.user
        jobs = list(jobs)
        problems = self._dependency_problems(jobs, principal, array)
        for index, job in enumerate(jobs):
            try:
                jobs[index] = self._check_runnable(job, principal)
                if index in problems:
                    raise problems[index]
            except RejectedError as err:
                key = idempotency_keys[index]
                if key is not None and self.store.find_idempotent(
                    actor, key, request_hashes[index]
                ):
                    continue  # a retried batch: that job was accepted before
                raise RejectedError(f"jobs[{index}].{err.field}", err.rule) from None
        results = self.store.submit_many(
            jobs,
            at=self.clock.now(),
            actor=actor,
            idempotency_keys=idempotency_keys,
            request_hashes=request_hashes,
            array=array,
        )
        if any(created and not record.held for record, created in results):
            self.loop.wake()
        return results

    def _cluster(self) -> _ClusterView:
        """Queues, flavors and an empty copy of the cluster to screen submissions against,
        re-read from the store at most every ``VIEW_SECONDS`` (and after a node changes)."""
        now = self.clock.now()
        view = self._view
        if view is None or now - view.read_at > VIEW_SECONDS:
            nodes = self.store.nodes()
            up = tuple(
                Node(n.name, n.flavor, n.gpus, n.cpu_milli, n.memory_mib, n.topology) for n in nodes
            )
            specs = self.store.quotas().queues
            view = self._view = _ClusterView(
                now,
                tuple(q.name for q in specs),
                {q.name: q.tenant for q in specs},
                sorted({n.flavor for n in nodes}),
                up,
                Snapshot(Cluster(up)),
            )
        return view

    def _check_runnable(self, job: NewJob, principal: Principal) -> NewJob:
        """The job as it will be stored, if it could ever run here and ``principal`` may
        submit it: its user the caller, its tenant its queue's, its default CPU and memory
        filled in. Raises RejectedError, or ForbiddenError for a tenant the caller is not in."""
        view = self._cluster()
        queues = view.queues
        if job.queue not in queues:
            raise RejectedError("queue", _unknown_queue(job.queue, queues))
        owner = view.owners[job.queue]
        if job.tenant and not principal.may_submit_to(job.tenant):
            raise ForbiddenError(f"tenant: {principal.user} may not submit jobs for tenant"
                                 f" {job.tenant!r}")  # fmt: skip
        if job.tenant and job.tenant != owner:
            raise RejectedError(
                "tenant", f"queue {job.queue} belongs to tenant {owner!r}, not {job.tenant!r}"
            )
        principal.check_submit(owner)
        job = replace(job, tenant=owner, user=principal.user)
        refused = self.workdirs.problem(job.launch.workdir)
        if refused is not None:
            raise RejectedError("workdir", refused)
        flavors = view.flavors
        for flavor in job.flavors:
            if flavor not in flavors:
                known = ", ".join(flavors) or "no nodes"
                raise RejectedError(
                    "flavors", f"unknown flavor {flavor!r}; the cluster has: {known}"
                )
        if not view.empty.nodes:
            raise RejectedError("tasks", "the cluster has no nodes yet")
        job = _with_defaults(job, view.nodes)
        spec = JobRecord(0, job, JobState.PENDING, 0.0).spec()
        # The view's snapshot is shared: screening only reads it (and memoises per shape).
        reason = screen(view.empty, spec)
        if reason is not None:
            raise RejectedError(_field_of(reason), reason.message())
        return job

    def _dependency_problems(
        self, jobs: Sequence[NewJob], principal: Principal, array: int | None = None
    ) -> dict[int, RejectedError]:
        """What is wrong with each job's dependencies, by index in ``jobs`` (read in one go);
        raises RejectedError when ``array`` names no array. A job or array of a tenant
        ``principal`` may not see is one that does not exist."""
        joins = None if array in (None, NEW_ARRAY) else array
        targets = {d.job_id for job in jobs for d in job.after}
        if joins is not None:
            targets.add(joins)
        progress = self.store.dependency_progress(targets) if targets else {}
        if not principal.is_cluster_admin:
            # Another tenant's job (or array) is named as if it did not exist.
            progress = {
                job_id: found
                for job_id, found in progress.items()
                if principal.may_read(self.store.get_job(job_id).job.tenant)
            }
        if joins is not None and not (joins in progress and progress[joins].array):
            raise RejectedError(
                "array_id", f"job {joins} does not name an array (an array's first job's id)"
            )
        problems: dict[int, RejectedError] = {}
        for index, job in enumerate(jobs):
            problem = problem_at_submit(job.after, progress, joins)
            if problem is not None:
                problems[index] = RejectedError(*problem)
        return problems

    def _visible(self, job_id: int, principal: Principal) -> JobRecord:
        """The job, if ``principal`` may see it; raises NotFoundError as for a job that does
        not exist otherwise, so another tenant's jobs do not show through."""
        record = self.store.get_job(job_id)
        if not principal.may_read(record.job.tenant):
            raise NotFoundError(f"job {job_id} does not exist")
        return record

    def get(self, job_id: int, *, principal: Principal) -> JobRecord:
        """The job, with the reason users see (``reasons.with_reason``: why a pending job
        waits, what the executor notes about a running one); raises NotFoundError (also for
        a job of a tenant the caller is not in)."""
        record = self._visible(job_id, principal)
        return reasons.with_reason(record, self.loop, self.executors)

    def list_jobs(self, where: JobFilter, *, principal: Principal) -> list[JobRecord]:
        """Jobs matching ``where`` among those ``principal`` may see, newest first, a pending
        job with why it waits. When none matches and ``where.queue`` is not a configured
        queue, raises RejectedError naming the known ones: a mistyped queue is an error, not
        an empty list (jobs left in a queue that is no longer configured are still listed)."""
        visible = principal.visible_tenants()
        if visible is not None:
            where = replace(
                where, tenants=visible if where.tenants is None else visible & where.tenants
            )
        found = self.store.list_jobs(where)
        if not found and where.queue is not None:
            queues = self._cluster().queues
            if where.queue not in queues:
                known = ", ".join(sorted(queues)) or "none"
                raise RejectedError(
                    "queue", f"unknown queue {where.queue!r}; known queues: {known}"
                )
        return [reasons.with_reason(r, self.loop) for r in found]

    def events(self, job_id: int, *, principal: Principal) -> list[EventRecord]:
        """The job's event log, oldest first; raises NotFoundError."""
        self._visible(job_id, principal)
        return self.store.events(job_id)

    def cancel(self, job_id: int, *, principal: Principal) -> JobRecord:
        """Cancel a pending job at once, or stop a running one (SIGTERM, then SIGKILL after the
        grace period); a job already stopping is left as it is and returned. Raises
        ConflictError for a job that has already ended."""
        actor = principal.user
        record = self._visible(job_id, principal)
        principal.check_act(record.job.tenant, record.job.user, "cancel")
        if record.state is JobState.PENDING:
            record = self.store.cancel_pending(
                job_id, at=self.clock.now(), actor=actor, reason=f"cancelled by {actor}"
            )
            self.loop.wake()
            return record
        if record.state is JobState.RUNNING and record.run is not None:
            reason = f"cancelled by {actor}"
            cause = StopCause.CANCELLED
            if record.run.phase is RunPhase.STOPPING:
                # Already asked to stop: no second SIGTERM (it could abort the task's
                # checkpoint), but a preemption or time limit becomes a cancel, so the job
                # ends cancelled instead of being requeued.
                if record.run.stop_cause is not cause:
                    self.store.restate_stop(
                        record.run.run_id,
                        cause=cause,
                        reason=reason,
                        at=self.clock.now(),
                        actor=actor,
                    )
                return self.store.get_job(job_id)
            self.loop.stop_run(record.run, cause=cause, reason=reason, actor=actor)
            return self.store.get_job(job_id)
        raise ConflictError(f"job {job_id} is already {record.state}; nothing to cancel")

    def hold(self, job_id: int, *, principal: Principal) -> JobRecord:
        """Keep a pending job from starting until released."""
        job = self._visible(job_id, principal).job
        principal.check_act(job.tenant, job.user, "hold")
        return self.store.set_held(job_id, True, at=self.clock.now(), actor=principal.user)

    def release(self, job_id: int, *, principal: Principal) -> JobRecord:
        """Let a held job be scheduled again."""
        job = self._visible(job_id, principal).job
        principal.check_act(job.tenant, job.user, "release")
        record = self.store.set_held(job_id, False, at=self.clock.now(), actor=principal.user)
        self.loop.wake()
        return record

    def logs(
        self,
        job_id: int,
        *,
        principal: Principal,
        task: int = 0,
        offset: int = 0,
        limit: int = 1 << 20,
    ) -> LogChunk:
        """Output of one task of the job's latest run (empty before it first starts)."""
        record = self._visible(job_id, principal)
        if not 0 <= task < len(record.job.tasks):
            raise RejectedError("task", f"must be in 0..{len(record.job.tasks) - 1}, got {task}")
        runs = self.store.runs_of(job_id)
        if not runs:
            return LogChunk(None, b"", 0, record.state.is_terminal)
        run = runs[-1]
        data, following = self.executors.read_log(run, task, offset, limit)
        return LogChunk(run.run_id, data, following, run.phase is RunPhase.ENDED)

    def explain(self, job_id: int, *, principal: Principal) -> Explained:
        """Why the job is pending (from the latest scheduling cycle) or where it is."""
        return reasons.explain(self._visible(job_id, principal), self.loop, self.executors)

    # ------------------------------------------------------------------ cluster

    def nodes(self) -> list[Node]:
        """Every node with its state."""
        return self.store.nodes()

    def inventory_source(self) -> str:
        """How the executors found their nodes' GPUs: ``nvml``, ``declared`` or ``none``
        (per pool when there are several)."""
        return self.executors.inventory_source()

    def gpu_sharing(self) -> str:
        """How shares of one GPU are enforced: ``mps``, ``unenforced`` or empty (unknown)."""
        return self.executors.gpu_sharing()

    def set_node_state(self, name: str, state: NodeState, *, principal: Principal) -> Node:
        """Drain (no new work), undrain (up) or mark a node down (cluster admins only)."""
        principal.check_admin("node")
        actor = principal.user
        if state is NodeState.DOWN:
            raise RejectedError("state", "a node goes down by itself; drain it instead")
        node = self.store.set_node_state(name, state, at=self.clock.now(), actor=actor)
        self._view = None
        self.loop.wake()
        return node

    def quotas(self) -> QuotaConfig:
        """Tenants, queues and cohorts."""
        return self.store.quotas()

    def queues(self) -> list[QueueView]:
        """Each queue with its nominal GPU quota, what it uses now, and its job counts."""
        config = self.store.quotas()
        used: dict[str, dict[str, int]] = {}
        running: dict[str, int] = {}
        for record in self.store.active_jobs():
            queue = record.job.queue
            running[queue] = running.get(queue, 0) + 1
            if record.run is not None:
                by_flavor = used.setdefault(queue, {})
                gpu = sum(t.gpu_milli for t in record.job.tasks)
                by_flavor[record.run.flavor] = by_flavor.get(record.run.flavor, 0) + gpu
        pending: dict[str, int] = {}
        for record in self.store.pending_jobs():
            pending[record.job.queue] = pending.get(record.job.queue, 0) + 1
        views = []
        for q in config.queues:
            nominal = {
                flavor: quota.nominal
                for (flavor, resource), quota in (q.quotas or {}).items()
                if resource == "gpu"
            }
            views.append(
                QueueView(
                    q.name,
                    q.tenant,
                    q.cohort,
                    nominal,
                    used.get(q.name, {}),
                    pending.get(q.name, 0),
                    running.get(q.name, 0),
                )
            )
        return views


def _with_defaults(job: NewJob, nodes: tuple[Node, ...]) -> NewJob:
    """``job`` with each task's missing (0) CPU and memory taken from the node shape."""
    if all(t.cpu_milli and t.memory_mib for t in job.tasks):
        return job
    filled: dict[Resources, Resources] = {}
    for t in job.tasks:
        if t not in filled:
            filled[t] = replace(
                fill_task(
                    nodes, job.flavors, t.gpu_milli, t.cpu_milli or None, t.memory_mib or None
                ),
                gpu_memory_mib=t.gpu_memory_mib,
            )
    return replace(job, tasks=tuple(filled[t] for t in job.tasks))


def _unknown_queue(name: str, queues: tuple[str, ...]) -> str:
    """Which queues exist and how to pick one; a job that named none went to ``default``."""
    if not queues:
        return f"unknown queue {name!r}; no queues are configured"
    known = ", ".join(sorted(queues))
    if name == "default":
        first = queues[0]
        return (
            f"unknown queue 'default' (the queue a job without one goes to): this cluster's"
            f" quotas have no queue 'default'; known queues: {known}; pick one, e.g."
            f" --queue {first} (or 'queue: {first}' in a job file)"
        )
    return f"unknown queue {name!r}; known queues: {known}"


# The submission field that a job which never fits asks too much of, by what runs short.
_LIMIT_FIELDS = {
    "gpu": "resources.gpus",
    "cpu": "resources.cpus",
    "memory": "resources.memory_mib",
    "shape": "resources",
    "tasks": "tasks",
}


def _field_of(reason: Explanation) -> str:
    """The field to name for a job that can never run: the resource its preferred flavor
    lacks (``limit_resource``), or ``flavors`` when none of them exists."""
    if reason.reason is Reason.NO_FLAVOR:
        return "flavors"
    first = str(reason.fields.get("limit_resource", "")).split(",")[0]
    return _LIMIT_FIELDS.get(first, "tasks")


__all__ = [
    "ConflictError",
    "ControlPlane",
    "Explained",
    "LogChunk",
    "NotFoundError",
    "QueueView",
    "RejectedError",
    "SpecError",
    "wall_time",
]
