"""What the server says about CUDA at start, and its refusal when a GPU was required."""

from __future__ import annotations

import logging

import pytest
from flux_server.config import Settings, SettingsError, settings_from_env
from flux_server.gpu_check import (
    REQUIRED_LINE,
    CudaProbe,
    GpuNotVisible,
    check_required,
    describe,
    why_no_gpu,
)
from flux_server.loader import PipelineLoader
from flux_server.memory import GpuInfo
from flux_server.state import LoadState

A10 = GpuInfo("NVIDIA A10", 23_609_475_072, (8, 6))
H100 = GpuInfo("NVIDIA H100 80GB HBM3", 85_045_018_624, (9, 0))
CUDA_TORCH = {"torch_version": "2.13.0+cu128", "torch_cuda": "12.8"}


def test_available_names_every_gpu_with_memory_and_capability() -> None:
    line = describe(CudaProbe(**CUDA_TORCH, available=True, gpus=(A10, H100),
                              device_nodes=True))
    assert line == ("cuda: available (torch 2.13.0+cu128, CUDA 12.8), 2 GPUs: "
                    "#0 NVIDIA A10 (22.0 GiB, compute capability 8.6); "
                    "#1 NVIDIA H100 80GB HBM3 (79.2 GiB, compute capability 9.0)")


@pytest.mark.parametrize(("probe", "reason", "fix"), [
    (CudaProbe(torch_version="2.13.0+cpu", device_nodes=True),
     "torch 2.13.0+cpu is a CPU-only build", "TORCH_INDEX_URL=https://download.pytorch.org"),
    (CudaProbe(**CUDA_TORCH, device_nodes=True, visible_devices=""),
     "CUDA_VISIBLE_DEVICES='' hides every GPU", "unset CUDA_VISIBLE_DEVICES"),
    (CudaProbe(**CUDA_TORCH, device_nodes=False),
     "started without --gpus", "--gpus all"),
    (CudaProbe(**CUDA_TORCH, device_nodes=True,
               init_error="CUDA initialization: The NVIDIA driver on your system is too old "
                          "(found version 11040)"),
     "CUDA could not start: CUDA initialization: The NVIDIA driver on your system is too old",
     "older than CUDA 12.8 needs"),
    (CudaProbe(**CUDA_TORCH, device_nodes=True), "CUDA reports no device", "nvidia-smi"),
])
def test_no_gpu_says_why_and_what_to_do(probe: CudaProbe, reason: str, fix: str) -> None:
    why, what = why_no_gpu(probe)
    assert reason in why and fix in what
    assert describe(probe).startswith("cuda: not available") and reason in describe(probe)


def test_a_cpu_build_of_torch_wins_over_every_other_cause() -> None:
    probe = CudaProbe(torch_version="2.13.0+cpu", device_nodes=False, visible_devices="")
    assert describe(probe) == ("cuda: not available: this image's torch 2.13.0+cpu is a "
                               "CPU-only build")


def test_required_and_missing_raises_with_reason_and_fix() -> None:
    probe = CudaProbe(**CUDA_TORCH, device_nodes=False)
    with pytest.raises(GpuNotVisible) as caught:
        check_required(probe, require_gpu=True)
    assert REQUIRED_LINE in str(caught.value) and "without --gpus" in str(caught.value)
    assert "--gpus all" in caught.value.hint


@pytest.mark.parametrize(("probe", "required"), [
    (CudaProbe(**CUDA_TORCH, available=True, gpus=(A10,)), True),
    (CudaProbe(torch_version="2.13.0+cpu"), False),
])
def test_nothing_to_refuse(probe: CudaProbe, required: bool) -> None:
    check_required(probe, require_gpu=required)


@pytest.mark.parametrize(("value", "expected"), [
    ("1", True), ("true", True), ("YES", True), ("0", False), ("false", False), ("", False)])
def test_require_gpu_setting(value: str, expected: bool) -> None:
    assert settings_from_env({"FLUX_REQUIRE_GPU": value}).require_gpu is expected


def test_require_gpu_setting_rejects_what_is_not_a_flag() -> None:
    with pytest.raises(SettingsError, match=r"FLUX_REQUIRE_GPU='cuda' is not a flag"):
        settings_from_env({"FLUX_REQUIRE_GPU": "cuda"})


def test_probe_on_this_machine_reads_the_real_torch() -> None:
    import torch
    from flux_server.devices import probe_cuda

    probe = probe_cuda()
    assert probe.torch_version == torch.__version__
    assert probe.torch_cuda == torch.version.cuda
    assert probe.available is torch.cuda.is_available()
    assert (len(probe.gpus) == torch.cuda.device_count()) if probe.available else not probe.gpus


def _loader(settings: Settings, probe: CudaProbe) -> PipelineLoader:
    return PipelineLoader(settings, LoadState(settings.model, settings.tiny),
                          detect_gpus=lambda: probe, warm_up=lambda pipe, defaults, size: None)


def test_loader_fails_into_failed_with_reason_and_hint(caplog) -> None:
    probe = CudaProbe(**CUDA_TORCH, device_nodes=False)
    loader = _loader(Settings(model="tiny", require_gpu=True), probe)
    with caplog.at_level(logging.INFO, logger="flux_server"):
        loader.run()
    snap = loader.state.snapshot()
    assert snap["state"] == "failed"
    assert snap["error"]["type"] == "GpuNotVisible"
    assert REQUIRED_LINE in snap["error"]["message"]
    assert "--gpus all" in snap["error"]["hint"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(m.startswith("cuda: not available") for m in errors), errors
    assert loader.pipeline is None  # refused before any model work


def test_loader_without_the_requirement_runs_on_the_cpu_and_says_so(caplog) -> None:
    loader = _loader(Settings(model="tiny"), CudaProbe(torch_version="2.13.0+cpu"))
    with caplog.at_level(logging.INFO, logger="flux_server"):
        loader.run()
    assert loader.state.snapshot()["state"] == "ready"
    assert loader.plan is not None and loader.plan.strategy == "cpu"
    lines = [r.getMessage() for r in caplog.records]
    assert any("cuda: not available" in m and "runs on the CPU" in m for m in lines), lines
