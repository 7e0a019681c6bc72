"""Speed options: a pure decision, sibling of memory.py, from the GPUs, the memory plan, the
model kind and what was asked for (each option `auto`, or forced on/off).

Facts behind the choices (NOTES.md, diffusers and PyTorch documentation):
- Regional compilation (`compile_repeated_blocks(fullgraph=True)`) compiles one FLUX double
  block and one single block and reuses them for all 19 + 38: PyTorch's and diffusers'
  recipes report several times shorter cold compile than whole-model `torch.compile` for
  nearly the same step time, so `auto` picks regional; `full` is there to measure against it
  (bench/gpu_latency.py prints both compile time and latency). Measured here at FLUX.1-dev's
  depth (57 blocks, tiny widths, CPU): about 34 s to compile regionally, 394 s whole.
- fp8 dynamic activation + weight quantization (torchao) needs compute capability >= 8.9
  (L4/L40S/H100/H200); A10 and A100 have no fp8 tensor cores.
- Fused QKV projections change no result beyond float rounding; they need unquantized
  linear layers, so they are skipped over a load-time quantization (nf4/int8/fp8).
- A step cache skips the transformer's later blocks on steps whose first block output
  barely changed: worth it at 28 dev steps, not at 4 schnell steps.
- On the CPU nothing is switched on by `auto`: compile time dwarfs any gain there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flux_server.memory import FP8_MIN_CAPABILITY, GpuInfo, MemoryPlan, PlanError

COMPILE_CHOICES = ("auto", "off", "regional", "full")
SWITCH_CHOICES = ("auto", "on", "off")
# MagCache is left out: its ratios are fixed per model and step count, requests vary steps.
CACHE_CHOICES = ("auto", "off", "first-block", "taylorseer")
# diffusers' FirstBlockCacheConfig default; ParaAttention's FLUX.1-dev recipe uses 0.08.
DEFAULT_CACHE_THRESHOLD = 0.05
DEFAULT_WARM_SIZES = ((1024, 1024), (1024, 576), (576, 1024))
MIN_SIDE = 64  # as the generation routes accept (schemas.MIN_SIDE)
COMPILE_STRATEGIES = frozenset({"gpu", "balanced", "device-map", "model-offload"})

Size = tuple[int, int]


@dataclass(frozen=True)
class SpeedRequest:
    """What the environment (FLUX_COMPILE, FLUX_FP8, ...) or the preset asked for."""

    compile: str = "auto"
    fp8: str = "auto"
    fuse_qkv: str = "auto"
    cache: str = "auto"
    cache_threshold: float | None = None
    warm_sizes: tuple[Size, ...] | None = None  # None: the defaults for the model kind


@dataclass(frozen=True)
class SpeedPlan:
    """Which speed options the loader applies, the sizes it warms up, and why."""

    compile: str = "off"  # off | regional | full
    fp8: bool = False
    fuse_qkv: bool = False
    cache: str = "off"  # off | first-block | taylorseer
    cache_threshold: float = DEFAULT_CACHE_THRESHOLD
    warm_sizes: tuple[Size, ...] = ()
    reasons: tuple[str, ...] = ()

    def describe(self) -> str:
        cache = self.cache if self.cache == "off" else f"{self.cache}@{self.cache_threshold:g}"
        return (f"compile={self.compile} fp8={'on' if self.fp8 else 'off'} "
                f"fuse_qkv={'on' if self.fuse_qkv else 'off'} cache={cache} "
                f"warm_sizes={','.join(format_size(s) for s in self.warm_sizes)}")

    def as_dict(self) -> dict:
        return {"compile": self.compile, "fp8": self.fp8, "fuse_qkv": self.fuse_qkv,
                "cache": self.cache, "cache_threshold": self.cache_threshold,
                "warm_sizes": [format_size(s) for s in self.warm_sizes],
                "reasons": list(self.reasons)}


def format_size(size: Size) -> str:
    return f"{size[0]}x{size[1]}"


def parse_sizes(text: str, max_side: int = 2048) -> tuple[Size, ...]:
    """`1024x1024,1024x576` -> ((1024, 1024), (1024, 576)); ValueError naming the bad entry."""
    sizes: list[Size] = []
    for item in (part.strip().lower() for part in text.split(",")):
        if not item:
            continue
        width, sep, height = item.partition("x")
        if not sep or not width.isdigit() or not height.isdigit():
            raise ValueError(f"{item!r} is not WIDTHxHEIGHT (for example 1024x576)")
        size = (int(width), int(height))
        if min(size) < MIN_SIDE or max(size) > max_side or size[0] % 16 or size[1] % 16:
            raise ValueError(f"{item!r}: each side must be a multiple of 16 from {MIN_SIDE} "
                             f"to {max_side}")
        if size not in sizes:
            sizes.append(size)
    return tuple(sizes)


def _all_fp8_capable(gpus: Sequence[GpuInfo]) -> bool:
    return bool(gpus) and all(g.capability is not None and g.capability >= FP8_MIN_CAPABILITY
                              for g in gpus)


def _compile(request: SpeedRequest, gpus: Sequence[GpuInfo], memory: MemoryPlan
             ) -> tuple[str, str]:
    if request.compile != "auto":
        return request.compile, f"FLUX_COMPILE={request.compile} as requested"
    if not gpus or memory.device == "cpu":
        return "off", "compile off: on the CPU the compile time outweighs the gain"
    if memory.strategy not in COMPILE_STRATEGIES:
        return "off", (f"compile off: {memory.strategy} moves weights on every block call, "
                       "which compiled code does not speed up")
    if memory.quant is not None and memory.quant.method == "nf4":
        return "off", "compile off: bitsandbytes NF4 layers break torch.compile's full graph"
    return "regional", ("compile regional: the repeated FLUX blocks compiled once each "
                        "(cold compile several times shorter than whole-model compile for "
                        "about the same step time)")


def _fp8(request: SpeedRequest, gpus: Sequence[GpuInfo], memory: MemoryPlan,
         backends: frozenset[str]) -> tuple[bool, str]:
    caps = [g.capability for g in gpus]
    if request.fp8 == "on":
        if gpus and not _all_fp8_capable(gpus):
            raise PlanError(
                f"FLUX_FP8=on needs compute capability >= 8.9 (found {caps})",
                "fp8 runs on L4/L40S/H100/H200; on A10/A100 set FLUX_FP8=auto or off "
                "(see PLAYBOOK.md#fp8-unsupported)")
        if "torchao" not in backends:
            raise PlanError("FLUX_FP8=on needs torchao, which is not installed",
                            "pip install flux-server[quant], or set FLUX_FP8=off")
        if memory.quant is not None:
            raise PlanError(f"FLUX_FP8=on cannot be combined with FLUX_QUANT="
                            f"{memory.quant.method}", "set FLUX_QUANT=none or FLUX_FP8=off")
        where = "" if gpus else " (on the CPU: fp8 weights only, for tests)"
        return True, f"fp8 on as requested{where}"
    if request.fp8 == "off":
        return False, "FLUX_FP8=off as requested"
    if not gpus:
        return False, "fp8 off: no GPU"
    if not _all_fp8_capable(gpus):
        return False, f"fp8 off: compute capability {min(c or (0, 0) for c in caps)} < 8.9"
    if memory.quant is not None:
        return False, f"fp8 off: the transformer is already quantized ({memory.quant.method})"
    if "torchao" not in backends:
        return False, "fp8 off: torchao not installed (pip install flux-server[quant])"
    if memory.strategy == "sequential-offload":
        return False, "fp8 off: sequential offload"
    return True, ("fp8 on: dynamic fp8 activations and weights (torchao) on compute capability "
                  f"{min(c or (0, 0) for c in caps)}")


def _fuse(request: SpeedRequest, memory: MemoryPlan, fp8: bool, gpus: Sequence[GpuInfo]
          ) -> tuple[bool, str]:
    if request.fuse_qkv == "on":
        if memory.quant is not None:
            raise PlanError(f"FLUX_FUSE_QKV=on cannot fuse {memory.quant.method}-quantized "
                            "layers", "set FLUX_QUANT=none or FLUX_FUSE_QKV=off")
        return True, "fused QKV on as requested"
    if request.fuse_qkv == "off":
        return False, "FLUX_FUSE_QKV=off as requested"
    if memory.quant is not None:
        return False, f"fused QKV off: {memory.quant.method} layers cannot be fused"
    if not gpus:
        return False, "fused QKV off: no GPU"
    return True, "fused QKV on: one matmul for Q, K and V" + (" (fused before fp8)" if fp8 else "")


def _cache(request: SpeedRequest, kind: str) -> tuple[str, float, str]:
    threshold = (request.cache_threshold if request.cache_threshold is not None
                 else DEFAULT_CACHE_THRESHOLD)
    if request.cache != "auto":
        return request.cache, threshold, f"FLUX_STEP_CACHE={request.cache} as requested"
    if kind == "dev":
        return "first-block", threshold, (f"step cache first-block (threshold {threshold:g}): "
                                          "dev's 28 steps leave many to skip")
    return "off", threshold, f"step cache off: {kind}'s few steps leave little to cache"


CPU_WARM_SIZE = (64, 64)


def default_warm_sizes(kind: str, default_size: int, on_gpu: bool) -> tuple[Size, ...]:
    """1024x1024 and the common 16:9 sizes for FLUX on a GPU; the default size for the tiny
    model; on the CPU (nothing compiled, every pixel slow) one 64x64 run."""
    if kind == "tiny":
        return ((default_size, default_size),)
    return DEFAULT_WARM_SIZES if on_gpu else (CPU_WARM_SIZE,)


def plan_speed(request: SpeedRequest, gpus: Sequence[GpuInfo], memory: MemoryPlan,
               kind: str, default_size: int,
               backends: frozenset[str] = frozenset({"torchao"})) -> SpeedPlan:
    """Choose compile, fp8, fused QKV, step cache and warm sizes. Pure; raises PlanError."""
    for name, value, choices in (("FLUX_COMPILE", request.compile, COMPILE_CHOICES),
                                 ("FLUX_FP8", request.fp8, SWITCH_CHOICES),
                                 ("FLUX_FUSE_QKV", request.fuse_qkv, SWITCH_CHOICES),
                                 ("FLUX_STEP_CACHE", request.cache, CACHE_CHOICES)):
        if value not in choices:
            raise PlanError(f"{name}={value!r} is not one of {', '.join(choices)}",
                            f"use one of {', '.join(choices)}")
    compile_mode, compile_why = _compile(request, gpus, memory)
    fp8, fp8_why = _fp8(request, gpus, memory, backends)
    fuse, fuse_why = _fuse(request, memory, fp8, gpus)
    cache, threshold, cache_why = _cache(request, kind)
    on_gpu = bool(gpus) and memory.device != "cpu"
    sizes = request.warm_sizes if request.warm_sizes is not None else default_warm_sizes(
        kind, default_size, on_gpu)
    sizes_why = ("warm sizes as requested" if request.warm_sizes is not None
                 else f"warm sizes: the defaults for {kind} on the {'GPU' if on_gpu else 'CPU'}")
    return SpeedPlan(compile_mode, fp8, fuse, cache, threshold, tuple(sizes),
                     (compile_why, fp8_why, fuse_why, cache_why, sizes_why))
