"""The server under careless and hostile clients (issue 21), on the tiny model (CPU).

1. `lora`: the queue wait of a 64x64 /generate sent while /apply-lora downloads a LoRA from
   a fake hub that trickles it (about `--apply-s` seconds for the file).
2. `sdk`: how many generations the official `openai` SDK (default max_retries=2) starts for
   one call that ends in 504 (the run deadline is shorter than the generation).
3. `bodies`: the server's RSS before and at the peak of five concurrent 50 MB JSON bodies
   (`chunked`: the same bodies without Content-Length).
4. `retry`: after a few large jobs, the Retry-After told to rejected 64x64 requests against
   the time the queue really took to drain.

    python bench/hostile_clients.py [lora sdk bodies chunked retry]

Prints figures only (benchmarks never assert).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT), str(ROOT / "server"), str(Path(__file__).resolve().parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from ready import wait_ready

SMALL = {"prompt": "a red fox", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 1}
LORA_REPO = "bench-owner/tiny-lora"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m flux_server` on the tiny model, logging to a file."""

    def __init__(self, workdir: Path, name: str, **env: str) -> None:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = workdir / f"{name}.log"
        full = {**os.environ, "PORT": str(port), "FLUX_HOST": "127.0.0.1", "FLUX_MODEL": "tiny",
                "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "server"),
                "HF_HOME": str(workdir / f"{name}-hf"), **env}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "flux_server"], env=full,
                                         stdout=out, stderr=subprocess.STDOUT)
        wait_ready(self.url, 240, proc=self.proc)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def bench_lora(workdir: Path, apply_s: float) -> None:
    from flux_server.tiny import save_tiny_lora, save_tiny_pipeline  # lazy: loads torch

    from tests.fakes.fake_hf_hub import FakeHfHub  # lazy: bench only

    pipeline = save_tiny_pipeline(workdir / "tiny")
    lora = save_tiny_lora(pipeline, workdir / "lora-repo")
    size = sum(p.stat().st_size for p in lora.rglob("*") if p.is_file())
    hub = FakeHfHub().start()
    hub.add_repo(LORA_REPO, lora, bytes_per_second=size / apply_s)
    server = Server(workdir, "lora", HF_ENDPOINT=hub.url)
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            client.post("/generate", json=SMALL).raise_for_status()  # warm
            applied: dict = {}

            def apply() -> None:
                started = time.monotonic()
                response = client.post("/apply-lora", json={"source": LORA_REPO})
                applied.update(status=response.status_code, s=time.monotonic() - started,
                               body=response.text[:200])

            thread = threading.Thread(target=apply)
            thread.start()
            time.sleep(min(1.0, apply_s / 4))
            started = time.monotonic()
            response = client.post("/generate", json=SMALL)
            total = time.monotonic() - started
            thread.join()
        print(f"lora: LoRA file {size} bytes trickled over ~{apply_s:g} s; apply-lora "
              f"{applied['status']} in {applied['s']:.2f} s")
        print(f"lora: 64x64 /generate during the apply: {response.status_code}, queue wait "
              f"{response.headers.get('x-queue-wait-seconds')} s, total {total:.2f} s")
    finally:
        server.stop()
        hub.stop()


def bench_sdk(workdir: Path) -> None:
    import openai  # lazy: bench only

    server = Server(workdir, "sdk", FLUX_TEST_GENERATE_DELAY="3", FLUX_REQUEST_TIMEOUT="1",
                    FLUX_RUN_TIMEOUT="1")
    sent: list[str] = []
    try:
        http = httpx.Client(event_hooks={"request": [lambda r: sent.append(str(r.url))]})
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", http_client=http)
        started = time.monotonic()
        try:
            client.images.generate(prompt="a fox", size="64x64", response_format="b64_json")
            outcome = "200"
        except openai.APIStatusError as exc:
            outcome = str(exc.status_code)
        took = time.monotonic() - started
        time.sleep(0.5)
        jobs = sum(1 for line in server.log.read_text().splitlines()
                   if "route=/v1/images/generations" in line)
        print(f"sdk: one images.generate call (max_retries=2) -> {outcome} after {took:.1f} s; "
              f"HTTP attempts {len(sent)}, generation requests in the server log {jobs}")
    finally:
        server.stop()


def bench_bodies(workdir: Path, count: int = 5, size_mb: int = 50,
                 chunked: bool = False) -> None:
    server = Server(workdir, "bodies-chunked" if chunked else "bodies")
    body = b'{"prompt": "' + b"a" * (size_mb * 1024 * 1024) + b'"}'
    try:
        before, peak, answers = server.rss_mb(), [0.0], []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], server.rss_mb())
                time.sleep(0.02)

        def send() -> None:
            try:
                content = (body[i:i + 65536] for i in range(0, len(body), 65536)) \
                    if chunked else body  # a generator: no Content-Length, sent chunked
                response = httpx.post(f"{server.url}/generate", content=content, timeout=120,
                                      headers={"content-type": "application/json"})
                answers.append(response.status_code)
            except httpx.HTTPError as exc:
                answers.append(type(exc).__name__)

        sampler = threading.Thread(target=sample)
        sampler.start()
        senders = [threading.Thread(target=send) for _ in range(count)]
        started = time.monotonic()
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join()
        took = time.monotonic() - started
        done.set()
        sampler.join()
        how = "chunked" if chunked else "Content-Length"
        print(f"bodies: {count} concurrent {size_mb} MB bodies ({how}) -> "
              f"{sorted(map(str, answers))} "
              f"in {took:.2f} s; RSS {before:.0f} MB before, peak {peak[0]:.0f} MB")
    finally:
        server.stop()


def bench_retry(workdir: Path, large: int = 3, burst: int = 40) -> None:
    server = Server(workdir, "retry", FLUX_QUEUE_SIZE="4")
    big = {**SMALL, "width": 1024, "height": 1024, "num_inference_steps": 16}
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            for _ in range(large):
                client.post("/generate", json=big).raise_for_status()
        results: list[tuple[float, int, str | None]] = []

        def send() -> None:
            response = httpx.post(f"{server.url}/generate", json=SMALL, timeout=120)
            results.append((time.monotonic(), response.status_code,
                            response.headers.get("retry-after")))

        threads = [threading.Thread(target=send) for _ in range(burst)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ok = [t for t, status, _ in results if status == 200]
        told = sorted({int(r) for _, status, r in results if status == 429 and r})
        rejected = sum(1 for _, status, _ in results if status == 429)
        drain = (max(ok) - started) if ok else 0.0
        print(f"retry: after {large} 1024x1024x16 jobs, a burst of {burst} 64x64: {len(ok)} "
              f"served, {rejected} told 429 with Retry-After {told} s; the queue drained "
              f"in {drain:.2f} s")
    finally:
        server.stop()


def main(argv: list[str]) -> None:
    which = argv or ["lora", "sdk", "bodies", "chunked", "retry"]
    apply_s = float(os.environ.get("BENCH_APPLY_S", "8"))
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        for name in which:
            {"lora": lambda: bench_lora(workdir, apply_s), "sdk": lambda: bench_sdk(workdir),
             "bodies": lambda: bench_bodies(workdir),
             "chunked": lambda: bench_bodies(workdir, chunked=True),
             "retry": lambda: bench_retry(workdir)
             }[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
