"""Quality cost of each speed option: its images against the plain images (no options) for
the same seeds and prompts, as PSNR (dB; higher is closer, inf is identical), and as CLIP
score when a local CLIP model is given (`--clip PATH`, e.g. openai/clip-vit-large-patch14).

Each option set runs in its own process (bench/flux_bench.py OPTION_SETS) and saves its
images; this process compares them and prints one table.

    python bench/gpu_quality.py --model black-forest-labs/FLUX.1-dev --sets fuse,fp8,cache
    python bench/gpu_quality.py --random-weights dev --sets fp8,regional+fp8+cache
    python bench/gpu_quality.py --model tiny --sets fuse,cache --seeds 2     # CPU smoke run

With random weights the images are noise: PSNR then measures numerical drift only, not what
a viewer sees (the output says so). Prints figures only (never asserts).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flux_bench import (
    OPTION_SETS,
    default_size_specs,
    make_bench,
    parse_size_specs,
    run_one_set,
)

PROMPTS = ("a lighthouse at dusk, photograph", "a bowl of ramen, studio light",
           "an astronaut riding a horse, oil painting", "a red fox in the snow")


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio of two float images in [0, 1]."""
    import numpy as np  # lazy: heavy, run-time only

    mse = float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
                        ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def worker(args) -> None:
    """Generate this option set's images into --out (one .npy per size and seed)."""
    import numpy as np  # lazy: heavy, run-time only

    specs = parse_size_specs(args.sizes) if args.sizes else default_size_specs(args.kind)[:1]
    bench = make_bench(args, dict(OPTION_SETS[args.one_set]), specs)
    out = Path(args.out)
    for spec in specs:
        for seed in range(args.seeds):
            image = _render(bench, spec, seed, PROMPTS[seed % len(PROMPTS)])
            np.save(out / f"{args.one_set}_{spec.label}_{seed}.npy", image)
    print("RESULT " + json.dumps({"set": args.one_set, "label": bench.label,
                                  "speed": bench.speed}))


def _render(bench, spec, seed: int, prompt: str):
    import torch  # lazy: heavy, run-time only

    generator = torch.Generator(device="cpu").manual_seed(seed)
    kwargs = dict(bench.embeds) if bench.embeds else {"prompt": prompt}
    with torch.inference_mode():
        return bench.pipe(width=spec.width, height=spec.height, num_inference_steps=spec.steps,
                          guidance_scale=bench.guidance, generator=generator,
                          output_type="np", **kwargs).images[0]


def clip_scores(clip_path: str, images: list, prompts: list[str]) -> list[float]:
    """CLIP score (100 x cosine of image and prompt embeddings) with a local CLIP model."""
    import torch  # lazy: heavy, run-time only
    from transformers import CLIPModel, CLIPProcessor  # lazy: loads torch

    model = CLIPModel.from_pretrained(clip_path).eval()
    processor = CLIPProcessor.from_pretrained(clip_path)
    inputs = processor(text=prompts, images=[(i * 255).astype("uint8") for i in images],
                       return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**inputs)
    image = out.image_embeds / out.image_embeds.norm(dim=-1, keepdim=True)
    text = out.text_embeds / out.text_embeds.norm(dim=-1, keepdim=True)
    return [float(100 * (image[i] * text[i]).sum().clamp(min=0)) for i in range(len(images))]


def _run_set(args, name: str, out: str) -> dict | None:
    argv = [sys.executable, __file__, "--one-set", name, "--out", out, "--model", args.model,
            "--seeds", str(args.seeds), "--kind", args.kind]
    for flag, value in (("--sizes", args.sizes), ("--random-weights", args.random_weights)):
        if value:
            argv += [flag, value]
    return run_one_set(argv, name, args.set_timeout)


def main() -> None:
    import numpy as np  # lazy: heavy, run-time only

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="black-forest-labs/FLUX.1-schnell")
    parser.add_argument("--random-weights", choices=("dev", "tiny"))
    parser.add_argument("--sets", default="fuse,fp8,cache,regional+fp8+cache")
    parser.add_argument("--sizes", help="WxH@steps,... (default: 1024x1024 at the model's steps)")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--clip", help="path of a local CLIP model for CLIP scores")
    parser.add_argument("--set-timeout", type=float, default=3600)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--one-set", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kind is None:
        name = args.model.lower()
        args.kind = ("dev" if args.random_weights == "dev" else "tiny" if args.random_weights
                     or name == "tiny" else "dev" if "dev" in name else "schnell")
    if args.one_set:
        return worker(args)
    names = [n for n in args.sets.split(",") if n and n != "plain"]
    unknown = [n for n in names if n not in OPTION_SETS]
    if unknown:
        sys.exit(f"unknown option set(s) {unknown}: choose from {', '.join(OPTION_SETS)}")
    if args.random_weights:
        print("random weights: the images are noise; PSNR shows numerical drift only")
    with tempfile.TemporaryDirectory(prefix="flux-quality-") as out:
        if _run_set(args, "plain", out) is None:
            sys.exit("the plain run failed: nothing to compare against")
        print(f"{'option set':<22}{'size':<16}{'PSNR min':>10}{'PSNR mean':>11}"
              + (f"{'CLIP plain':>12}{'CLIP set':>10}" if args.clip else ""))
        for name in names:
            if _run_set(args, name, out) is None:
                continue
            by_size: dict[str, list[tuple]] = {}
            for path in sorted(Path(out).glob(f"{name}_*.npy")):
                _, size, seed = path.stem.rsplit("_", 2)
                plain = np.load(Path(out) / f"plain_{size}_{seed}.npy")
                by_size.setdefault(size, []).append((plain, np.load(path), int(seed)))
            for size, pairs in by_size.items():
                values = [psnr(a, b) for a, b, _ in pairs]
                finite = [v for v in values if math.isfinite(v)]
                mean = sum(finite) / len(finite) if finite else math.inf
                line = f"{name:<22}{size:<16}{min(values):>10.1f}{mean:>11.1f}"
                if args.clip:
                    prompts = [PROMPTS[s % len(PROMPTS)] for _, _, s in pairs]
                    base = clip_scores(args.clip, [a for a, _, _ in pairs], prompts)
                    tuned = clip_scores(args.clip, [b for _, b, _ in pairs], prompts)
                    line += f"{sum(base) / len(base):>12.2f}{sum(tuned) / len(tuned):>10.2f}"
                print(line)


if __name__ == "__main__":
    main()
