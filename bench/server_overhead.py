"""What the HTTP server costs on top of the pipeline call, on the tiny model (CPU).

1. Median end-to-end latency of POST /generate (64x64, 2 steps, PNG bytes) against the same
   generation + encoding call made in-process on the same tiny pipeline, interleaved run by
   run so both see the same machine load; their ratio (target <= 1.10).
2. 16 concurrent clients against the one-at-a-time queue: throughput against sequential,
   and P50/P90/P99 latency.

    python bench/server_overhead.py [--runs 40] [--clients 16] [--per-client 4]

Prints figures only (benchmarks never assert).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_latency import percentiles
from ready import wait_ready

BODY = {"prompt": "a red fox in the snow", "width": 64, "height": 64,
        "num_inference_steps": 2, "seed": 1}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(threads: int) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "PORT": str(port), "FLUX_HOST": "127.0.0.1", "FLUX_MODEL": "tiny",
           "FLUX_QUEUE_SIZE": "64", "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": str(ROOT / "server"), "FLUX_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "flux_server"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


def load_in_process():
    """The same tiny pipeline the server builds, loaded the same way, and its one call."""
    import torch  # lazy: heavy, run-time only
    from diffusers import FluxPipeline  # lazy: loads torch
    from flux_server.engine import GenerationParams, encode_image, generate  # lazy: loads torch
    from flux_server.tiny import save_tiny_pipeline  # lazy: loads torch

    with tempfile.TemporaryDirectory() as folder:
        save_tiny_pipeline(folder)
        pipe = FluxPipeline.from_pretrained(folder, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    params = GenerationParams(BODY["prompt"], 64, 64, 2, 0.0, 1)
    return lambda: encode_image(generate(pipe, params)[0], "png")


def paired_samples(url: str, call_in_process, runs: int, warmup: int
                   ) -> tuple[list[float], list[float]]:
    """Interleave in-process and HTTP runs so both see the same machine load."""
    local, remote = [], []
    with httpx.Client(base_url=url, timeout=60) as client:
        for index in range(warmup + runs):
            t0 = time.perf_counter()
            call_in_process()
            t1 = time.perf_counter()
            client.post("/generate", json=BODY).raise_for_status()
            t2 = time.perf_counter()
            if index >= warmup:
                local.append(t1 - t0)
                remote.append(t2 - t1)
    return local, remote


def concurrent_run(url: str, clients: int, per_client: int) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client_loop(index: int) -> None:
        with httpx.Client(base_url=url, timeout=300) as client:
            barrier.wait()
            for j in range(per_client):
                t0 = time.perf_counter()
                response = client.post("/generate", json={**BODY, "seed": index * 1000 + j})
                elapsed = time.perf_counter() - t0
                with lock:
                    if response.status_code == 200:
                        latencies.append(elapsed)
                    else:
                        errors[0] += 1

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - t0, errors[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads, in-process and in the server (OMP_NUM_THREADS)")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch  # lazy: heavy, run-time only

    torch.set_num_threads(args.threads)

    proc, url = start_server(args.threads)
    try:
        call_in_process = load_in_process()
        wait_ready(url, 120, proc=proc, interval=0.2)
        local, remote = paired_samples(url, call_in_process, args.runs, args.warmup)
        del call_in_process
        sequential_s = sum(remote)
        latencies, wall_s, errors = concurrent_run(url, args.clients, args.per_client)
    finally:
        proc.terminate()
        proc.wait(10)

    local_med, remote_med = statistics.median(local), statistics.median(remote)
    print(f"tiny FLUX, 64x64, 2 steps, PNG, torch threads={args.threads}, runs={args.runs}")
    print(f"in-process median      {local_med * 1000:8.1f} ms")
    print(f"HTTP /generate median  {remote_med * 1000:8.1f} ms")
    print(f"ratio HTTP/in-process  {remote_med / local_med:8.3f}   (target <= 1.10)")
    pair_ratio = statistics.median(r / loc for r, loc in zip(remote, local, strict=True))
    print(f"median paired ratio    {pair_ratio:8.3f}")
    print(f"overhead               {(remote_med - local_med) * 1000:8.1f} ms per request")
    images = len(latencies)
    seq_rate = len(remote) / sequential_s
    conc_rate = images / wall_s
    p = percentiles(latencies, (50, 90, 99))
    print(f"concurrent: {args.clients} clients x {args.per_client} = {images} images "
          f"({errors} errors) in {wall_s:.2f}s")
    print(f"throughput concurrent  {conc_rate:8.2f} images/s")
    print(f"throughput sequential  {seq_rate:8.2f} images/s   ratio {conc_rate / seq_rate:.2f}")
    print(f"latency under load     P50={p[50]:.3f}s  P90={p[90]:.3f}s  P99={p[99]:.3f}s")


if __name__ == "__main__":
    main()
