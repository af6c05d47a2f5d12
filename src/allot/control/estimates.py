"""Start-time estimates as the use cases see them: ``StartEstimate`` (when a pending job is
expected to start, when that was worked out, and how) and the ``StartEstimates`` port that
answers for one job. The estimator itself (``allot.observe.eta``) runs the queue forward
through the scheduling core; without one, ``NoEstimates`` answers None for every job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StartEstimate:
    """A pending job's expected start: ``start`` (None: the forward run found none within its
    horizon), worked out at ``computed_at``; ``basis`` says how, in one sentence."""

    start: float | None
    computed_at: float
    basis: str


class StartEstimates(Protocol):
    """Answers the latest estimate for a pending job."""

    def estimate(self, job_id: int) -> StartEstimate | None:
        """None when the job was not pending at the latest refresh (or none has run yet)."""
        ...


class NoEstimates:
    """No estimator: no job has an estimate."""

    def estimate(self, job_id: int) -> StartEstimate | None:
        return None
