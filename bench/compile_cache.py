"""Warm-up with and without the persistent compile cache (server/flux_server/compile_cache.py).

Each run is a fresh process, as a new container is: the random-weight FLUX transformer with
FLUX.1-dev's depth (19 + 38 blocks at the tiny widths, bench/flux_bench.py's `deep` shape),
FLUX_COMPILE=regional, one warm size. The first run finds the cache empty and compiles; the
second finds what the first left and loads it. Prints both warm-ups and the ratio; asserts
nothing (the issue's goal is 5x).

    .venv/bin/python bench/compile_cache.py [--size 64x64] [--compile regional|full]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT))


def child(cache: str, size: str, compile_mode: str) -> None:
    """One 'container': point the caches at `cache`, build, warm, print the figures."""
    import torch  # lazy: the parent process only runs the children
    from flux_server import compile_cache  # lazy: after sys.path has the server

    from bench.flux_bench import SizeSpec, build_random  # lazy: imports torch

    width, height = (int(v) for v in size.split("x"))
    options = {"compile": compile_mode, "size": size}
    folder = compile_cache.use_cache(Path(cache), compile_cache.cache_key(
        "cpu", torch.__version__, options))
    bench = build_random("deep", {"FLUX_COMPILE": compile_mode, "FLUX_FUSE_QKV": "on"},
                         [SizeSpec(width, height, 2)])
    hits, misses = compile_cache.cache_counts()
    print(json.dumps({"warming_s": bench.startup["warming_s"], "hits": hits,
                      "misses": misses, "folder": str(folder)}))


def run(cache: str, size: str, compile_mode: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", cache, "--size", size,
                          "--compile", compile_mode], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child")
    parser.add_argument("--size", default="64x64")
    parser.add_argument("--compile", default="regional")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.size, args.compile)
        return
    with tempfile.TemporaryDirectory(prefix="compile-cache-") as cache:
        cold = run(cache, args.size, args.compile)
        warm = run(cache, args.size, args.compile)
    ratio = cold["warming_s"] / warm["warming_s"] if warm["warming_s"] else float("inf")
    print(f"deep random FLUX (19 + 38 blocks), compile={args.compile}, warm size {args.size}")
    print(f"  first container (empty cache):  warm-up {cold['warming_s']:6.1f} s, "
          f"{cold['misses']} graphs compiled, {cold['hits']} loaded")
    print(f"  second container (its cache):   warm-up {warm['warming_s']:6.1f} s, "
          f"{warm['misses']} graphs compiled, {warm['hits']} loaded")
    print(f"  ratio: {ratio:.1f}x (goal: 5x)")


if __name__ == "__main__":
    main()
