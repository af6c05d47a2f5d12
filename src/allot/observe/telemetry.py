"""GPU telemetry per allocation, sampled through NVML (``nvidia-ml-py``).

Every ``interval`` seconds a background thread reads each GPU of this machine: utilisation,
memory used, power and, where the GPU supports GPM (Hopper and later), SM activity. Each
sample goes to the run that holds the GPU (the active runs' placements on the local node, by
device index) and into that run's ``GpuSummary``: mean and p95 utilisation (from a 101-bin
histogram of whole percents, so p95 is exact to the percent and memory stays constant), peak
memory, energy (power integrated over the sampling intervals) and mean SM activity. Summaries
are written to the store every ``persist_every`` samples and when the run ends, so ``allot
show`` has them for running and ended jobs alike.

Metrics: the latest reading per GPU (labels ``node`` and ``gpu``, an index: bounded by the
hardware), whether telemetry is on, and, per queue, the energy and GPU-seconds sampled and
the distribution of ended runs' mean utilisation (no job ids in labels).

Without a GPU (no driver, no device, NVML missing) telemetry is off and says why
(``GpuTelemetry.off``; ``allot up`` prints it and ``allot_gpu_telemetry_enabled`` is 0). The
NVML boundary is the ``pynvml`` module itself, passed in, so tests give a fake one. After each
sample, idle-GPU reclaim (``allot.observe.idle``), when given, judges the runs sampled.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from allot.control.ports import Clock, Store
from allot.control.records import GpuSummary, JobRecord
from allot.observe.idle import IdleReclaim

log = logging.getLogger("allot.observe")
DEFAULT_INTERVAL = 5.0
UTIL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


@dataclass(frozen=True, slots=True)
class Reading:
    """One GPU at one instant."""

    index: int
    utilization: int  # percent of the interval a kernel ran
    memory_used: int  # bytes
    power_watts: float
    sm_active: float | None  # 0..1 from GPM, None where unsupported


@dataclass(slots=True)
class _Accumulator:
    """A run's samples so far (see the module docstring)."""

    job_id: int
    queue: str
    node: str
    devices: tuple[int, ...]
    first_at: float
    last_at: float
    samples: int = 0
    util_bins: list[int] = field(default_factory=lambda: [0] * 101)
    util_sum: float = 0.0
    peak_memory: int = 0
    energy: float = 0.0
    sm_sum: float = 0.0
    sm_samples: int = 0

    def add(self, readings: list[Reading], at: float, seconds: float) -> None:
        for r in readings:
            self.samples += 1
            self.util_sum += r.utilization
            self.util_bins[max(0, min(100, r.utilization))] += 1
            self.energy += r.power_watts * seconds
            if r.sm_active is not None:
                self.sm_sum += r.sm_active
                self.sm_samples += 1
        self.peak_memory = max(self.peak_memory, sum(r.memory_used for r in readings))
        self.last_at = at

    def summary(self, run_id: str) -> GpuSummary:
        p95 = 0
        if self.samples:
            rank, seen = 0.95 * self.samples, 0
            for percent, count in enumerate(self.util_bins):
                seen += count
                if seen >= rank:
                    p95 = percent
                    break
        return GpuSummary(
            run_id=run_id,
            job_id=self.job_id,
            node=self.node,
            devices=self.devices,
            samples=self.samples,
            first_at=self.first_at,
            last_at=self.last_at,
            mean_utilization=self.util_sum / self.samples / 100 if self.samples else 0.0,
            p95_utilization=p95 / 100,
            peak_memory_bytes=self.peak_memory,
            energy_joules=self.energy,
            mean_sm_active=self.sm_sum / self.sm_samples if self.sm_samples else None,
        )


