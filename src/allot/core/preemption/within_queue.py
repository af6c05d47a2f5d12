"""Within a queue: a job may preempt lower-priority jobs of its own queue (Kueue
``withinClusterQueue: LowerPriority``).

allot adds one rule on the whole victim set (``search.VictimSearch.quota_ok``): once the
preemptor is admitted in their place, its queue uses no more of any flavor-resource than both
it did and its nominal quota. A swap that made the queue borrow more would turn it into a
fair-share target it was not, and jobs would go round (docs/quotas.md, "what stops
ping-pong")."""

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
