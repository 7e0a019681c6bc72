"""Latency of FLUX generations per option set and size: P0/P50/P90/P95/P99/P100, cold start to
ready (download excluded and included), peak GPU memory, images/s under concurrent clients.

Each option set (bench/flux_bench.py OPTION_SETS, or `preset` for a preset's own speed keys)
runs in its own process, so compile caches, peak memory and cold start are its own.

    python bench/gpu_latency.py --model black-forest-labs/FLUX.1-dev --sets plain,auto
    python bench/gpu_latency.py --random-weights dev --sets plain,regional,regional+fp8
    python bench/gpu_latency.py --preset lambda-h100 --random-weights dev
    python bench/gpu_latency.py --model tiny --sets plain,fuse --runs 3   # CPU smoke run
    python bench/gpu_latency.py --url http://127.0.0.1:8000 --sizes 1024x1024@4

Without weights (`--random-weights dev`): a random-weight FluxTransformer2DModel of
FLUX.1-dev's real shape and FLUX's VAE, with random T5-length prompt embeddings in place of
the text encoders; speed does not depend on the weights' values (the output says so).
Prints figures only (never asserts). Anchors (NOTES.md, H100, 1024²): schnell 4 steps about
1.5 s bf16, 0.7 s tuned; dev 28 steps 6.7 s bf16. Goals: schnell <= 0.6 s, dev <= 2.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flux_bench import (
    OPTION_SETS,
    PERCENTILES,
    ROOT,
    SizeSpec,
    default_size_specs,
    make_bench,
    parse_size_specs,
    percentiles,
    run_one_set,
    sync,
)

__all__ = ["format_percentiles", "percentiles"]


def format_percentiles(samples: list[float]) -> str:
    return "  ".join(f"P{p}={v:.3f}s" for p, v in percentiles(samples).items())


def _kind_of(args) -> str:
    if args.random_weights:
        return "dev" if args.random_weights == "dev" else "tiny"
    name = args.model.lower()
    return "tiny" if name == "tiny" else "dev" if "dev" in name else "schnell"


def _set_env(args, name: str) -> dict[str, str]:
    if name == "preset":
        sys.path.insert(0, str(ROOT))
        from intelligensi_deploy.presets import load_preset  # lazy: after sys.path

        env = load_preset(args.preset).server.container_env()
        args.model = env.pop("FLUX_MODEL", args.model)
        return env
    return dict(OPTION_SETS[name])


def _concurrent_images_per_s(bench, spec: SizeSpec, clients: int, per_client: int) -> float:
    """Clients submit through the server's own one-at-a-time JobQueue (no HTTP)."""
    from flux_server.jobs import JobQueue  # lazy: loads torch

    queue = JobQueue(max_waiting=clients * per_client)
    done: list[int] = []

    def client(index: int) -> None:
        for i in range(per_client):
            job = queue.submit(lambda _job, s=index * 100 + i: (bench.run(spec, s), sync()))
            job.future.result()
            done.append(1)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    queue.close()
    return len(done) / elapsed


