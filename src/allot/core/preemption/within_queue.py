"""Within a queue: a job may preempt lower-priority jobs of its own queue (Kueue
``withinClusterQueue: LowerPriority``)."""

from __future__ import annotations

from allot.core.model import RunningJob
from allot.core.preemption import Preemptor
from allot.core.quota.config import WithinQueue


def allows(preemptor: Preemptor, victim: RunningJob) -> bool:
    """True when ``victim`` is in the preemptor's queue with a lower priority."""
    return (
        preemptor.rules.within_queue is WithinQueue.LOWER_PRIORITY
        and victim.spec.queue == preemptor.spec.queue
        and victim.spec.priority < preemptor.spec.priority
    )
