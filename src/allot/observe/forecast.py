"""The forward run behind start-time estimates: the cluster as it is now, its running jobs and
its queue, driven forward through the same ``schedule()`` the live loop and the simulator call,
with no arrivals after ``now``.

Each cycle of the forward run is the core's: starts, backfill within reservations, and
preemptions (a victim stops at the end of its grace period and waits again). Time jumps from
one expected end to the next. A running job ends at its start plus its runtime estimate, else
its time limit (``JobSpec.expected_runtime``), as backfill plans; one with neither never ends in
the forward run, so whatever waits only for its GPUs gets no estimate. A pending job's estimate
is the instant the forward run first starts it; None when that is past ``horizon`` seconds,
``max_cycles`` cycles or the point where the caller's ``budget`` says stop (the live
estimator bounds its wall time this way; this module reads no clock), or when nothing would
ever start it.

What it cannot know, and so gets wrong: jobs submitted later that go ahead (priority, fair
share), runs that end earlier or later than their estimate, node failures and drains, and the
drift of fair-share usage within the horizon (the history stays as it is now).

Pure: no clock, no I/O; the caller's snapshot is never touched (the run builds its own).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from allot.core.cycle import schedule
from allot.core.model import Cluster, JobId, JobSpec, RunningJob
from allot.core.policy import Policy
from allot.core.quota.config import QuotaConfig
from allot.core.quota.fair_share import UsageHistory
from allot.core.snapshot import Snapshot

DEFAULT_HORIZON = 7 * 24 * 3600.0
DEFAULT_MAX_CYCLES = 2000


@dataclass(slots=True)
class Outlook:
    """What a forward run found: each pending job's estimated start (None: no estimate),
    and how far it got."""

    starts: dict[JobId, float | None] = field(default_factory=dict)
    cycles: int = 0
    until: float = 0.0  # the instant the run stopped at
    open_ended: int = 0  # running jobs with neither a runtime estimate nor a time limit
    truncated: bool = False  # stopped at the horizon or the cycle bound with jobs left


def forecast(
    cluster: Cluster,
    running: Iterable[RunningJob],
    pending: Sequence[JobSpec],
    policy: Policy,
    now: float,
    *,
    quotas: QuotaConfig | None = None,
    history: UsageHistory | None = None,
    attained: dict[JobId, float] | None = None,
    nominated: Iterable[JobId] = (),
    horizon: float = DEFAULT_HORIZON,
    max_cycles: int = DEFAULT_MAX_CYCLES,
    budget: Callable[[], bool] | None = None,
) -> Outlook:
    """Run the queue forward from ``now`` (see the module docstring)."""
    running = list(running)
    snap = Snapshot(cluster, running, quotas=quotas, history=history, attained=dict(attained or {}))
    waiting = {spec.id: spec for spec in pending}
    snap.nominated = set(nominated) & set(waiting)
    outlook = Outlook(dict.fromkeys(waiting), until=now)
    # (time, kind, job id, generation): kind 0 ends a run, 1 ends a preempted run's grace
    events: list[tuple[float, int, JobId, int]] = []
    generation: dict[JobId, int] = {}
    for job in running:
        end = job.expected_end
        if end == float("inf"):
            outlook.open_ended += 1
            continue
        kind = 1 if job.stopping_until is not None else 0
        heapq.heappush(events, (max(end, now), kind, job.spec.id, 0))
    t = now
    while waiting:
        plan = schedule(snap, list(waiting.values()), policy, t)
        outlook.cycles += 1
        for preemption in plan.preemptions:
            victim = preemption.victim
            if victim not in snap.running:
                continue
            if preemption.preemptor is not None:
                snap.nominated.add(preemption.preemptor)
            snap.mark_stopping(victim, preemption.stop_by)
            generation[victim] = generation.get(victim, 0) + 1
            heapq.heappush(events, (preemption.stop_by, 1, victim, generation[victim]))
        for start in plan.starts:
            spec = waiting.pop(start.job_id)
            snap.nominated.discard(start.job_id)
            if outlook.starts.get(start.job_id, 0.0) is None:
                outlook.starts[start.job_id] = t
            prior = snap.attained.pop(start.job_id, 0.0)
            snap.start(RunningJob(spec, t, start.placement, start.flavor, prior))
            runtime = spec.expected_runtime
            if runtime is None:
                outlook.open_ended += 1
                continue
            generation[spec.id] = generation.get(spec.id, 0) + 1
            heapq.heappush(events, (t + runtime, 0, spec.id, generation[spec.id]))
        if not waiting:
            break
        spent = budget is not None and budget()
        if not events or outlook.cycles >= max_cycles or events[0][0] > now + horizon or spent:
            outlook.truncated = bool(events)
            break
        t = events[0][0]
        while events and events[0][0] == t:
            _, kind, job_id, gen = heapq.heappop(events)
            ended = snap.running.get(job_id)
            if ended is None or generation.get(job_id, 0) != gen:
                continue  # that run already ended (preempted after this end was planned)
            snap.finish(job_id)
            if kind == 1:  # preempted: it waits again, with the service it received
                snap.attained[job_id] = ended.attained_at(t)
                waiting[job_id] = ended.spec
    outlook.until = t
    return outlook
