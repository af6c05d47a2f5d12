"""Explanations: why a job is not running now, as structured data that renders to one sentence.

Every pending job in a Plan carries one ``Explanation``: a ``Reason`` code plus the fields that
make it concrete (the flavor, the GPUs asked for, the largest free block, the job it waits
behind, the reservation time). Codes are stable identifiers for scripts and dashboards; the
sentence is for people. ``message()`` is total: every code renders, and a field it expects
but does not find gives a plainer sentence, never an error. Amounts read as people write them:
``1 GPU``, ``2 GPUs``, ``1 CPU``, ``32 GiB of memory``. A job that asks for no GPU (a CPU-only
job) is described without GPU words: its CPUs and memory, on "one node", never "one gpu node".

Fields some codes carry:
- ``never_fits``: ``limit_resource``, what runs short (``gpu``, ``cpu``, ``memory``; ``tasks``
  for a gang larger than all nodes together; ``shape`` for a task no one node holds whole),
  comma-separated when accepted flavors differ, the job's preferred flavor first; ``limit``,
  the sentence about what the nodes have; ``mixed_tasks`` when the tasks differ in size.
- ``preempting`` and ``waiting_for_preempted``: ``victims``, the job ids being stopped;
  ``until`` and ``stop_by``, when they must be gone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from allot.core.units import memory_size, quantity

FieldValue = str | int | float


class Reason(StrEnum):
    """Why a job is pending."""

    NO_FLAVOR = "no_flavor"  # no node of any accepted flavor exists
    NEVER_FITS = "never_fits"  # even an empty cluster could not place it
    NO_CAPACITY = "no_capacity"  # it would fit an empty cluster, but not what is free now
    BLOCKED_BY_HEAD = "blocked_by_head"  # strict FIFO: an earlier job does not fit
    RESERVED = "reserved"  # this job holds the backfill reservation
    BEHIND_RESERVATION = "behind_reservation"  # starting it would delay the reserved job
    NO_RESERVATION = "no_reservation"  # backfill head cannot be reserved (no runtime estimates)
    NODES_UNAVAILABLE = "nodes_unavailable"  # fits only nodes that are drained or down
    UNKNOWN_QUEUE = "unknown_queue"  # quotas are configured and the job's queue is not
    QUOTA = "quota"  # a queue or cohort limit on a flavor-resource stops it
    BLOCKED_IN_QUEUE = "blocked_in_queue"  # strict FIFO within its queue: an earlier job waits
    PREEMPTING = "preempting"  # running jobs are being stopped to make room for it
    WAITING_FOR_PREEMPTED = "waiting_for_preempted"  # fits once jobs being preempted stop
    BEHIND_PREEMPTOR = "behind_preemptor"  # a preemptor in its cohort holds the room it needs
    BUDGET = "budget"  # its projected cost would pass its tenant's (or user's) money budget
    BUDGET_EXHAUSTED = "budget_exhausted"  # a preempting budget's money is gone


TimeFormat = Callable[[float], str]


def virtual_time(t: float) -> str:
    """How the core writes an instant by default: seconds of (virtual) time, ``t=5400``."""
    return f"t={t:.0f}"


def memory(mib: float) -> str:
    """An amount of memory in words, in GiB from 1 GiB on (as ``allot nodes`` shows it):
    ``32 GiB of memory``, ``23.54 GiB of memory``, ``512 MiB of memory``."""
    return f"{memory_size(mib)} of memory"


def cpu_only(f: Mapping[str, FieldValue]) -> bool:
    """True for a job whose tasks ask for no GPU (known only when the fields say so)."""
    return "gpu_milli_per_task" in f and not f["gpu_milli_per_task"]


def _per_task(f: Mapping[str, FieldValue], resource: str) -> str:
    """What one task asks for of ``resource`` (``gpu``, ``cpu`` or ``memory``)."""
    if resource == "gpu":
        return quantity(float(f.get("gpu_milli_per_task", 0)) / 1000, "GPU")
    if resource == "cpu":
        return quantity(float(f.get("cpu_milli_per_task", 0)) / 1000, "CPU")
    return memory(float(f.get("memory_mib_per_task", 0)))


def _main(f: Mapping[str, FieldValue]) -> str:
    """What a task is mostly about: its GPUs, or its CPUs when it asks for no GPU."""
    return _per_task(f, "cpu" if cpu_only(f) else "gpu")


def _and(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _needs(f: Mapping[str, FieldValue]) -> str:
    tasks = int(f.get("tasks", 1))
    # A CPU-only job runs on any node; the node's GPU flavor is no concern of its own.
    of = "" if cpu_only(f) else f" of {f.get('flavors', 'any flavor')}"
    if tasks == 1:
        return f"needs {_main(f)}{of} on one node"
    return f"needs {tasks} tasks x {_main(f)}{of}"


# What the ``limit_resource`` of a NEVER_FITS explanation names: a resource no node of an
# accepted flavor has enough of for one task, the gang's size (``tasks``: each task fits a
# node, but all nodes together cannot hold every task), or the task's shape (``shape``: each
# amount fits some node, but no one node has them all).
TASK_RESOURCES = ("gpu", "cpu", "memory")
LIMITS = (*TASK_RESOURCES, "tasks", "shape")


def _never_fits(f: Mapping[str, FieldValue]) -> str:
    limit = f.get("limit", "no node can ever hold it")
    limits = [r for r in str(f.get("limit_resource", "")).split(",") if r in LIMITS]
    if not limits:
        return f"{_needs(f)}; {limit}"
    # A CPU-only job's sentence names no GPU flavor: "on one node", not "on one gpu node".
    flavors = "" if cpu_only(f) else f"{f.get('flavors', 'any flavor')} "
    if "shape" in limits:
        limits = [*limits, *TASK_RESOURCES]
    amounts = [_per_task(f, r) for r in TASK_RESOURCES if r in limits]
    if "tasks" in limits:
        each = ("up to " if f.get("mixed_tasks") else "") + (_and(amounts) or _main(f))
        on = f" on {flavors}nodes" if flavors else ""
        return f"needs {f.get('tasks', 1)} tasks of {each} each at once{on}; {limit}"
    if "shape" in limits:
        return f"needs {_and(amounts)} together on one {flavors}node; {limit}"
    return f"needs {_and(amounts)} per task on one {flavors}node; {limit}"


def _never_fits_remedy(f: Mapping[str, FieldValue]) -> str:
    first = str(f.get("limit_resource", "")).split(",")[0]
    if first == "tasks":
        return "ask for fewer tasks, or less per task so that more fit on a node"
    if first in ("gpu", "cpu"):
        return f"ask for fewer {first.upper()}s per task, or split the job into more, smaller tasks"
    if first == "memory":
        return "ask for less memory per task, or split the job into more, smaller tasks"
    return "ask for less per task or split the job into more, smaller tasks"


def _job_ids(value: FieldValue | None) -> list[str]:
    """Job ids given as a comma-separated string (or one id)."""
    if value is None:
        return []
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _jobs(ids: Sequence[str]) -> str:
    """``job 12`` or ``jobs 12, 14``."""
    return f"job {ids[0]}" if len(ids) == 1 else "jobs " + ", ".join(ids)


def _waiting_for_preempted(f: Mapping[str, FieldValue], when: TimeFormat) -> str:
    victims = _job_ids(f.get("victims"))
    if not victims:
        return "waits for jobs being preempted to stop; it fits once they have"
    stop_by = f.get("stop_by")
    by = "" if stop_by is None else f" (by {when(float(stop_by))})"
    room = "the room it frees" if len(victims) == 1 else "the room they free"
    return f"waits for {_jobs(victims)} to stop{by} to take {room}"


# Why a preemption strategy may stop a job, in words (the codes of ``preemption.Strategy``).
_STRATEGY_WORDS = {
    "within_queue": "lower priority in the same queue",
    "reclaim": "reclaiming quota lent to another queue",
    "borrow_within_cohort": "lower priority in a queue that borrows, while borrowing",
    "fair_share": "restoring fair share between queues",
    "las": "least GPU time served goes first",
}


def _preempting(f: Mapping[str, FieldValue], when: TimeFormat) -> str:
    victims = _job_ids(f.get("victims"))
    until = when(float(f.get("until", 0)))
    they = "it stops" if len(victims) == 1 else "they stop"
    who = _jobs(victims) if victims else "jobs"
    codes = [part.strip() for part in str(f.get("strategy", "")).split(",") if part.strip()]
    why = ", ".join(_STRATEGY_WORDS.get(code, code) for code in codes)
    because = f" ({why})" if why else ""
    return f"preempting {who} to make room for it{because}; starts once {they}, by {until}"


def _amount(resource: FieldValue, amount: FieldValue) -> str:
    value = float(amount)
    if resource == "gpu":
        return quantity(value / 1000, "GPU")
    if resource == "cpu":
        return quantity(value / 1000, "CPU")
    return memory(value)


# A quota's flavor and resource in words: "H100 GPUs", "CPUs on H100 nodes".
_QUOTA_RESOURCE = {
    "gpu": "{flavor} GPUs",
    "cpu": "CPUs on {flavor} nodes",
    "memory": "memory on {flavor} nodes",
}


def _quota(f: Mapping[str, FieldValue]) -> str:
    queue, flavor, resource = f.get("queue"), f.get("flavor"), f.get("resource", "gpu")
    needed = _amount(resource, f.get("needed", 0))
    left = _amount(resource, f.get("available", 0))
    limit = f.get("limit")
    if limit == "not_covered":
        return f"queue {queue} has no quota for flavor {flavor}"
    if limit == "cohort":
        cohort = f.get("node")
        return f"cohort {cohort} has {left} of {flavor} left to lend; queue {queue} needs {needed}"
    what = "borrowing limit" if limit == "borrowing_limit" else "nominal quota"
    owner = f"queue {queue}" if f.get("node") == queue else f"cohort {f.get('node')}"
    of = _QUOTA_RESOURCE.get(str(resource), "{flavor} " + str(resource)).format(flavor=flavor)
    return f"{owner} would exceed its {what} of {of}: needs {needed}, {left} left"


def _render(reason: Reason, f: Mapping[str, FieldValue], when: TimeFormat) -> str:
    match reason:
        case Reason.NO_FLAVOR:
            return (
                f"accepts only the flavors (GPU types) {f.get('flavors')}, and the cluster has"
                " none of them"
            )
        case Reason.NEVER_FITS:
            return _never_fits(f)
        case Reason.NO_CAPACITY:
            return f"{_needs(f)}; {f.get('shortfall', 'not enough is free')}"
        case Reason.BLOCKED_BY_HEAD:
            return f"strict FIFO: waits behind job {f.get('head')}, which does not fit yet"
        case Reason.RESERVED:
            return (
                f"{_needs(f)}; it is next: room is reserved for it on {f.get('nodes')} from"
                f" {when(float(f.get('at', 0)))}"
            )
        case Reason.BEHIND_RESERVATION:
            until = float(f.get("until", 0))
            return (
                f"waits so as not to delay job {f.get('head')}, which has room reserved from"
                f" {when(until)}: started now, it might still be running then"
            )
        case Reason.NO_RESERVATION:
            return (
                f"waits behind job {f.get('head')}, which does not fit yet and whose start"
                " cannot be reserved: the running jobs have no time limit or runtime estimate;"
                " jobs with a --time-limit let the scheduler reserve a start and backfill"
                " around it"
            )
        case Reason.NODES_UNAVAILABLE:
            return f"{_needs(f)}; only nodes that are drained or down could hold it"
        case Reason.UNKNOWN_QUEUE:
            return f"queue {f.get('queue')} is not configured; known queues: {f.get('known')}"
        case Reason.QUOTA:
            return _quota(f)
        case Reason.BLOCKED_IN_QUEUE:
            return f"strict FIFO in queue {f.get('queue')}: waits behind job {f.get('head')}"
        case Reason.PREEMPTING:
            return _preempting(f, when)
        case Reason.WAITING_FOR_PREEMPTED:
            return _waiting_for_preempted(f, when)
        case Reason.BEHIND_PREEMPTOR:
            return (
                f"waits behind job {f.get('preemptor')}, which preempted jobs in its cohort and"
                " holds the room they free"
            )
        case Reason.BUDGET:
            return _budget(f)
        case Reason.BUDGET_EXHAUSTED:
            return _budget_exhausted(f)
    return str(reason)  # pragma: no cover - every Reason is matched above


def _remedy(reason: Reason, f: Mapping[str, FieldValue], when: TimeFormat) -> str:
    match reason:
        case Reason.NO_FLAVOR:
            return "accept a flavor the cluster has"
        case Reason.NEVER_FITS:
            return _never_fits_remedy(f)
        case Reason.NO_CAPACITY:
            return "starts when running jobs free enough room; a smaller request may start sooner"
        case Reason.BLOCKED_BY_HEAD:
            return f"starts after job {f.get('head')} starts or is cancelled"
        case Reason.RESERVED:
            return f"starts at {when(float(f.get('at', 0)))} if running jobs end by their estimates"
        case Reason.BEHIND_RESERVATION:
            return (
                "a time limit or runtime estimate (--time-limit, --estimate) that ends it by "
                f"{when(float(f.get('until', 0)))} would let it start now"
            )
        case Reason.NO_RESERVATION:
            return (
                "submit jobs with a --time-limit (or --estimate): then the scheduler can reserve"
                f" a start for job {f.get('head')} and start shorter jobs before it"
            )
        case Reason.NODES_UNAVAILABLE:
            return "an administrator undrains or repairs the nodes it needs"
        case Reason.UNKNOWN_QUEUE:
            return f"submit to one of the configured queues: {f.get('known')}"
        case Reason.QUOTA:
            if f.get("limit") == "not_covered":
                return "use a flavor the queue has quota for, or add that flavor to its quota"
            return "starts when the queue's or its cohort's usage drops; or raise the quota"
        case Reason.BLOCKED_IN_QUEUE:
            return f"starts after job {f.get('head')} of the same queue starts or is cancelled"
        case Reason.PREEMPTING | Reason.WAITING_FOR_PREEMPTED:
            return "starts once the preempted jobs have stopped"
        case Reason.BEHIND_PREEMPTOR:
            return f"is considered again once job {f.get('preemptor')} has started"
        case Reason.BUDGET:
            return _budget_remedy(f, when)
        case Reason.BUDGET_EXHAUSTED:
            return _budget_remedy(f, when).split(";")[0]
    return ""  # pragma: no cover - every Reason is matched above


def _money(f: Mapping[str, FieldValue], name: str) -> str:
    return f"{float(f.get(name, 0) or 0):.2f} {f.get('currency', '')}".rstrip()


def _budget_owner(f: Mapping[str, FieldValue]) -> str:
    """Whose budget: a tenant's, or a user's within it."""
    if f.get("user"):
        return f"user {f.get('user')} of tenant {f.get('tenant')}"
    return f"tenant {f.get('tenant')}"


def _budget(f: Mapping[str, FieldValue]) -> str:
    owner = _budget_owner(f)
    return (
        f"its projected cost on {f.get('flavor')}, {_money(f, 'needed')}, would pass the budget"
        f" of {owner} for {f.get('period')}: {float(f.get('committed', 0) or 0):.2f} of"
        f" {_money(f, 'limit')} is spent or committed to running jobs,"
        f" {_money(f, 'remaining')} is left"
    )


def _budget_exhausted(f: Mapping[str, FieldValue]) -> str:
    owner = _budget_owner(f)
    return (
        f"the budget of {owner} for {f.get('period')} is exhausted and preempts:"
        f" {_money(f, 'spent')} of {_money(f, 'limit')} is spent, and with what stopping its"
        f" running jobs costs it needs {_money(f, 'needed')}; its newest running jobs are"
        " preempted and its jobs wait"
    )


def _budget_remedy(f: Mapping[str, FieldValue], when: TimeFormat) -> str:
    renews = f.get("renews")
    later = (
        f"starts once the budget renews at {when(float(renews))}"
        if isinstance(renews, int | float)
        else "starts as older spending leaves the budget's window"
    )
    return (
        f"{later}, or when an administrator raises the budget; a shorter --time-limit or"
        " --estimate (what the projection uses) or a cheaper flavor may let it start sooner"
    )


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a job waits: a stable ``reason`` code and the ``fields`` that make it concrete."""

    reason: Reason
    fields: Mapping[str, FieldValue] = field(default_factory=dict)

    def message(self, when: TimeFormat = virtual_time) -> str:
        """One sentence for people, e.g. "needs 8 GPUs of H100 on one node; largest free
        block is 4"."""
        return _render(self.reason, self.fields, when)

    def remedy(self, when: TimeFormat = virtual_time) -> str:
        """What would unblock the job, in one sentence (instants written by ``when``)."""
        return _remedy(self.reason, self.fields, when)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form: code, fields, message and remedy."""
        return {
            "reason": str(self.reason),
            "fields": dict(self.fields),
            "message": self.message(),
            "remedy": self.remedy(),
        }
