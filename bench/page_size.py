"""What the prompt page costs: its files (raw and gzipped) against the 1 MB image budget, and,
with --image, the sizes of the image layers that hold the server's code (docker history).

    .venv/bin/python bench/page_size.py
    .venv/bin/python bench/page_size.py --image fluxdeploy/flux-server:cpu \
        --image fluxdeploy/flux-server:cpu-mybranch
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from flux_server.page import PAGE_FILES, page_file

BUDGET_BYTES = 1_000_000


def code_layers(image: str) -> list[tuple[str, str]]:
    """(size, step) of the layers that copy and install flux_server."""
    out = subprocess.run(["docker", "history", "--no-trunc", "--format",
                          "{{.Size}}\t{{.CreatedBy}}", image],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t", 1) for line in out.splitlines() if "\t" in line]
    return [(size, step) for size, step in rows
            if "/tmp/src/flux_server" in step or "pip install --no-deps" in step]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", action="append", default=[],
                        help="an image to report the code layers of (repeatable)")
    args = parser.parse_args()
    total = packed = 0
    for name in PAGE_FILES:
        data = page_file(name)
        zipped = len(gzip.compress(data, 9))
        total, packed = total + len(data), packed + zipped
        print(f"{name:12} {len(data):8d} B  gzip {zipped:7d} B")
    print(f"{'total':12} {total:8d} B  gzip {packed:7d} B  = {total / BUDGET_BYTES:.2%} of "
          f"the 1 MB image budget")
    for image in args.image:
        print(f"\n{image}: flux_server code layers")
        for size, step in code_layers(image):
            print(f"  {size:>8}  {step[:90]}")


if __name__ == "__main__":
    main()
