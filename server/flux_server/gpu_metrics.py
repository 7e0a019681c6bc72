"""Per-GPU gauges on /metrics, read through NVML (`nvidia-ml-py`) at each scrape.

On a machine without NVIDIA's library or GPU the gauges are absent, not zero: a dashboard
must not read "0 bytes used" where there is no GPU. Per GPU (label `gpu`, its index, and
`name`): memory used and total, utilization and temperature; and, once this process has
initialised CUDA, torch's own allocated and reserved memory on that device (what the
pipeline holds, against what the caching allocator keeps). A reading NVML refuses for one
device is left out of that scrape; a scrape never fails because of a GPU.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

PREFIX = "flux_gpu"


def load_nvml() -> Any | None:
    """The initialised `pynvml` module, or None without the package, library or a GPU."""
    try:
        nvml = importlib.import_module("pynvml")
    except ImportError:
        return None
    try:
        nvml.nvmlInit()
        if int(nvml.nvmlDeviceGetCount()) < 1:
            return None
    except Exception:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return None
    return nvml


def _torch_memory(index: int) -> tuple[int, int] | None:
    """torch's allocated and reserved bytes on device `index`, if this process uses CUDA.

    torch is not imported here, and CUDA is never initialised by a scrape."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if not torch.cuda.is_initialized():
            return None
        return int(torch.cuda.memory_allocated(index)), int(torch.cuda.memory_reserved(index))
    except Exception:  # noqa: BLE001 - a device torch does not see: no torch gauge for it
        return None


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class GpuCollector(Collector):
    """The gauges, read from `nvml` (the pynvml module, or a stand-in with its calls)."""

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["gpu", "name"]
        used = GaugeMetricFamily(f"{PREFIX}_memory_used_bytes",
                                 "GPU memory in use (all processes), from NVML", labels=labels)
        total = GaugeMetricFamily(f"{PREFIX}_memory_total_bytes", "GPU memory in total",
                                  labels=labels)
        busy = GaugeMetricFamily(f"{PREFIX}_utilization_ratio",
                                 "Fraction of the last sample period a kernel ran on the GPU",
                                 labels=labels)
        heat = GaugeMetricFamily(f"{PREFIX}_temperature_celsius", "GPU core temperature",
                                 labels=labels)
        allocated = GaugeMetricFamily(f"{PREFIX}_torch_allocated_bytes",
                                      "Memory this server's tensors occupy (torch)",
                                      labels=labels)
        reserved = GaugeMetricFamily(f"{PREFIX}_torch_reserved_bytes",
                                     "Memory torch's caching allocator holds", labels=labels)
        for index, handle, name in self._devices():
            values = [str(index), name]
            memory = self._read(self.nvml.nvmlDeviceGetMemoryInfo, handle)
            if memory is not None:
                used.add_metric(values, float(memory.used))
                total.add_metric(values, float(memory.total))
            rates = self._read(self.nvml.nvmlDeviceGetUtilizationRates, handle)
            if rates is not None:
                busy.add_metric(values, float(rates.gpu) / 100.0)
            celsius = self._read(self.nvml.nvmlDeviceGetTemperature, handle,
                                 self.nvml.NVML_TEMPERATURE_GPU)
            if celsius is not None:
                heat.add_metric(values, float(celsius))
            torch_memory = _torch_memory(index)
            if torch_memory is not None:
                allocated.add_metric(values, float(torch_memory[0]))
                reserved.add_metric(values, float(torch_memory[1]))
        for family in (used, total, busy, heat, allocated, reserved):
            if family.samples:
                yield family

    def _devices(self) -> Iterator[tuple[int, Any, str]]:
        count = self._read(self.nvml.nvmlDeviceGetCount) or 0
        for index in range(int(count)):
            handle = self._read(self.nvml.nvmlDeviceGetHandleByIndex, index)
            if handle is None:
                continue
            name = self._read(self.nvml.nvmlDeviceGetName, handle)
            yield index, handle, _text(name) if name is not None else "?"

    @staticmethod
    def _read(call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except Exception:  # NVMLError_NotSupported and the like: that reading is left out
            log.debug("NVML call %s failed", getattr(call, "__name__", call), exc_info=True)
            return None


def register_gpu_metrics(registry: CollectorRegistry, nvml: Any | None = None) -> bool:
    """Add the GPU gauges to `registry` when NVML answers; False (and nothing added) if not."""
    nvml = nvml if nvml is not None else load_nvml()
    if nvml is None:
        return False
    registry.register(GpuCollector(nvml))
    return True
