"""Memory strategy: a pure decision from the GPUs found and what was asked for.

Facts behind the thresholds (diffusers' published FLUX.1 figures, see NOTES): the bf16
pipeline peaks at about 36 GB; bf16 with model CPU offload at about 23 GB (too tight for a
24 GB card); NF4 or int8 transformer + T5 with offload at about 12.5 GB. `device_map="auto"`
is never chosen here (diffusers pipelines reject it); `balanced` places whole components.
Attention slicing is not part of any plan: it is a no-op for FLUX.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

GB = 10**9
LARGE_GPU_BYTES = 38 * GB  # bf16 pipeline on the GPU (an A100 40GB reports ~42 GB)
OFFLOAD_GPU_BYTES = 14 * GB  # quantized transformer + T5 with model CPU offload
QUANTIZED_COMPONENTS = ("transformer", "text_encoder_2")
FP8_MIN_CAPABILITY = (8, 9)
BF16_MIN_CAPABILITY = (8, 0)


class GpuInfo(NamedTuple):
    """One visible GPU: name, total memory in bytes, compute capability if known."""

    name: str
    total_bytes: int
    capability: tuple[int, int] | None = None


class PlanError(ValueError):
    """The requested combination cannot work on these devices; `hint` says what would."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class QuantSpec:
    """Load-time quantization, turned into diffusers' PipelineQuantizationConfig by the loader."""

    method: str  # nf4 | int8 | fp8
    backend: str  # bitsandbytes_4bit | torchao
    kwargs: dict = field(default_factory=dict)  # names only; the loader builds the objects
    components: tuple[str, ...] = QUANTIZED_COMPONENTS


@dataclass(frozen=True)
class MemoryPlan:
    """How to place the pipeline: what the loader does, and why."""

    strategy: str  # gpu | balanced | model-offload | sequential-offload | cpu | device-map
    device: str  # cuda | cpu
    dtype: str  # bf16 | fp16 | fp32
    quant: QuantSpec | None = None
    device_map: str | None = None  # passed to from_pretrained as given
    reasons: tuple[str, ...] = ()

    def describe(self) -> str:
        quant = self.quant.method if self.quant else "none"
        return f"{self.strategy} dtype={self.dtype} quant={quant}" + (
            f" device_map={self.device_map}" if self.device_map else "")

    def as_dict(self) -> dict:
        return {
            "strategy": self.strategy, "device": self.device, "dtype": self.dtype,
            "quant": self.quant.method if self.quant else "none",
            "quantized_components": list(self.quant.components) if self.quant else [],
            "device_map": self.device_map, "reasons": list(self.reasons),
        }


def quant_spec(method: str, dtype: str) -> QuantSpec | None:
    """The load-time quantization for `method` (none -> None)."""
    if method == "none":
        return None
    if method == "nf4":
        return QuantSpec("nf4", "bitsandbytes_4bit", {
            "load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": dtype})
    if method == "int8":
        return QuantSpec("int8", "torchao", {"config": "Int8WeightOnlyConfig"})
    if method == "fp8":
        return QuantSpec("fp8", "torchao", {
            "config": "Float8DynamicActivationFloat8WeightConfig", "granularity": "PerRow"})
    raise PlanError(f"unknown quantization {method!r}", "FLUX_QUANT is one of none, nf4, int8, fp8")


def _dtype_for(gpus: Sequence[GpuInfo], requested: str | None) -> tuple[str, tuple[str, ...]]:
    if requested:
        return requested, ()
    if not gpus:
        return "fp32", ("no GPU: fp32 on the CPU",)
    caps = [g.capability for g in gpus if g.capability is not None]
    if caps and min(caps) < BF16_MIN_CAPABILITY:
        return "fp16", (f"compute capability {min(caps)} has no bf16: fp16",)
    return "bf16", ()


def _check_quant(method: str, gpus: Sequence[GpuInfo]) -> None:
    if method in ("nf4", "fp8") and not gpus:
        raise PlanError(f"FLUX_QUANT={method} needs a CUDA GPU and none was found",
                        "use FLUX_QUANT=none (or int8) on the CPU, or run with --gpus")
    if method == "fp8":
        caps = [g.capability for g in gpus]
        if any(c is None or c < FP8_MIN_CAPABILITY for c in caps):
            raise PlanError(
                f"FLUX_QUANT=fp8 needs compute capability >= 8.9 (found {caps})",
                "fp8 works on L4/L40/H100/H200; on A10/A100 use FLUX_QUANT=nf4 or int8")


def _frugal_quant(backends: frozenset[str]) -> str:
    """The quantization auto picks when it must: NF4 (bitsandbytes), else int8 (torchao)."""
    if "bitsandbytes" in backends:
        return "nf4"
    if "torchao" in backends:
        return "int8"
    return "none"


