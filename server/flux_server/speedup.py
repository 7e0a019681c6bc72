"""Apply a SpeedPlan (speed.py) to a loaded pipeline, and watch torch.compile's recompiles.

Order matters: fuse QKV first (fp8 quantizes the fused weight), then fp8, then the step
cache hooks, and compile last so the compiled code sees the final modules.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from flux_server.speed import SpeedPlan

log = logging.getLogger("flux_server.speed")
# After this many recompiles of the transformer once ready, the log warns of a storm.
RECOMPILE_STORM_AFTER = 4


def cache_config(plan: SpeedPlan):
    """diffusers' step cache config for the plan (None when the cache is off)."""
    if plan.cache == "off":
        return None
    from diffusers import (  # lazy: diffusers loads with the model
        FirstBlockCacheConfig,
        TaylorSeerCacheConfig,
    )

    if plan.cache == "first-block":
        return FirstBlockCacheConfig(threshold=plan.cache_threshold)
    if plan.cache == "taylorseer":
        return TaylorSeerCacheConfig()
    raise ValueError(f"unknown step cache {plan.cache!r}")


def fp8_config(on_gpu: bool):
    """torchao's fp8 config: dynamic fp8 activations and weights (per row) on a GPU. On the
    CPU torchao has no fp8 activation kernel, so tests get fp8 weights only (same e4m3
    rounding of the weights, activations kept in fp32)."""
    from torchao.quantization import (  # lazy: optional extra (quant)
        Float8DynamicActivationFloat8WeightConfig,
        Float8WeightOnlyConfig,
        PerRow,
    )

    if on_gpu:
        return Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
    return Float8WeightOnlyConfig()


def quantize_fp8(transformer: Any) -> None:
    """Quantize the transformer's linear layers to fp8 in place (torchao)."""
    from torchao.quantization import quantize_  # lazy: optional extra (quant)

    on_gpu = next(transformer.parameters()).device.type == "cuda"
    quantize_(transformer, fp8_config(on_gpu))


def apply_speed_plan(pipe: Any, plan: SpeedPlan) -> None:
    """Fuse, quantize, cache and compile the pipeline's transformer as the plan says."""
    log.info("speed plan: %s (%s)", plan.describe(), "; ".join(plan.reasons))
    transformer = pipe.transformer
    if plan.fuse_qkv:
        transformer.fuse_qkv_projections()
    if plan.fp8:
        quantize_fp8(transformer)
    config = cache_config(plan)
    if config is not None:
        transformer.enable_cache(config)
    # The step caches' hooks are torch.compiler.disable'd (a graph break by design): with a
    # cache on, compile with graph breaks allowed, else insist on one graph per region.
    fullgraph = config is None
    if plan.compile == "regional":
        transformer.compile_repeated_blocks(fullgraph=fullgraph)
    elif plan.compile == "full":
        transformer.compile(fullgraph=fullgraph)


def graphs_compiled() -> int:
    """How many graphs torch.compile has compiled in this process (0 before any compile)."""
    if "torch._dynamo" not in sys.modules:
        return 0
    from torch._dynamo.utils import counters  # lazy: only after torch.compile ran

    return int(counters["stats"].get("unique_graphs", 0))
