"""2D-LAS preemption (Tiresias, Gu et al., NSDI 2019): a job at a lower attained-service level
may preempt a running job at a higher level. Levels only rise as jobs run, so the lowest level
can always win back the cluster and a job at the top level preempts no one."""

from __future__ import annotations

from collections.abc import Sequence

from allot.core.model import RunningJob
from allot.core.policy.ordering import las_level
from allot.core.preemption import Preemptor


def level_of(job: RunningJob, now: float, thresholds: Sequence[float]) -> int:
    """The level a running job has reached by ``now``."""
    return las_level(job.attained_at(now), thresholds)


def allows(preemptor: Preemptor, victim: RunningJob, thresholds: Sequence[float]) -> bool:
    """True when ``victim`` has reached a higher level than the preemptor."""
    if preemptor.las_level is None:
        return False
    return level_of(victim, preemptor.now, thresholds) > preemptor.las_level
