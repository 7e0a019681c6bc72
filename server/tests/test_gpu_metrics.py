"""/metrics' GPU gauges (flux_server/gpu_metrics.py): absent on this GPU-less machine, and
with a stand-in for NVML's calls (the calls pynvml makes, answering as a driver does) one
gauge set per GPU, read at each scrape, a refused reading left out."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from flux_server import gpu_metrics
from flux_server.app import create_app
from flux_server.config import Settings
from flux_server.metrics import Metrics
from prometheus_client.parser import text_string_to_metric_families


class NVMLError(Exception):
    pass


class StandInNVML:
    """pynvml's calls for two GPUs; GPU 1 does not report its temperature (as some don't)."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self) -> None:
        self.used = [21_474_836_480, 1_048_576]
        self.inits = 0

    def nvmlInit(self) -> None:
        self.inits += 1

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"handle-{index}"

    def nvmlDeviceGetName(self, handle: str) -> bytes:
        return b"NVIDIA A10"  # older pynvml returns bytes

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> Any:
        used = self.used[int(handle[-1])]
        return SimpleNamespace(total=24_146_608_128, used=used, free=24_146_608_128 - used)

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> Any:
        return SimpleNamespace(gpu=87 if handle.endswith("0") else 0, memory=40)

    def nvmlDeviceGetTemperature(self, handle: str, sensor: int) -> int:
        if handle.endswith("1"):
            raise NVMLError("Not Supported")
        return 64


def test_no_gpu_here_means_no_gpu_gauges_at_all() -> None:
    assert gpu_metrics.load_nvml() is None  # no NVIDIA library on this machine
    text = Metrics().render()[0].decode()
    assert "flux_gpu" not in text
    assert "flux_ready" in text


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> StandInNVML:
    stand_in = StandInNVML()
    monkeypatch.setattr(gpu_metrics, "load_nvml", lambda: stand_in)
    return stand_in


def gauges(text: str) -> dict[tuple[str, str], float]:
    """{(metric, gpu index): value} of the flux_gpu_* samples in a /metrics body."""
    return {(sample.name, sample.labels["gpu"]): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name.startswith("flux_gpu_")}


def test_each_gpu_gets_memory_utilization_and_temperature_on_metrics(
        nvml: StandInNVML) -> None:
    client = TestClient(create_app(Settings(model="tiny")))
    text = client.get("/metrics").text
    assert 'flux_gpu_memory_used_bytes{gpu="0",name="NVIDIA A10"}' in text
    seen = gauges(text)
    assert seen[("flux_gpu_memory_used_bytes", "0")] == 21_474_836_480
    assert seen[("flux_gpu_memory_total_bytes", "0")] == 24_146_608_128
    assert seen[("flux_gpu_utilization_ratio", "0")] == 0.87
    assert seen[("flux_gpu_temperature_celsius", "0")] == 64
    assert seen[("flux_gpu_utilization_ratio", "1")] == 0
    assert ("flux_gpu_temperature_celsius", "1") not in seen  # refused: left out, not 0
    assert not [k for k in seen if "torch" in k[0]]  # this process never initialised CUDA
    nvml.used[0] = 1_073_741_824  # read at each scrape, not at start-up
    again = gauges(client.get("/metrics").text)
    assert again[("flux_gpu_memory_used_bytes", "0")] == 1_073_741_824


def test_a_process_using_cuda_shows_torchs_own_memory(
        nvml: StandInNVML, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda = SimpleNamespace(is_initialized=lambda: True,
                                memory_allocated=lambda i: 12_884_901_888,
                                memory_reserved=lambda i: 14_495_514_624)
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=fake_cuda))
    seen = gauges(Metrics().render()[0].decode())
    assert seen[("flux_gpu_torch_allocated_bytes", "0")] == 12_884_901_888
    assert seen[("flux_gpu_torch_reserved_bytes", "1")] == 14_495_514_624
