"""Explanations: why a job is not running now, as structured data that renders to one sentence.

Every pending job in a Plan carries one ``Explanation``: a ``Reason`` code plus the fields that
make it concrete (the flavor, the GPUs asked for, the largest free block, the job it waits
behind, the reservation time). Codes are stable identifiers for scripts and dashboards; the
sentence is for people. ``message()`` is total: every code renders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

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


def _gpus(milli: FieldValue) -> str:
    value = float(milli) / 1000
    return f"{value:g}"


def _needs(f: Mapping[str, FieldValue]) -> str:
    tasks = int(f.get("tasks", 1))
    per_task = f"{_gpus(f.get('gpu_milli_per_task', 0))} GPUs"
    if f.get("gpu_milli_per_task", 0) == 0:
        per_task = f"{_gpus(f.get('cpu_milli_per_task', 0))} CPUs"
    flavors = f.get("flavors", "any flavor")
    if tasks == 1:
        return f"needs {per_task} of {flavors} on one node"
    return f"needs {tasks} tasks x {per_task} of {flavors}"


def _amount(resource: FieldValue, amount: FieldValue) -> str:
    value = float(amount)
    if resource == "gpu":
        return f"{value / 1000:g} GPUs"
    if resource == "cpu":
        return f"{value / 1000:g} CPUs"
    return f"{value:g} MiB of memory"


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
    return f"{owner} would exceed its {what} of {flavor} {resource}: needs {needed}, {left} left"


TimeFormat = Callable[[float], str]


def virtual_time(t: float) -> str:
    """How the core writes an instant by default: seconds of (virtual) time, ``t=5400``."""
    return f"t={t:.0f}"


def _render(reason: Reason, f: Mapping[str, FieldValue], when: TimeFormat) -> str:
    match reason:
        case Reason.NO_FLAVOR:
            return f"accepts flavors {f.get('flavors')}, but the cluster has none of them"
        case Reason.NEVER_FITS:
            return f"{_needs(f)}; {f.get('limit', 'no node can ever hold it')}"
        case Reason.NO_CAPACITY:
            if int(f.get("tasks", 1)) == 1:
                return f"{_needs(f)}; {f.get('shortfall', 'not enough is free')}"
            return f"{_needs(f)}; {f.get('shortfall', 'not enough is free')}"
        case Reason.BLOCKED_BY_HEAD:
            return f"strict FIFO: waits behind job {f.get('head')}, which does not fit yet"
        case Reason.RESERVED:
            return (
                f"{_needs(f)}; capacity is reserved for it from {when(float(f.get('at', 0)))}"
                f" on {f.get('nodes')}"
            )
        case Reason.BEHIND_RESERVATION:
            until = float(f.get("until", 0))
            return (
                f"behind reservation for job {f.get('head')} until {when(until)}; starting it"
                " now would still hold capacity reserved for that job then"
            )
        case Reason.NO_RESERVATION:
            return (
                f"waits behind job {f.get('head')}, whose start cannot be reserved because running"
                " jobs have neither a runtime estimate nor a time limit"
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
            until = float(f.get("until", 0))
            return (
                f"preempting job(s) {f.get('victims')} ({f.get('strategy')}); starts once they"
                f" stop, by {when(until)}"
            )
        case Reason.WAITING_FOR_PREEMPTED:
            return "waits for jobs being preempted to stop; it fits once they have"
        case Reason.BEHIND_PREEMPTOR:
            return (
                f"waits behind job {f.get('preemptor')}, which preempted jobs in its cohort and"
                " holds the room they free"
            )
    return str(reason)  # pragma: no cover - every Reason is matched above


def _remedy(reason: Reason, f: Mapping[str, FieldValue], when: TimeFormat) -> str:
    match reason:
        case Reason.NO_FLAVOR:
            return "accept a flavor the cluster has"
        case Reason.NEVER_FITS:
            return "ask for less per task or split the job into more, smaller tasks"
        case Reason.NO_CAPACITY:
            return "starts when running jobs free enough room; a smaller request may start sooner"
        case Reason.BLOCKED_BY_HEAD:
            return f"starts after job {f.get('head')} starts or is cancelled"
        case Reason.RESERVED:
            return f"starts at {when(float(f.get('at', 0)))} if running jobs end by their estimates"
        case Reason.BEHIND_RESERVATION:
            return (
                "a runtime estimate or time limit that ends it by "
                f"{when(float(f.get('until', 0)))} would let it start now"
            )
        case Reason.NO_RESERVATION:
            return "runtime estimates or time limits on running jobs let the scheduler plan"
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
    return ""  # pragma: no cover - every Reason is matched above


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
