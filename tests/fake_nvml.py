"""A fake of the part of ``pynvml`` GPU telemetry calls, at the library boundary: device
counts, utilisation, memory and power per device index, GPM SM activity where "supported",
and NVML's own error type for a driver that is not there."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any


class NVMLError(Exception):
    pass


@dataclass
class FakeNvml:
    """The part of pynvml telemetry uses; ``util``/``memory``/``watts`` per device index."""

    count: int = 4
    util: dict[int, int] = field(default_factory=dict)
    memory: dict[int, int] = field(default_factory=dict)
    watts: dict[int, float] = field(default_factory=dict)
    gpm: bool = False
    sm_percent: float = 40.0
    init_error: str | None = None
    NVMLError: type[Exception] = NVMLError
    NVML_GPM_METRICS_GET_VERSION: int = 1
    NVML_GPM_METRIC_SM_UTIL: int = 2
    shut: bool = False

    def nvmlInit(self) -> None:
        if self.init_error:
            raise NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.shut = True

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        return SimpleNamespace(gpu=self.util.get(handle, 0), memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return SimpleNamespace(used=self.memory.get(handle, 0), total=80 << 30)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return int(self.watts.get(handle, 60.0) * 1000)

    def nvmlGpmQueryDeviceSupport(self, handle: int) -> Any:
        if not self.gpm:
            return SimpleNamespace(isSupportedDevice=0)
        return SimpleNamespace(isSupportedDevice=1)

    def nvmlGpmSampleAlloc(self) -> object:
        return object()

    def nvmlGpmSampleFree(self, sample: object) -> None:
        return None

    def nvmlGpmSampleGet(self, handle: int, sample: object) -> None:
        return None

    def c_nvmlGpmMetricsGet_t(self) -> Any:
        return SimpleNamespace(metrics=[SimpleNamespace(metricId=0, value=0.0)])

    def nvmlGpmMetricsGet(self, request: Any) -> None:
        request.metrics[0].value = self.sm_percent
