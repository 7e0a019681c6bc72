"""Latency of FLUX generations on this machine's GPU: P0/P50/P90/P95/P99/P100.

Loads the model with the server's own loader (same memory plan, FLUX_* variables apply) and
times the same generation call the server makes, synchronising CUDA around each run.
Or, with --url, times POST /generate against a running server end to end.

    python bench/gpu_latency.py --model black-forest-labs/FLUX.1-schnell --size 1024x1024 \
        --steps 4 --runs 20
    python bench/gpu_latency.py --url http://127.0.0.1:8000 --size 1024x1024 --steps 4

Prints figures only (never asserts). Published anchors (NOTES): schnell 4 steps 1024^2 on
H100 about 1.5 s bf16; dev 28 steps about 6.7 s bf16.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

PERCENTILES = (0, 50, 90, 95, 99, 100)


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


def format_percentiles(samples: list[float]) -> str:
    return "  ".join(f"P{p}={v:.3f}s" for p, v in percentiles(samples).items())


def _in_process(args, width: int, height: int) -> list[float]:
    import torch
    from flux_server.config import settings_from_env
    from flux_server.engine import GenerationParams, generate
    from flux_server.loader import PipelineLoader
    from flux_server.state import LoadState

    os.environ["FLUX_MODEL"] = args.model
    settings = settings_from_env()
    loader = PipelineLoader(settings, LoadState(settings.model, settings.tiny))
    started = time.perf_counter()
    loader.run()
    if loader.state.state != "ready":
        sys.exit(f"load failed: {loader.state.snapshot()['error']}")
    print(f"loaded {settings.model} in {time.perf_counter() - started:.1f}s with "
          f"{loader.plan.describe()}; GPUs: {[g.name for g in loader.gpus] or 'none (CPU)'}")
    loader.pipeline.set_progress_bar_config(disable=True)
    cuda = torch.cuda.is_available()
    guidance = args.guidance if args.guidance is not None else loader.defaults.guidance_scale
    samples = []
    for index in range(args.warmup + args.runs):
        params = GenerationParams(args.prompt, width, height, args.steps, guidance, index)
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        generate(loader.pipeline, params)
        if cuda:
            torch.cuda.synchronize()
        if index >= args.warmup:
            samples.append(time.perf_counter() - t0)
    if cuda:
        print(f"peak GPU memory allocated: {torch.cuda.max_memory_allocated() / 1e9:.1f} GB")
    return samples


def _over_http(args, width: int, height: int) -> list[float]:
    import httpx

    body = {"prompt": args.prompt, "width": width, "height": height,
            "num_inference_steps": args.steps}
    if args.guidance is not None:
        body["guidance_scale"] = args.guidance
    samples = []
    with httpx.Client(base_url=args.url, timeout=600) as client:
        for index in range(args.warmup + args.runs):
            t0 = time.perf_counter()
            response = client.post("/generate", json={**body, "seed": index})
            response.raise_for_status()
            if index >= args.warmup:
                samples.append(time.perf_counter() - t0)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.environ.get("FLUX_MODEL",
                                                          "black-forest-labs/FLUX.1-schnell"))
    parser.add_argument("--url", help="time a running server instead of loading in-process")
    parser.add_argument("--size", default="1024x1024")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--guidance", type=float, default=None)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--prompt", default="a photograph of a lighthouse at dusk")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    samples = (_over_http if args.url else _in_process)(args, width, height)
    where = args.url or args.model
    print(f"{where} {width}x{height} steps={args.steps} runs={len(samples)}")
    print(format_percentiles(samples))
    print(f"mean={statistics.mean(samples):.3f}s  images/s={1 / statistics.mean(samples):.2f}")


if __name__ == "__main__":
    main()
