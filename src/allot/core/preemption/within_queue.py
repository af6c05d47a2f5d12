"""Within a queue: a job may preempt lower-priority jobs of its own queue (Kueue
``withinClusterQueue: LowerPriority``), or also jobs of equal priority submitted after it
(``LowerOrNewerEqualPriority``: the older job goes first; the newer one can never take it
back, so no two jobs preempt each other).

allot adds one rule on the whole victim set (``search.VictimSearch.quota_ok``): once the
preemptor is admitted in their place, its queue uses no more of any flavor-resource than its
nominal quota: a swap happens on the queue's own quota only. A swap onto borrowed quota
would let a queue that was just reclaimed from, or a larger job that a queue-mate's borrowing
made room for, run on borrowed quota again, a fair-share target once more, and preemptions
would go round through three queues (docs/quotas.md, "what stops ping-pong")."""

from __future__ import annotations

from allot.core.model import RunningJob
from allot.core.preemption import Preemptor
from allot.core.quota.config import WithinQueue


def allows(preemptor: Preemptor, victim: RunningJob) -> bool:
    """True when ``victim`` is in the preemptor's queue with a lower priority (or, under
    ``lower_or_newer_equal_priority``, the same priority and submitted later)."""
    rule = preemptor.rules.within_queue
    p, v = preemptor.spec, victim.spec
    if rule is WithinQueue.NEVER or v.queue != p.queue:
        return False
    if v.priority < p.priority:
        return True
    return (
        rule is WithinQueue.LOWER_OR_NEWER_EQUAL_PRIORITY
        and v.priority == p.priority
        and (v.submit_time, v.id) > (p.submit_time, p.id)
    )
