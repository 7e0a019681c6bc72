"""Requests and limits for the server's pod, from the preset's memory plan. Pure.

Figures are estimates from FLUX.1's published weight sizes (NOTES.md), not measurements:
the loader reads the whole pipeline (about 34 GB in bf16/fp16, twice that in fp32) through
host memory before it places it, and quantization (nf4, int8, fp8) happens after that read,
so it lowers the GPU's peak but not the host's. Memory request = limit, so the kubelet never
evicts a pod in the middle of a load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from intelligensi_deploy.presets import Preset

PIPELINE_GB = {"bf16": 34.0, "fp16": 34.0, "fp32": 68.0}  # FLUX.1's diffusers weights
HEADROOM_GIB = 8  # Python, torch, the CUDA context, decoded images
CPU_REQUEST = "4"  # decode, PNG encoding and the HTTP server; no CPU limit (no throttling)
SPREADS_OVER_GPUS = ("balanced",)


@dataclass(frozen=True)
class PodResources:
    """What one server pod asks for: GPUs, host memory (GiB), CPU, and why."""

    gpus: int
    memory_gib: int
    cpu: str
    reason: str

    def as_k8s(self, gpu_resource: str) -> dict[str, dict[str, str]]:
        """The container's `resources:` (an extended resource goes in limits, and requests
        equal to it)."""
        memory = f"{self.memory_gib}Gi"
        requests = {"cpu": self.cpu, "memory": memory}
        limits = {"memory": memory}
        if self.gpus:
            requests[gpu_resource] = limits[gpu_resource] = str(self.gpus)
        return {"requests": requests, "limits": limits}


def pod_resources(preset: Preset, *, replica: bool = False) -> PodResources:
    """One pod of `preset` (`replica`: one Ray Serve replica, always one GPU)."""
    server = preset.server
    gib = math.ceil(PIPELINE_GB[server.dtype] * 1e9 / 2**30) + HEADROOM_GIB
    if not preset.gpus:
        gpus = 0
    elif replica or preset.scale is not None:
        gpus = 1
    elif server.memory in SPREADS_OVER_GPUS or server.device_map:
        gpus = preset.lambda_.gpu_count() if preset.lambda_ else 1
    else:
        gpus = 1
    reason = (f"memory {server.memory}, quant {server.quant}, dtype {server.dtype}: the "
              f"pipeline passes through host memory at load ({PIPELINE_GB[server.dtype]:g} GB) "
              f"+ {HEADROOM_GIB} GiB; {gpus} GPU(s)")
    return PodResources(gpus=gpus, memory_gib=gib, cpu=CPU_REQUEST, reason=reason)
