"""Runtime predictions learned online from completed jobs (``--estimates predicted``).

What a live scheduler can know: when a job arrives, the run times of the jobs that completed
before it. ``RuntimePredictor`` keeps, per key, the last ``WINDOW`` completed run times and
predicts a quantile of the most specific key that has at least ``MIN_SAMPLES`` of them. Keys,
most specific first: (tenant, user, job name, GPUs), (tenant, user, GPUs), (tenant, GPUs),
(tenant), (GPUs), everything. A job with no key that has enough samples gets no estimate (the
scheduler treats it as unknown, as with ``--estimates none``). A job never contributes to its
own prediction: it is predicted when it arrives and learned from only when it completes.

Why per-key quantiles and no model library: on the Philly trace per-key medians of recent runs
already rank jobs by size (what SJF-like orders and backfill need); a regression over the same
keys has nothing more to learn from, since the trace has no other job features.

Error figures (``PredictionError``): over the completed jobs that had a prediction, the median
of ``|predicted - actual| / actual`` and the share predicted within a factor of two.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from statistics import median

from allot.core.model import MILLI_PER_GPU, JobSpec

WINDOW = 64  # completed runs remembered per key
MIN_SAMPLES = 3  # a key needs this many before it predicts
QUANTILE = 0.5


def _keys(spec: JobSpec) -> tuple[tuple[object, ...], ...]:
    gpus = spec.total.gpu_milli // MILLI_PER_GPU
    return (
        ("name", spec.tenant, spec.user, spec.name, gpus),
        ("user", spec.tenant, spec.user, gpus),
        ("tenant-gpus", spec.tenant, gpus),
        ("tenant", spec.tenant),
        ("gpus", gpus),
        ("all",),
    )


def _quantile(values: deque[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class RuntimePredictor:
    """Online per-key quantiles of completed run times (module docstring)."""

    def __init__(self) -> None:
        self._runs: dict[tuple[object, ...], deque[float]] = {}

    def predict(self, spec: JobSpec) -> float | None:
        """The predicted run time of ``spec`` in seconds, or None when nothing is known."""
        for key in _keys(spec):
            runs = self._runs.get(key)
            if runs is not None and len(runs) >= MIN_SAMPLES:
                return max(1.0, _quantile(runs, QUANTILE))
        return None

    def learn(self, spec: JobSpec, runtime: float) -> None:
        """Remember that ``spec`` completed after ``runtime`` seconds of work."""
        for key in _keys(spec):
            runs = self._runs.get(key)
            if runs is None:
                runs = self._runs[key] = deque(maxlen=WINDOW)
            runs.append(runtime)


@dataclass(frozen=True, slots=True)
class PredictionError:
    """How close predictions came to the run times, over the jobs that had one."""

    jobs: int
    median_relative_error: float | None
    within_2x: float | None

    @classmethod
    def of(cls, pairs: list[tuple[float, float]]) -> PredictionError:
        """From (predicted, actual) pairs."""
        pairs = [(p, a) for p, a in pairs if a > 0]
        if not pairs:
            return cls(0, None, None)
        errors = [abs(p - a) / a for p, a in pairs]
        within = sum(1 for p, a in pairs if a / 2 <= p <= 2 * a) / len(pairs)
        return cls(len(pairs), float(median(errors)), within)
