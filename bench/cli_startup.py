"""Benchmark: how fast the quick commands answer, against `python -c "import typer"`.

Runs `import typer` and each command in turn, N rounds (paired runs: each round times the
baseline and every command back to back, so load from other processes hits them alike), and
prints per command the median time and the median of the per-round ratios to the baseline
(target <= 2.0 for `presets list`, `status` and `diagnose`; issue 12). `status` reads a state
folder holding one finished deployment, `diagnose` a short saved log with a known error: what
they do without any network. Run: `.venv/bin/python bench/cli_startup.py [N]` (default 10).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
TARGET = 2.0
SAMPLE_LOG = """\
INFO:     Started server process [1]
flux_server: loading black-forest-labs/FLUX.1-schnell (bf16, memory plan gpu)
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 72.00 MiB. GPU 0 has a total \
capacity of 22.07 GiB of which 31.44 MiB is free.
"""


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                   check=False)
    return time.perf_counter() - start


def _fixtures(folder: Path) -> tuple[Path, Path]:
    """A state folder with one finished deployment, and a saved log."""
    home = folder / "home"
    (home / "deployments").mkdir(parents=True)
    record = {"name": "old", "preset": "local", "provider": "local", "phase": "down",
              "container_name": "fluxdeploy-old", "created_at": 1.0, "updated_at": 2.0}
    (home / "deployments" / "old.json").write_text(json.dumps(record))
    log = folder / "server.log"
    log.write_text(SAMPLE_LOG)
    return home, log


def main() -> None:
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        home, log = _fixtures(Path(tmp))
        env = {**os.environ, "FLUXDEPLOY_HOME": str(home)}
        base_argv = [py, "-c", "import typer"]
        cli = [py, "-m", "intelligensi_deploy"]
        cases = {
            "fluxdeploy --help": [*cli, "--help"],
            "fluxdeploy presets list": [*cli, "presets", "list"],
            "fluxdeploy status": [*cli, "status"],
            "fluxdeploy diagnose LOG": [*cli, "diagnose", str(log)],
        }
        for argv in (base_argv, *cases.values()):  # warm the OS caches once
            _timed(argv, env)
        base: list[float] = []
        times: dict[str, list[float]] = {label: [] for label in cases}
        for _ in range(RUNS):
            base.append(_timed(base_argv, env))
            for label, argv in cases.items():
                times[label].append(_timed(argv, env))
    print(f"paired runs: {RUNS} (median of per-round ratios; the machine may be shared, so "
          "compare ratios, not milliseconds)")
    label = 'python -c "import typer"'
    print(f"{label:28} median {statistics.median(base) * 1000:7.1f} ms")
    for label, samples in times.items():
        ratios = [t / b for t, b in zip(samples, base, strict=True)]
        ratio = statistics.median(ratios)
        verdict = "ok" if ratio <= TARGET else "OVER"
        print(f"{label:28} median {statistics.median(samples) * 1000:7.1f} ms   ratio "
              f"{ratio:.2f} (target <= {TARGET}: {verdict})")


if __name__ == "__main__":
    main()
