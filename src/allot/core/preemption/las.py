"""2D-LAS preemption (Tiresias, Gu et al., NSDI 2019): a job at a lower attained-service level
may preempt a running job at a higher level. Levels only rise as jobs run, so the lowest level
can always win back the cluster and a job at the top level preempts no one.

``LasRule`` says how far that goes for one policy: how many levels a victim must be above the
preemptor (``margin``; Tiresias: 1), how long a run is safe from LAS preemption after it
starts (``min_run_seconds``, the run quantum that keeps two jobs from preempting each other
back and forth, and a run shorter than a checkpoint period from losing all of its work), and
whether a job that cannot checkpoint is safe from it (``checkpointed_only``: such a victim
would lose every second of its run). The rule folds into the victim's **preemption level**
(``level_of``): a protected victim is at level -1, below every preemptor, and a margin lowers
the level by ``margin - 1``; so the candidate pool's summary, the victim search's caches and
``allows`` all read one number, which depends only on the victim and ``now``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

from allot.core.model import RunningJob
from allot.core.policy.ordering import las_level
from allot.core.preemption import Preemptor

if TYPE_CHECKING:
    from allot.core.policy import Policy

PROTECTED = -1  # the preemption level of a victim the rule keeps from LAS preemption


@dataclass(frozen=True, slots=True)
class LasRule(Sequence[float]):
    """A policy's LAS thresholds (it reads as them) with what protects a victim (module
    docstring)."""

    thresholds: tuple[float, ...]
    margin: int = 1
    min_run_seconds: float = 0.0
    checkpointed_only: bool = False

    @classmethod
    def of(cls, policy: Policy) -> LasRule:
        """The rule of ``policy``."""
        return cls(
            tuple(policy.las_thresholds),
            policy.las_margin,
            policy.las_min_run_seconds,
            policy.las_checkpointed_only,
        )

    @overload
    def __getitem__(self, index: int) -> float: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[float]: ...
    def __getitem__(self, index: int | slice) -> float | Sequence[float]:
        return self.thresholds[index]

    def __len__(self) -> int:
        return len(self.thresholds)

    def victim_level(self, job: RunningJob, now: float, level: int) -> int:
        """The preemption level of ``job``, at attained-service ``level`` by ``now``."""
        if self.checkpointed_only and not job.spec.checkpointable:
            return PROTECTED
        if now - job.start_time < self.min_run_seconds:
            return PROTECTED
        return level - (self.margin - 1)


def level_of(job: RunningJob, now: float, thresholds: Sequence[float]) -> int:
    """The preemption level a running job has reached by ``now``: its attained-service
    level, lowered as its policy's ``LasRule`` says when ``thresholds`` is one."""
    level = las_level(job.attained_at(now), thresholds)
    if isinstance(thresholds, LasRule):
        return thresholds.victim_level(job, now, level)
    return level


def allows(preemptor: Preemptor, victim: RunningJob, thresholds: Sequence[float]) -> bool:
    """True when ``victim``'s preemption level is above the preemptor's level."""
    if preemptor.las_level is None:
        return False
    return level_of(victim, preemptor.now, thresholds) > preemptor.las_level
