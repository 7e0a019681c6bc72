"""How long the tiny FLUX pipeline takes per size on CPU (in-process, no HTTP).

Builds the tiny pipeline offline, prints its geometry (VAE scale factor, latent channels,
transformer in_channels, saved size) and the median time of a 4-step generation at each
size, in wall time and in CPU time (the process's own seconds: with one torch thread, what
the wall time would be on an idle core, whatever else the machine runs). A size whose first
run passes --budget-s is reported and the larger ones skipped.

    python bench/tiny_sizes.py [--sizes 256 512 1024] [--steps 4] [--runs 3] [--threads 1]

Prints figures only (benchmarks never assert).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget-s", type=float, default=120.0,
                        help="stop after a size whose first run takes longer than this")
    args = parser.parse_args()

    import torch  # lazy: heavy, run-time only
    from diffusers import FluxPipeline  # lazy: loads torch
    from flux_server.engine import GenerationParams, generate  # lazy: loads torch
    from flux_server.tiny import save_tiny_pipeline  # lazy: loads torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_tiny_pipeline(Path(tmp) / "tiny")
        size_mb = _folder_bytes(path) / 1e6
        pipe = FluxPipeline.from_pretrained(str(path))
    pipe.set_progress_bar_config(disable=True)
    print(f"tiny FLUX: vae_scale_factor={pipe.vae_scale_factor} "
          f"latent_channels={pipe.vae.config.latent_channels} "
          f"transformer.in_channels={pipe.transformer.config.in_channels} "
          f"saved={size_mb:.2f} MB; {args.steps} steps, torch threads={args.threads}")
    generate(pipe, GenerationParams("warm up", 64, 64, 1, 0.0, 0))
    for side in args.sizes:
        params = GenerationParams("a red fox in the snow", side, side, args.steps, 0.0, 1)
        times, cpu_times = [], []
        for _ in range(args.runs):
            started, cpu_started = time.perf_counter(), time.process_time()
            generate(pipe, params)
            times.append(time.perf_counter() - started)
            cpu_times.append(time.process_time() - cpu_started)
            if times[0] > args.budget_s:
                break
        print(f"{side:>5}x{side:<5} wall median {statistics.median(times):8.3f} s "
              f"(min {min(times):.3f})  cpu median {statistics.median(cpu_times):8.3f} s  "
              f"runs {len(times)}")
        if times[0] > args.budget_s:
            print(f"  first run over --budget-s={args.budget_s:g}: larger sizes skipped")
            break


if __name__ == "__main__":
    main()
