"""bench/gpu_latency.py and bench/gpu_quality.py run on the CPU with the tiny model (CI smoke
runs: they print their tables; no figure is asserted, timings on shared CPUs mean nothing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH = REPO_ROOT / "bench"


def run(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], check=False,
                          capture_output=True,
                          text=True, timeout=600, cwd=str(REPO_ROOT),
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                               "HOME": str(REPO_ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_latency_table_per_option_set_and_size():
    out = run("gpu_latency.py", "--model", "tiny", "--sets", "plain,fuse", "--sizes",
              "64x64@2,96x64@2", "--runs", "2", "--warmup", "1", "--per-client", "1")
    assert "== plain: tiny" in out and "== fuse: tiny" in out
    assert out.count("64x64@2") >= 4 and "96x64@2" in out
    header = next(line for line in out.splitlines() if line.strip().startswith("size"))
    assert header.split()[1:7] == ["P0", "P50", "P90", "P95", "P99", "P100"]
    assert "cold start to ready" in out and "images/s with concurrent clients" in out
    assert '"fuse_qkv": true' in out


def test_latency_without_weights_says_so():
    out = run("gpu_latency.py", "--random-weights", "tiny", "--sets", "plain", "--sizes",
              "64x64@2", "--runs", "1", "--warmup", "0", "--per-client", "1")
    assert "no weights were loaded" in out and "random-weight FLUX transformer" in out


def test_quality_table_against_plain():
    out = run("gpu_quality.py", "--model", "tiny", "--sets", "cache", "--sizes", "64x64@4",
              "--seeds", "1")
    row = next(line for line in out.splitlines() if line.startswith("cache"))
    assert row.split()[1] == "64x64@4" and len(row.split()) == 4
