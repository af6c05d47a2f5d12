"""Idle-GPU reclaim: a run whose GPUs all stay idle longer than its queue's ``idle_timeout``
is released, so a forgotten notebook or shell does not hold GPUs others wait for.

Judged from GPU telemetry (``allot.observe.telemetry`` calls ``check`` after each sample): a
run is idle while every GPU it holds reads under 1% utilisation; any busy sample resets it.
At 80% of the timeout the job gets an ``idle_warning`` event (its reason says when it will be
released); at the timeout its run is stopped as a cancel is, with the grace period preemption
gives (SIGTERM, then SIGKILL when the grace is over), and the job ends cancelled with the
reason in its events. Only running runs of queues with an ``idle_timeout`` are judged; a GPU
NVML could not read is neither idle nor busy. Without NVML there are no readings, so nothing
is ever released.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from allot.control.ports import Scheduler, Store
from allot.control.reasons import wall_time
from allot.control.records import JobRecord, RunPhase, StopCause

ACTOR = "idle-reclaim"
IDLE_PERCENT = 1  # a GPU under this utilisation (percent) is idle
WARN_SHARE = 0.8  # the warning comes at this share of the timeout


def _span(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


class IdleReclaim:
    """Tracks how long each run's GPUs have been idle; warns, then releases."""

    def __init__(self, store: Store, scheduler: Scheduler) -> None:
        self.store = store
        self.scheduler = scheduler
        self._since: dict[str, float] = {}  # run id -> first idle sample of the current spell
        self._warned: set[str] = set()

    def check(
        self,
        now: float,
        runs: Sequence[tuple[JobRecord, tuple[int, ...]]],
        utilization: Mapping[int, int],
    ) -> list[int]:
        """Judge ``runs`` (each with its GPU indices) against this sample's ``utilization``
        (percent per GPU index); returns the jobs released."""
        timeouts = {q.name: q.idle_timeout for q in self.store.quotas().queues if q.idle_timeout}
        released: list[int] = []
        live: set[str] = set()
        for record, devices in runs:
            run = record.run
            if run is None:
                continue
            live.add(run.run_id)
            timeout = timeouts.get(record.job.queue)
            read = [utilization[d] for d in devices if d in utilization]
            if timeout is None or run.phase is not RunPhase.RUNNING or not read:
                continue
            if any(u >= IDLE_PERCENT for u in read):
                self._since.pop(run.run_id, None)
                self._warned.discard(run.run_id)
                continue
            idle = now - self._since.setdefault(run.run_id, now)
            queue = record.job.queue
            if idle >= timeout:
                reason = (
                    f"released: its GPUs were idle for {_span(idle)} (queue {queue}"
                    f" idle_timeout {_span(timeout)})"
                )
                self.scheduler.stop_run(run, cause=StopCause.CANCELLED, reason=reason,
                                        actor=ACTOR)  # fmt: skip
                released.append(record.id)
            elif idle >= WARN_SHARE * timeout and run.run_id not in self._warned:
                at = wall_time(now + timeout - idle)
                reason = (
                    f"its GPUs have been idle for {_span(idle)}; it will be released at {at}"
                    f" (queue {queue} idle_timeout {_span(timeout)}) unless they are used"
                )
                data = {"idle_seconds": idle, "idle_timeout": timeout, "run_id": run.run_id}
                self.store.record_event(record.id, "idle_warning", reason, at=now, actor=ACTOR,
                                        data=data)  # fmt: skip
                self._warned.add(run.run_id)
        for gone in set(self._since) - live:
            del self._since[gone]
        self._warned &= live
        return released