def _auto(gpus: Sequence[GpuInfo], quant: str, dtype: str,
          backends: frozenset[str]) -> tuple[str, str, tuple[str, ...]]:
    """(strategy, quant, reasons) for FLUX_MEMORY=auto."""
    frugal = _frugal_quant(backends) if quant == "none" else quant
    missing = () if frugal != "none" else (
        "no quantization backend installed (pip install flux-server[quant]): bf16",)
    if not gpus:
        return "cpu", quant, ("no GPU found: CPU",)
    largest = max(g.total_bytes for g in gpus)
    size = f"{largest / GB:.0f} GB"
    if len(gpus) > 1:
        if largest < LARGE_GPU_BYTES and quant == "none":
            return "balanced", frugal, (
                (f"{len(gpus)} GPUs of at most {size}: balanced, {frugal} transformer and T5 "
                 "(a bf16 transformer alone does not fit one card)"),) + missing
        return "balanced", quant, (f"{len(gpus)} GPUs: balanced (whole components per GPU)",)
    if largest >= LARGE_GPU_BYTES:
        return "gpu", quant, (f"one {size} GPU: whole pipeline in {dtype} on the GPU",)
    if largest >= OFFLOAD_GPU_BYTES:
        return "model-offload", frugal, (
            (f"one {size} GPU: {frugal} transformer and T5 with model CPU offload "
             "(bf16 with offload peaks at about 23 GB)"),) + missing
    return "sequential-offload", quant, (
        f"one {size} GPU: sequential CPU offload (slow, smallest footprint)",)


ALL_BACKENDS = frozenset({"bitsandbytes", "torchao"})


def plan(gpus: Sequence[GpuInfo | tuple], memory: str = "auto", quant: str = "none",
         dtype: str | None = None, device_map: str | None = None,
         backends: frozenset[str] = ALL_BACKENDS) -> MemoryPlan:
    """Choose device placement, quantization, offload and dtype. Pure; raises PlanError.

    `backends`: the quantization libraries installed; auto quantizes only with one of them."""
    found = [g if isinstance(g, GpuInfo) else GpuInfo(*g) for g in gpus]
    chosen_dtype, dtype_reasons = _dtype_for(found, dtype)
    if device_map:
        _check_quant(quant, found)
        return MemoryPlan("device-map", "cuda" if found else "cpu", chosen_dtype,
                          quant_spec(quant, chosen_dtype), device_map,
                          (f"FLUX_DEVICE_MAP={device_map} passed to diffusers as given",)
                          + dtype_reasons)
    if memory == "auto":
        strategy, quant, reasons = _auto(found, quant, chosen_dtype, frozenset(backends))
    else:
        strategy, reasons = memory, (f"FLUX_MEMORY={memory} as requested",)
        if strategy != "cpu" and not found:
            raise PlanError(f"FLUX_MEMORY={memory} needs a CUDA GPU and none was found",
                            "run the container with --gpus all, or use FLUX_MEMORY=auto/cpu")
    if strategy == "cpu" and dtype is None:
        chosen_dtype, dtype_reasons = "fp32", ("CPU: fp32",)
    _check_quant(quant, found if strategy != "cpu" else [])
    return MemoryPlan(
        strategy=strategy,
        device="cpu" if strategy == "cpu" else "cuda",
        dtype=chosen_dtype,
        quant=quant_spec(quant, chosen_dtype),
        device_map="balanced" if strategy == "balanced" else None,
        reasons=reasons + dtype_reasons,
    )


def fallback(current: MemoryPlan, backends: frozenset[str] = ALL_BACKENDS
             ) -> MemoryPlan | None:
    """The next more frugal plan after a CUDA out-of-memory error, or None at the end.

    gpu/balanced/device-map -> model offload -> model offload + NF4 (or int8, when a
    backend is installed) -> sequential offload.
    """
    why = f"out of memory with {current.describe()}"
    if current.strategy in ("gpu", "balanced", "device-map"):
        return replace(current, strategy="model-offload", device_map=None,
                       reasons=(f"{why}: model CPU offload",))
    frugal = _frugal_quant(frozenset(backends))
    if current.strategy == "model-offload" and current.quant is None and frugal != "none":
        return replace(current, quant=quant_spec(frugal, current.dtype),
                       reasons=(f"{why}: {frugal} transformer and T5",))
    if current.strategy == "model-offload":
        return replace(current, strategy="sequential-offload", quant=None,
                       reasons=(f"{why}: sequential CPU offload",))
    return None


def installed_backends() -> frozenset[str]:
    """The quantization libraries importable here (a side effect-free look-up)."""
    return frozenset(n for n in ALL_BACKENDS if importlib.util.find_spec(n) is not None)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a CUDA out-of-memory error (by type name or message, anywhere in the chain)."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if type(current).__name__ == "OutOfMemoryError" or "out of memory" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False
