"""Synthetic workloads: a YAML spec of distributions, turned into jobs reproducibly.

A spec file looks like::

    seed: 7
    num_jobs: 2000
    arrival_rate_per_hour: 20     # Poisson arrivals (exponential gaps)
    duration:                     # lognormal run time, clipped to [min_seconds, max_seconds]
      median_seconds: 1800
      sigma: 1.2
      min_seconds: 60
      max_seconds: 86400
    gpus: {0.5: 0.1, 1: 0.6, 2: 0.15, 4: 0.1, 8: 0.05}   # GPUs per job -> probability
    gpus_per_node: 8              # jobs above this become gangs (same rule as Philly)
    tenants: {vision: 4, nlp: 3}  # name -> weight
    cpu_per_gpu: 4                # cores per GPU
    memory_gib_per_gpu: 32
    flavors: [A100, H100]         # optional: flavors every job accepts, in order

Invariants: the same spec gives the same jobs (``numpy.random.default_rng(seed)``), and the first
N jobs do not depend on ``limit``; GPU counts below 1 are a share of one GPU, counts from 1 up are
whole GPUs split into gang tasks by ``gang_shape``; CPU and memory are proportional to GPUs.
Jobs are numbered 1..N in submit order; ``tenant`` = ``user`` = ``queue``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from allot.config.errors import ConfigError
from allot.config.yamldoc import YamlMap, load_yaml
from allot.core.model import (
    MIB_PER_GIB,
    MILLI_PER_CPU,
    MILLI_PER_GPU,
    SECONDS_PER_HOUR,
    JobSpec,
    Resources,
    SpecError,
    gang,
)
from allot.sim.traces.philly import gang_shape
from allot.sim.workload import TraceJob

PROBABILITY_TOLERANCE = 1e-6

_KEYS = (
    "seed",
    "num_jobs",
    "arrival_rate_per_hour",
    "duration",
    "gpus",
    "gpus_per_node",
    "tenants",
    "cpu_per_gpu",
    "memory_gib_per_gpu",
    "flavors",
)
_DURATION_KEYS = ("median_seconds", "sigma", "min_seconds", "max_seconds")


@dataclass(frozen=True, slots=True)
class LognormalDuration:
    """Run times: ``median_seconds * exp(sigma * N(0, 1))``, clipped to [min, max] seconds."""

    median_seconds: float
    sigma: float
    min_seconds: float
    max_seconds: float

    def __post_init__(self) -> None:
        if not self.median_seconds > 0:
            raise SpecError("duration.median_seconds", f"must be > 0, got {self.median_seconds}")
        if not self.sigma >= 0:
            raise SpecError("duration.sigma", f"must be >= 0, got {self.sigma}")
        if not 0 < self.min_seconds <= self.max_seconds:
            raise SpecError(
                "duration.max_seconds",
                f"need 0 < min_seconds <= max_seconds, got {self.min_seconds} and "
                f"{self.max_seconds}",
            )


@dataclass(frozen=True, slots=True)
class SyntheticSpec:
    """The distributions a synthetic workload is drawn from. ``gpus`` pairs a GPU count with
    its probability; ``tenants`` pairs a tenant name with its (unnormalised) weight."""

    seed: int
    num_jobs: int
    arrival_rate_per_hour: float
    duration: LognormalDuration
    gpus: tuple[tuple[float, float], ...]
    gpus_per_node: int
    tenants: tuple[tuple[str, float], ...]
    cpu_per_gpu: float
    memory_gib_per_gpu: float
    flavors: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.num_jobs < 0:
            raise SpecError("num_jobs", f"must be >= 0, got {self.num_jobs}")
        if not (self.arrival_rate_per_hour > 0 and math.isfinite(self.arrival_rate_per_hour)):
            raise SpecError(
                "arrival_rate_per_hour", f"must be > 0, got {self.arrival_rate_per_hour}"
            )
        if self.gpus_per_node < 1:
            raise SpecError("gpus_per_node", f"must be >= 1, got {self.gpus_per_node}")
        for name in ("cpu_per_gpu", "memory_gib_per_gpu"):
            if not getattr(self, name) >= 0:
                raise SpecError(name, f"must be >= 0, got {getattr(self, name)}")
        if not self.gpus:
            raise SpecError("gpus", "must list at least one GPU count")
        for count, probability in self.gpus:
            _check_gpu_count(count)
            if not probability >= 0:
                raise SpecError(
                    "gpus", f"probability of {count} GPUs must be >= 0, got {probability}"
                )
        total = math.fsum(p for _, p in self.gpus)
        if abs(total - 1.0) > PROBABILITY_TOLERANCE:
            raise SpecError("gpus", f"probabilities must sum to 1, got {total:.9g}")
        if not self.tenants:
            raise SpecError("tenants", "must list at least one tenant")
        for name, weight in self.tenants:
            if not name:
                raise SpecError("tenants", "tenant names must not be empty")
            if not (weight >= 0 and math.isfinite(weight)):
                raise SpecError("tenants", f"weight of {name!r} must be >= 0, got {weight}")
        if not math.fsum(w for _, w in self.tenants) > 0:
            raise SpecError("tenants", "weights must not all be 0")
        if len(set(self.flavors)) != len(self.flavors) or not all(self.flavors):
            raise SpecError(
                "flavors", f"must be distinct, non-empty names, got {list(self.flavors)}"
            )


def _check_gpu_count(count: float) -> None:
    """A count below 1 is a share of one GPU (whole milli-GPU); from 1 up it is whole GPUs."""
    if not (count > 0 and math.isfinite(count)):
        raise SpecError("gpus", f"GPU counts must be > 0, got {count}")
    if count < 1:
        if not math.isclose(count * MILLI_PER_GPU, round(count * MILLI_PER_GPU)):
            raise SpecError("gpus", f"a share of one GPU must be whole milli-GPUs, got {count}")
    elif not float(count).is_integer():
        raise SpecError("gpus", f"counts of 1 or more must be whole GPUs, got {count}")


def load_synthetic_spec(path: str | Path) -> SyntheticSpec:
    """Read and validate a synthetic workload spec; raise ``ConfigError`` naming the line."""
    doc = load_yaml(path)
    doc.check_keys(_KEYS, required=tuple(k for k in _KEYS if k != "flavors"))
    duration_map = doc.get_map("duration")
    duration_map.check_keys(_DURATION_KEYS, required=_DURATION_KEYS)
    gpus = [
        (key.as_float(positive=True), value.as_float(minimum=0))
        for key, value in doc.node_of("gpus").as_pairs()
    ]
    tenants = [
        (key.as_str(), value.as_float(minimum=0))
        for key, value in doc.node_of("tenants").as_pairs()
    ]
    try:
        duration = LognormalDuration(
            median_seconds=duration_map.get_float("median_seconds", positive=True),
            sigma=duration_map.get_float("sigma", minimum=0),
            min_seconds=duration_map.get_float("min_seconds", positive=True),
            max_seconds=duration_map.get_float("max_seconds", positive=True),
        )
        return SyntheticSpec(
            seed=doc.get_int("seed", minimum=0),
            num_jobs=doc.get_int("num_jobs", minimum=0),
            arrival_rate_per_hour=doc.get_float("arrival_rate_per_hour", positive=True),
            duration=duration,
            gpus=tuple(gpus),
            gpus_per_node=doc.get_int("gpus_per_node", minimum=1),
            tenants=tuple(tenants),
            cpu_per_gpu=doc.get_float("cpu_per_gpu", minimum=0),
            memory_gib_per_gpu=doc.get_float("memory_gib_per_gpu", minimum=0),
            flavors=tuple(item.as_str() for item in doc.get_list("flavors", default_empty=True)),
        )
    except SpecError as exc:
        raise _at_line(doc, exc) from None


def _at_line(doc: YamlMap, exc: SpecError) -> ConfigError:
    """The ``SpecError`` as a ``ConfigError`` at the line of the field it names."""
    head, _, rest = exc.field.partition(".")
    if rest and head in doc:
        return doc.get_map(head).error(rest, exc.rule)
    return doc.error(head, exc.rule)


def generate(spec: SyntheticSpec, *, limit: int | None = None) -> list[TraceJob]:
    """Draw the workload ``spec`` describes; ``limit`` keeps the first ``limit`` jobs."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit: must be >= 0, got {limit}")
    rng = np.random.default_rng(spec.seed)
    n = spec.num_jobs
    # Every array is drawn for all num_jobs before cutting, so a limit never changes a job.
    gaps = rng.exponential(SECONDS_PER_HOUR / spec.arrival_rate_per_hour, size=n)
    submit_times = np.cumsum(gaps)
    d = spec.duration
    durations = np.clip(
        d.median_seconds * np.exp(d.sigma * rng.standard_normal(size=n)),
        d.min_seconds,
        d.max_seconds,
    )
    gpu_probabilities = np.array([p for _, p in spec.gpus], dtype=float)
    gpu_choice = rng.choice(len(spec.gpus), size=n, p=gpu_probabilities / gpu_probabilities.sum())
    weights = np.array([w for _, w in spec.tenants], dtype=float)
    tenant_choice = rng.choice(len(spec.tenants), size=n, p=weights / weights.sum())
    tasks_by_choice = [_tasks(spec, count) for count, _ in spec.gpus]
    count = n if limit is None else min(limit, n)
    jobs: list[TraceJob] = []
    for i in range(count):
        tenant = spec.tenants[int(tenant_choice[i])][0]
        job = JobSpec(
            id=i + 1,
            tenant=tenant,
            user=tenant,
            queue=tenant,
            tasks=tasks_by_choice[int(gpu_choice[i])],
            flavors=spec.flavors,
            submit_time=float(submit_times[i]),
        )
        jobs.append(TraceJob(job, float(durations[i])))
    return jobs


def _tasks(spec: SyntheticSpec, gpus: float) -> tuple[Resources, ...]:
    """The tasks of a job asking for ``gpus`` GPUs."""
    if gpus < 1:
        count, per_task = 1, gpus
    else:
        count, whole = gang_shape(round(gpus), spec.gpus_per_node)
        per_task = float(whole)
    return gang(
        count,
        Resources(
            round(per_task * MILLI_PER_GPU),
            round(per_task * spec.cpu_per_gpu * MILLI_PER_CPU),
            round(per_task * spec.memory_gib_per_gpu * MIB_PER_GIB),
        ),
    )
