"""What CUDA sees at start, said in one log line, and the refusal when a GPU was required.

Pure: the facts come in as a CudaProbe (gathered by devices.probe_cuda); this module only
words them and decides. The CLI sets FLUX_REQUIRE_GPU=1 for a preset with `gpus: true`
(docs/contract.md); without it a machine with no usable GPU runs the model on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flux_server.memory import GpuInfo

GIB = 1024**3
REQUIRED_LINE = "requires a GPU (FLUX_REQUIRE_GPU=1) but CUDA sees none"
HIDDEN_VALUES = ("", "none", "void", "-1")
CUDA_ARM64_INDEX = "https://download.pytorch.org/whl/cu128"


@dataclass(frozen=True)
class CudaProbe:
    """The facts about CUDA in this process, as found at start."""

    torch_version: str | None = None
    torch_cuda: str | None = None  # the CUDA version torch was built for; None: a CPU-only build
    available: bool = False
    gpus: tuple[GpuInfo, ...] = ()
    device_nodes: bool | None = None  # /dev/nvidia0.. present (None: not looked at)
    visible_devices: str | None = None  # CUDA_VISIBLE_DEVICES as set, None when unset
    init_error: str | None = None  # what torch said when CUDA initialisation failed

    @classmethod
    def from_gpus(cls, gpus: Sequence[GpuInfo | tuple]) -> CudaProbe:
        """A probe that only knows a GPU list (tests and callers that inject GPUs)."""
        found = tuple(g if isinstance(g, GpuInfo) else GpuInfo(*g) for g in gpus)
        return cls(available=bool(found), gpus=found)


class GpuNotVisible(RuntimeError):
    """The deployment requires a GPU and CUDA sees none; `hint` says what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def _gpu_text(index: int, gpu: GpuInfo) -> str:
    cap = f", compute capability {gpu.capability[0]}.{gpu.capability[1]}" \
        if gpu.capability else ""
    return f"#{index} {gpu.name} ({gpu.total_bytes / GIB:.1f} GiB{cap})"


def _torch_text(probe: CudaProbe) -> str:
    """' (torch X, CUDA Y)' for a CUDA build of torch; '' when unknown or a CPU-only build
    (the reason then says so)."""
    if probe.torch_version is None or probe.torch_cuda is None:
        return ""
    return f" (torch {probe.torch_version}, CUDA {probe.torch_cuda})"


def why_no_gpu(probe: CudaProbe) -> tuple[str, str]:
    """(reason, fix) for a probe that found no usable GPU, most specific cause first."""
    if probe.torch_version is not None and probe.torch_cuda is None:
        reason = f"this image's torch {probe.torch_version} is a CPU-only build"
        fix = ("rebuild the image with the CUDA build of torch: server/Dockerfile's default "
               "TORCH_SPEC on amd64; on arm64 (GH200) add "
               f"--build-arg TORCH_INDEX_URL={CUDA_ARM64_INDEX}")
    elif (probe.visible_devices is not None
          and probe.visible_devices.strip().lower() in HIDDEN_VALUES):
        reason = f"CUDA_VISIBLE_DEVICES={probe.visible_devices!r} hides every GPU"
        fix = "unset CUDA_VISIBLE_DEVICES in the preset's env (or list the GPU indices)"
    elif probe.device_nodes is False:
        reason = ("the container has no NVIDIA device (/dev/nvidia* absent): it was started "
                  "without --gpus")
        fix = ("start it with `docker run --gpus all` on a host with the NVIDIA driver and the "
               "NVIDIA Container Toolkit (fluxdeploy does so for presets with gpus: true); "
               "check with `docker run --rm --gpus all IMAGE nvidia-smi`")
    elif probe.init_error:
        reason = f"CUDA could not start: {probe.init_error}"
        fix = ("run `nvidia-smi` on the host: the driver may be missing, older than CUDA "
               f"{probe.torch_cuda or '?'} needs, or mismatched after an upgrade (reboot)")
    else:
        reason = "CUDA reports no device"
        fix = "run `nvidia-smi` on the host and in the container; check the --gpus flag"
    return reason, fix


def describe(probe: CudaProbe) -> str:
    """One log line: whether CUDA is available and every GPU it sees (or why none)."""
    if probe.available and probe.gpus:
        listed = "; ".join(_gpu_text(i, g) for i, g in enumerate(probe.gpus))
        count = f"{len(probe.gpus)} GPU{'s' if len(probe.gpus) > 1 else ''}"
        return f"cuda: available{_torch_text(probe)}, {count}: {listed}"
    reason, _ = why_no_gpu(probe)
    return f"cuda: not available{_torch_text(probe)}: {reason}"


def check_required(probe: CudaProbe, require_gpu: bool) -> None:
    """Raise GpuNotVisible when a GPU is required and the probe found none."""
    if not require_gpu or (probe.available and probe.gpus):
        return
    reason, fix = why_no_gpu(probe)
    raise GpuNotVisible(f"the deployment {REQUIRED_LINE}: {reason}", fix)
