"""What bench/gpu_latency.py and bench/gpu_quality.py share: option sets, size lists, and a
pipeline to time: the real model through the server's own loader (FLUX_* variables apply),
or a random-weight pipeline whose transformer has FLUX.1-dev's real shape, for machines
without the weights (speed does not depend on the weights' values)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))

PERCENTILES = (0, 50, 90, 95, 99, 100)

def _options(compile: str = "off", fp8: str = "off", fuse_qkv: str = "off",
             step_cache: str = "off") -> dict[str, str]:
    """One option set as FLUX_* variables: every option named, off unless given."""
    return {"FLUX_COMPILE": compile, "FLUX_FP8": fp8, "FLUX_FUSE_QKV": fuse_qkv,
            "FLUX_STEP_CACHE": step_cache}


# name -> FLUX_* variables (on top of the preset's or the defaults)
OPTION_SETS: dict[str, dict[str, str]] = {
    "plain": _options(),
    "fuse": _options(fuse_qkv="on"),
    "cache": _options(step_cache="first-block"),
    "taylorseer": _options(step_cache="taylorseer"),
    "fp8": _options(fp8="on", fuse_qkv="on"),
    "regional": _options(compile="regional", fuse_qkv="on"),
    "full": _options(compile="full", fuse_qkv="on"),
    "regional+fp8": _options(compile="regional", fp8="on", fuse_qkv="on"),
    "regional+fp8+cache": _options(compile="regional", fp8="on", fuse_qkv="on",
                                   step_cache="first-block"),
    "auto": {},  # whatever the planner picks on this GPU
}

# FLUX.1-dev's transformer (black-forest-labs/FLUX.1-dev transformer/config.json) and VAE.
FLUX_DEV_TRANSFORMER = {
    "patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38,
    "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
    "pooled_projection_dim": 768, "guidance_embeds": True, "axes_dims_rope": (16, 56, 56)}
FLUX_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 16,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2, "scaling_factor": 0.3611, "shift_factor": 0.1159,
    "use_quant_conv": False, "use_post_quant_conv": False, "sample_size": 1024}
T5_TOKENS = 512


@dataclass(frozen=True)
class SizeSpec:
    width: int
    height: int
    steps: int

    @property
    def label(self) -> str:
        return f"{self.width}x{self.height}@{self.steps}"


def parse_size_specs(text: str) -> list[SizeSpec]:
    """`1024x576@10,256x144@10` -> SizeSpecs (steps after @)."""
    specs = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        size, _, steps = item.partition("@")
        width, height = (int(v) for v in size.lower().split("x"))
        specs.append(SizeSpec(width, height, int(steps or 4)))
    return specs


def default_size_specs(kind: str) -> list[SizeSpec]:
    """The Neuron seed's 1024x576 and 256x144 at 10 steps, plus 1024² at the model's steps."""
    if kind == "tiny":
        return [SizeSpec(64, 64, 2), SizeSpec(96, 64, 2)]
    steps = 28 if kind == "dev" else 4
    return [SizeSpec(1024, 1024, steps), SizeSpec(1024, 576, 10), SizeSpec(256, 144, 10)]


def percentiles(samples: list[float], points=PERCENTILES) -> dict[int, float]:
    """Linear-interpolation percentiles (P0 = min, P100 = max)."""
    ordered = sorted(samples)
    result = {}
    for p in points:
        rank = (len(ordered) - 1) * p / 100
        low = int(rank)
        high = min(low + 1, len(ordered) - 1)
        result[p] = ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
    return result


def sync() -> None:
    import torch  # lazy: seconds; other scripts import this one

    if torch.cuda.is_available():
        torch.cuda.synchronize()


@dataclass
class Bench:
    """A ready pipeline and how to call it, with what its start-up cost."""

    pipe: Any
    kind: str
    label: str  # what was loaded, for the output
    speed: dict
    startup: dict = field(default_factory=dict)  # seconds: cold start, download, compile...
    embeds: dict | None = None  # random mode: prompt embeddings in place of text encoders
    guidance: float = 0.0

    def run(self, spec: SizeSpec, seed: int, output_type: str = "pil"):
        import torch  # lazy: as in sync()

        generator = torch.Generator(device="cpu").manual_seed(seed)
        kwargs = dict(self.embeds) if self.embeds else {"prompt": "a lighthouse at dusk"}
        with torch.inference_mode():
            return self.pipe(width=spec.width, height=spec.height,
                             num_inference_steps=spec.steps, guidance_scale=self.guidance,
                             generator=generator, output_type=output_type, **kwargs).images


def load_real(model: str, env: dict[str, str], warm: list[SizeSpec]) -> Bench:
    """The model through the server's loader, warmed at the benchmark's sizes."""
    from flux_server.config import settings_from_env  # lazy: loads torch
    from flux_server.loader import PipelineLoader  # lazy: loads torch
    from flux_server.service import _warm_up  # lazy: loads torch
    from flux_server.state import LoadState  # lazy: loads torch

    full_env = {**os.environ, **env, "FLUX_MODEL": model,
                "FLUX_WARM_SIZES": ",".join(f"{s.width}x{s.height}" for s in warm)}
    settings = settings_from_env(full_env)
    loader = PipelineLoader(settings, LoadState(settings.model, settings.tiny),
                            warm_up=_warm_up(settings))
    loader.run()
    snap = loader.state.snapshot()
    if snap["state"] != "ready":
        sys.exit(f"load failed: {snap['error']}")
    phases = snap["phase_elapsed_s"]
    loader.pipeline.set_progress_bar_config(disable=True)
    return Bench(loader.pipeline, loader.defaults.kind,
                 f"{model} ({loader.plan.describe()})", loader.speed_plan.as_dict(),
                 {"ready_s": snap["elapsed_s"],
                  "ready_without_download_s": snap["elapsed_s"] - phases.get("downloading", 0),
                  "warming_s": phases.get("warming", 0.0)},
                 guidance=loader.defaults.guidance_scale)


def build_random(scale: str, env: dict[str, str], warm: list[SizeSpec]) -> Bench:
    """A random-weight pipeline: FLUX.1-dev's transformer shape (`scale=dev`) or the tiny
    test shape (`scale=tiny`, for a CPU smoke run); no text encoders (random embeddings of
    T5's 512 tokens instead). Speed options from `env` as the server would pick them."""
    import torch  # lazy: heavy, run-time only
    from diffusers import (  # lazy: heavy, run-time only
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
    )
    from flux_server import memory, speed  # lazy: loads torch
    from flux_server.config import settings_from_env  # lazy: loads torch
    from flux_server.devices import detect_gpus  # lazy: loads torch
    from flux_server.speedup import apply_speed_plan  # lazy: loads torch
    from flux_server.tiny import build_tiny_pipeline  # lazy: loads torch

    started = time.perf_counter()
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda else torch.float32
    device = "cuda" if cuda else "cpu"
    if scale == "dev":
        transformer_config, vae_config = FLUX_DEV_TRANSFORMER, FLUX_VAE
    elif scale == "deep":  # FLUX.1-dev's 19 + 38 blocks at the tiny widths: compile cost
        tiny = build_tiny_pipeline()
        transformer_config = {k: v for k, v in tiny.transformer.config.items()
                              if not k.startswith("_")}
        transformer_config.update(num_layers=FLUX_DEV_TRANSFORMER["num_layers"],
                                  num_single_layers=FLUX_DEV_TRANSFORMER["num_single_layers"])
        vae_config = {k: v for k, v in tiny.vae.config.items() if not k.startswith("_")}
    else:
        tiny = build_tiny_pipeline()
        transformer_config = {k: v for k, v in tiny.transformer.config.items()
                              if not k.startswith("_")}
        vae_config = {k: v for k, v in tiny.vae.config.items() if not k.startswith("_")}
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build in bf16 directly: 24 GB, not 48 GB of fp32 first
    try:
        with torch.device(device):
            transformer = FluxTransformer2DModel(**transformer_config)
            vae = AutoencoderKL(**vae_config)
    finally:
        torch.set_default_dtype(default_dtype)
    pipe = FluxPipeline(FlowMatchEulerDiscreteScheduler(), vae, None, None, None, None,
                        transformer)
    pipe.set_progress_bar_config(disable=True)
    settings = settings_from_env({**os.environ, **env, "FLUX_WARM_SIZES": ",".join(
        f"{s.width}x{s.height}" for s in warm)})
    gpus = detect_gpus() if cuda else []
    mem = memory.plan(gpus, "gpu" if cuda else "cpu")
    plan = speed.plan_speed(settings.speed, gpus, mem, "dev" if scale == "dev" else "tiny",
                            1024, memory.installed_backends())
    apply_speed_plan(pipe, plan)
    generator = torch.Generator(device="cpu").manual_seed(0)
    joint = transformer.config.joint_attention_dim
    pooled = transformer.config.pooled_projection_dim
    embeds = {"prompt_embeds": torch.randn(1, T5_TOKENS, joint, generator=generator
                                           ).to(device, dtype),
              "pooled_prompt_embeds": torch.randn(1, pooled, generator=generator
                                                  ).to(device, dtype)}
    bench = Bench(pipe, "dev" if scale == "dev" else "tiny",
                  f"random-weight FLUX transformer ({scale} shape, "
                  f"{sum(p.numel() for p in transformer.parameters()) / 1e6:,.0f}M parameters)",
                  plan.as_dict(), embeds=embeds, guidance=3.5 if scale == "dev" else 0.0)
    built = time.perf_counter()
    for spec in warm:
        bench.run(SizeSpec(spec.width, spec.height, min(2, spec.steps)), 0)
    sync()
    bench.startup = {"ready_s": time.perf_counter() - started,
                     "ready_without_download_s": time.perf_counter() - started,
                     "warming_s": time.perf_counter() - built}
    return bench


def make_bench(args, env: dict[str, str], warm: list[SizeSpec]) -> Bench:
    if args.random_weights:
        return build_random(args.random_weights, env, warm)
    return load_real(args.model, env, warm)


def run_one_set(argv: list[str], name: str, timeout: float) -> dict | None:
    """Run one option set in a child process (a fresh torch: compile caches and fp8 weights
    do not leak between sets) and return the JSON it prints on its `RESULT ` line; None, with
    the child's last words, when it failed."""
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    print(f"[{name}] failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return None