class GpuTelemetry(Collector):
    """Samples the local GPUs for the active runs; a metrics collector."""

    def __init__(
        self,
        nvml: Any,
        store: Store | None,
        clock: Clock | None,
        node: str,
        *,
        interval: float = DEFAULT_INTERVAL,
        persist_every: int = 12,
        off_reason: str | None = None,
        idle: IdleReclaim | None = None,
    ) -> None:
        self.nvml = nvml
        self.store = store
        self.clock = clock
        self.node = node
        self.interval = interval
        self.persist_every = persist_every
        self.off_reason = off_reason
        self.idle = idle
        self.enabled = off_reason is None
        self._handles: list[Any] = []
        self._gpm: dict[int, bool] = {}
        self._gpm_samples: dict[int, Any] = {}  # each GPU's latest GPM sample
        self._latest: dict[int, Reading] = {}
        self._runs: dict[str, _Accumulator] = {}
        self._energy: dict[str, float] = {}  # per queue
        self._gpu_seconds: dict[str, float] = {}
        # per queue: ended runs' mean utilisation, counted per bucket of UTIL_BUCKETS (+Inf last)
        self._ended: dict[str, list[int]] = {}
        self._ended_sum: dict[str, float] = {}
        self._last_at: float | None = None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def off(cls, reason: str) -> GpuTelemetry:
        """Telemetry that is off, saying why."""
        return cls(None, None, None, "", off_reason=reason)

    @classmethod
    def open(cls, store: Store, clock: Clock, node: str, nvml: Any = None,
             **options: Any) -> GpuTelemetry:  # fmt: skip
        """Start NVML (``nvml``: the ``pynvml`` module unless given); off, with the reason,
        when there is no driver or no GPU."""
        if nvml is None:
            try:
                import pynvml  # type: ignore[import-untyped]
            except ImportError:
                return cls.off("NVML's Python binding (nvidia-ml-py) is not installed")
            nvml = pynvml
        try:
            nvml.nvmlInit()
        except (nvml.NVMLError, OSError) as err:
            return cls.off(f"NVML did not start: {err}")
        try:
            count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError as err:
            nvml.nvmlShutdown()
            return cls.off(f"NVML lists no GPUs: {err}")
        if count == 0:
            nvml.nvmlShutdown()
            return cls.off("NVML sees no GPU on this machine")
        telemetry = cls(nvml, store, clock, node, **options)
        telemetry._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        return telemetry

    @property
    def status(self) -> str:
        """One line for the banner."""
        if not self.enabled:
            return f"off ({self.off_reason})"
        return f"on: {len(self._handles)} GPU(s) sampled every {self.interval:g} s"

    # ------------------------------------------------------------------ sampling

    def read(self) -> list[Reading]:
        """One reading of every GPU; a GPU NVML cannot read now is left out."""
        nvml, found = self.nvml, []
        for index, handle in enumerate(self._handles):
            try:
                util = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
                memory = nvml.nvmlDeviceGetMemoryInfo(handle).used
                power = nvml.nvmlDeviceGetPowerUsage(handle) / 1000  # milliwatts
            except nvml.NVMLError as err:
                log.debug("GPU %d: no reading: %s", index, err)
                continue
            found.append(Reading(index, int(util), int(memory), float(power),
                                 self._sm_active(index, handle)))  # fmt: skip
        return found

    def _sm_active(self, index: int, handle: Any) -> float | None:
        """SM activity since the previous sample of this GPU (GPM metrics come from a pair
        of samples), where the GPU supports GPM; None on the first sample and elsewhere."""
        nvml = self.nvml
        if self._gpm.get(index) is False:
            return None
        try:
            if index not in self._gpm:
                support = nvml.nvmlGpmQueryDeviceSupport(handle)
                self._gpm[index] = bool(support.isSupportedDevice)
                if not self._gpm[index]:
                    return None
            sample = nvml.nvmlGpmSampleAlloc()
            nvml.nvmlGpmSampleGet(handle, sample)
            previous = self._gpm_samples.get(index)
            self._gpm_samples[index] = sample
            if previous is None:
                return None
            try:
                request = nvml.c_nvmlGpmMetricsGet_t()
                request.version = nvml.NVML_GPM_METRICS_GET_VERSION
                request.numMetrics = 1
                request.sample1, request.sample2 = previous, sample
                request.metrics[0].metricId = nvml.NVML_GPM_METRIC_SM_UTIL
                nvml.nvmlGpmMetricsGet(request)
                return float(request.metrics[0].value) / 100
            finally:
                nvml.nvmlGpmSampleFree(previous)
        except (nvml.NVMLError, AttributeError):  # an older driver or binding: no GPM here
            self._gpm[index] = False
            return None

    def sample(self) -> None:
        """Read the GPUs and charge each reading to the run holding that GPU."""
        assert self.store is not None
        assert self.clock is not None
        now = self.clock.now()
        seconds = 0.0 if self._last_at is None else now - self._last_at
        self._last_at = now
        readings = {r.index: r for r in self.read()}
        holders: dict[str, tuple[int, str, tuple[int, ...]]] = {}
        held: list[tuple[JobRecord, tuple[int, ...]]] = []
        for record in self.store.active_jobs():
            run = record.run
            if run is None:
                continue
            devices = tuple(d for p in run.placement if p.node == self.node for d in p.devices)
            if devices:
                holders[run.run_id] = (record.id, record.job.queue, devices)
                held.append((record, devices))
        ended: list[GpuSummary] = []
        due: list[GpuSummary] = []
        with self._lock:
            self._latest = readings
            for run_id, (job_id, queue, devices) in holders.items():
                acc = self._runs.get(run_id)
                if acc is None:
                    acc = self._runs[run_id] = _Accumulator(job_id, queue, self.node, devices,
                                                            now, now)  # fmt: skip
                mine = [readings[d] for d in devices if d in readings]
                acc.add(mine, now, seconds)
                self._energy[queue] = self._energy.get(queue, 0.0) + sum(
                    r.power_watts * seconds for r in mine
                )
                self._gpu_seconds[queue] = self._gpu_seconds.get(queue, 0.0) + len(mine) * seconds
                if acc.samples and (acc.samples // max(1, len(devices))) % self.persist_every == 0:
                    due.append(acc.summary(run_id))
            for run_id in set(self._runs) - set(holders):
                acc = self._runs.pop(run_id)
                summary = acc.summary(run_id)
                ended.append(summary)
                counts = self._ended.setdefault(acc.queue, [0] * (len(UTIL_BUCKETS) + 1))
                for i, bound in enumerate((*UTIL_BUCKETS, float("inf"))):
                    counts[i] += summary.mean_utilization <= bound
                total = self._ended_sum.get(acc.queue, 0.0)
                self._ended_sum[acc.queue] = total + summary.mean_utilization
        for summary in (*due, *ended):
            self.store.record_gpu_summary(summary)
        if self.idle is not None:
            self.idle.check(now, held, {i: r.utilization for i, r in readings.items()})

    def start(self) -> None:
        if not self.enabled:
            return
        self._thread = threading.Thread(target=self._run, name="allot-gpu-telemetry", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closing.wait(self.interval):
            try:
                self.sample()
            except Exception:  # the next sample retries
                log.exception("GPU telemetry: sampling failed")

    def close(self) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.enabled:
            with contextlib.suppress(self.nvml.NVMLError):
                for sample in self._gpm_samples.values():
                    self.nvml.nvmlGpmSampleFree(sample)
                self.nvml.nvmlShutdown()

    # ------------------------------------------------------------------ metrics

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        enabled = GaugeMetricFamily(
            "allot_gpu_telemetry_enabled", "1 when GPUs are sampled through NVML, else 0."
        )
        enabled.add_metric([], 1 if self.enabled else 0)
        labels = ["node", "gpu"]
        util = GaugeMetricFamily("allot_gpu_utilization_ratio", "GPU busy fraction.", labels=labels)
        memory = GaugeMetricFamily("allot_gpu_memory_used_bytes", "GPU memory used.", labels=labels)
        power = GaugeMetricFamily("allot_gpu_power_watts", "GPU power draw.", labels=labels)
        sm = GaugeMetricFamily(
            "allot_gpu_sm_active_ratio", "SM activity (GPM; supported GPUs only).", labels=labels
        )
        energy = CounterMetricFamily(
            "allot_gpu_energy_joules", "Energy drawn by the GPUs runs held.", labels=["queue"]
        )
        held = CounterMetricFamily(
            "allot_gpu_sampled_seconds", "GPU-seconds of runs that were sampled.", labels=["queue"]
        )
        with self._lock:
            for index, r in sorted(self._latest.items()):
                key = [self.node, str(index)]
                util.add_metric(key, r.utilization / 100)
                memory.add_metric(key, r.memory_used)
                power.add_metric(key, r.power_watts)
                if r.sm_active is not None:
                    sm.add_metric(key, r.sm_active)
            for queue, joules in sorted(self._energy.items()):
                energy.add_metric([queue], joules)
                held.add_metric([queue], self._gpu_seconds.get(queue, 0.0))
            ended = {q: (list(c), self._ended_sum[q]) for q, c in self._ended.items()}
        runs = HistogramMetricFamily(
            "allot_run_gpu_utilization_ratio",
            "Mean GPU utilisation of each ended run, per queue.",
            labels=["queue"],
        )
        bounds = [str(b) for b in UTIL_BUCKETS] + ["+Inf"]
        for queue, (counts, total) in sorted(ended.items()):
            runs.add_metric([queue], list(zip(bounds, map(float, counts), strict=True)), total)
        return [enabled, util, memory, power, sm, energy, held, runs]