def worker(args) -> None:
    """One option set in this process: print one JSON line of results."""
    import torch  # lazy: heavy, run-time only

    specs = parse_size_specs(args.sizes) if args.sizes else default_size_specs(_kind_of(args))
    env = _set_env(args, args.one_set)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    bench = make_bench(args, env, specs)
    load_peak = torch.cuda.max_memory_allocated() / 1e9 if torch.cuda.is_available() else None
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    rows = []
    for spec in specs:
        samples = []
        for index in range(args.warmup + args.runs):
            sync()
            t0 = time.perf_counter()
            bench.run(spec, index)
            sync()
            if index >= args.warmup:
                samples.append(time.perf_counter() - t0)
        rows.append({"size": spec.label, "samples": samples})
    throughput = _concurrent_images_per_s(bench, specs[0], args.clients, args.per_client)
    peak = torch.cuda.max_memory_allocated() / 1e9 if torch.cuda.is_available() else None
    print("RESULT " + json.dumps({
        "set": args.one_set, "label": bench.label, "speed": bench.speed,
        "startup": bench.startup, "rows": rows, "images_per_s": throughput,
        "concurrency_size": specs[0].label, "peak_gpu_gb": peak, "load_peak_gpu_gb": load_peak,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"}))


def _run_set(args, name: str) -> dict | None:
    argv = [sys.executable, __file__, "--one-set", name, "--model", args.model,
            "--runs", str(args.runs), "--warmup", str(args.warmup), "--clients",
            str(args.clients), "--per-client", str(args.per_client)]
    for flag, value in (("--sizes", args.sizes), ("--random-weights", args.random_weights),
                        ("--preset", args.preset)):
        if value:
            argv += [flag, value]
    return run_one_set(argv, name, args.set_timeout)


def _print(result: dict, plain_p50: dict[str, float]) -> None:
    s = result["startup"]
    print(f"\n== {result['set']}: {result['label']} on {result['device']}")
    print(f"   speed: {json.dumps({k: v for k, v in result['speed'].items() if k != 'reasons'})}")
    print(f"   cold start to ready: {s['ready_without_download_s']:.1f}s without download, "
          f"{s['ready_s']:.1f}s with it (warming/compile {s['warming_s']:.1f}s)")
    header = "   size            " + "".join(f"{'P' + str(p):>9}" for p in PERCENTILES)
    print(header + "     mean  vs plain P50")
    for row in result["rows"]:
        pct = percentiles(row["samples"])
        ratio = plain_p50.get(row["size"])
        p50 = pct[50]
        versus = f"{ratio / p50:10.2f}x" if ratio else "         -"
        print(f"   {row['size']:<16}" + "".join(f"{pct[p]:8.3f}s" for p in PERCENTILES)
              + f" {statistics.mean(row['samples']):7.3f}s {versus}")
    peak, load_peak = result["peak_gpu_gb"], result["load_peak_gpu_gb"]
    memory = (f"{peak:.1f} GB generating, {load_peak:.1f} GB loading" if peak is not None
              else "- (CPU)")
    print(f"   peak GPU memory: {memory}; "
          f"{result['images_per_s']:.2f} images/s with concurrent clients at "
          f"{result['concurrency_size']}")


def _over_http(args) -> None:
    specs = parse_size_specs(args.sizes or "1024x1024@4")
    with httpx.Client(base_url=args.url, timeout=600) as client:
        for spec in specs:
            body = {"prompt": "a lighthouse at dusk", "width": spec.width,
                    "height": spec.height, "num_inference_steps": spec.steps}
            samples = []
            for index in range(args.warmup + args.runs):
                t0 = time.perf_counter()
                client.post("/generate", json={**body, "seed": index}).raise_for_status()
                if index >= args.warmup:
                    samples.append(time.perf_counter() - t0)
            print(f"{args.url} {spec.label}: {format_percentiles(samples)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.environ.get("FLUX_MODEL",
                                                          "black-forest-labs/FLUX.1-schnell"))
    parser.add_argument("--random-weights", choices=("dev", "deep", "tiny"),
                        help="no weights: a random transformer of FLUX.1-dev's shape (dev); "
                             "its depth at tiny widths (deep: compile cost on a CPU); tiny")
    parser.add_argument("--preset", help="add the option set `preset`: this preset's keys")
    parser.add_argument("--sets", default="plain,auto", help=f"of {', '.join(OPTION_SETS)}")
    parser.add_argument("--sizes", help="WxH@steps,... (default: by model)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--per-client", type=int, default=3)
    parser.add_argument("--set-timeout", type=float, default=3600)
    parser.add_argument("--url", help="time a running server instead")
    parser.add_argument("--one-set", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.url:
        return _over_http(args)
    if args.one_set:
        return worker(args)
    names = [n for n in args.sets.split(",") if n] + (["preset"] if args.preset else [])
    unknown = [n for n in names if n not in OPTION_SETS and n != "preset"]
    if unknown:
        sys.exit(f"unknown option set(s) {unknown}: choose from {', '.join(OPTION_SETS)}")
    if args.random_weights:
        model = {"dev": "FLUX.1-dev", "deep": "a model as deep as FLUX.1-dev (57 blocks) but "
                 "tiny widths: compile cost only"}.get(args.random_weights, "the tiny test model")
        print(f"random weights ({args.random_weights} shape): no weights were loaded; latency "
              f"and memory are those of {model} (speed does not depend on the weights' values), "
              "the images are noise")
    plain_p50: dict[str, float] = {}
    for name in names:
        result = _run_set(args, name)
        if result is None:
            continue
        if name == "plain":
            plain_p50 = {r["size"]: percentiles(r["samples"])[50] for r in result["rows"]}
        _print(result, plain_p50)


if __name__ == "__main__":
    main()
