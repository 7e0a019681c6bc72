"""Benchmark: how fast `fluxdeploy --help` answers, against `python -c "import typer"`.

Prints the median wall time of each over N runs and their ratio (target <= 2.0), and the
same for `fluxdeploy presets list`. Run: `.venv/bin/python bench/cli_startup.py [N]`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 15


def median_seconds(argv: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    py = sys.executable
    base = median_seconds([py, "-c", "import typer"])
    cases = {
        "fluxdeploy --help": [py, "-m", "intelligensi_deploy", "--help"],
        "fluxdeploy presets list": [py, "-m", "intelligensi_deploy", "presets", "list"],
    }
    print(f"runs per case: {RUNS}")
    label = 'python -c "import typer"'
    print(f"{label:32} median {base * 1000:7.1f} ms")
    for label, argv in cases.items():
        t = median_seconds(argv)
        print(f"{label:32} median {t * 1000:7.1f} ms   ratio to import typer {t / base:.2f}"
              f"   (target <= 2.0)")


if __name__ == "__main__":
    main()
