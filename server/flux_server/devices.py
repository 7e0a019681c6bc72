"""What GPUs this process sees (side effects: imports torch, queries CUDA)."""

from __future__ import annotations

from flux_server.memory import GpuInfo


def detect_gpus() -> list[GpuInfo]:
    """The visible CUDA GPUs with their memory and compute capability ([] without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(GpuInfo(props.name, int(props.total_memory), (props.major, props.minor)))
    return gpus


def memory_report() -> list[dict]:
    """Per-GPU memory in bytes, for /model-status ([] without CUDA)."""
    import torch

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
