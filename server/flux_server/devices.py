"""What GPUs this process sees (side effects: imports torch, queries CUDA)."""

from __future__ import annotations

import glob
import os
import warnings

from flux_server.gpu_check import CudaProbe
from flux_server.memory import GpuInfo


def probe_cuda() -> CudaProbe:
    """The CUDA facts of this process: torch's build, availability, GPUs, and why not."""
    import torch  # lazy: torch loads with the model, not at start-up

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    init_error = next((str(w.message).strip() for w in caught
                       if "CUDA initialization" in str(w.message)), None)
    return CudaProbe(
        torch_version=torch.__version__,
        torch_cuda=torch.version.cuda,
        available=available,
        gpus=tuple(detect_gpus()) if available else (),
        device_nodes=bool(glob.glob("/dev/nvidia[0-9]*")),
        visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        init_error=init_error,
    )


def detect_gpus() -> list[GpuInfo]:
    """The visible CUDA GPUs with their memory and compute capability ([] without CUDA)."""
    import torch  # lazy: torch loads with the model, not at start-up

    if not torch.cuda.is_available():
        return []
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(GpuInfo(props.name, int(props.total_memory), (props.major, props.minor)))
    return gpus


def memory_report() -> list[dict]:
    """Per-GPU memory in bytes, for /model-status ([] without CUDA)."""
    import torch  # lazy: torch loads with the model, not at start-up

    if not torch.cuda.is_available():
        return []
    report = []
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        report.append({
            "index": index, "name": torch.cuda.get_device_name(index), "total_bytes": total,
            "free_bytes": free, "allocated_bytes": torch.cuda.memory_allocated(index),
            "reserved_bytes": torch.cuda.memory_reserved(index),
            "peak_allocated_bytes": torch.cuda.max_memory_allocated(index),
        })
    return report
