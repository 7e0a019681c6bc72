"""The persistent compile cache: keyed by GPU, torch and options; and for real, a second
process (a new container) loads the graphs the first compiled instead of compiling them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from flux_server.compile_cache import cache_key, cache_root, describe, use_cache

CHILD = """
import json, sys
from pathlib import Path
from flux_server.compile_cache import cache_counts, use_cache
use_cache(Path(sys.argv[1]), "cpu-test")
import torch

@torch.compile
def block(x):
    return torch.nn.functional.gelu(x @ x.T) * 2 + 1

block(torch.randn(8, 8))
print(json.dumps(cache_counts()))
"""


def test_one_folder_per_gpu_torch_and_options() -> None:
    a100 = cache_key("NVIDIA A100-SXM4-80GB", "2.13.0+cu128", {"compile": "regional"})
    assert a100.startswith("nvidia-a100-sxm4-80gb-torch2.13.0-")
    assert a100 != cache_key("NVIDIA H100 PCIe", "2.13.0+cu128", {"compile": "regional"})
    assert a100 != cache_key("NVIDIA A100-SXM4-80GB", "2.14.0", {"compile": "regional"})
    assert a100 != cache_key("NVIDIA A100-SXM4-80GB", "2.13.0", {"compile": "full"})
    assert cache_root({"HF_HOME": "/data/hf"}) == Path("/data/hf/compile-cache")
    assert cache_root({"FLUX_COMPILE_CACHE_DIR": "/x"}) == Path("/x")


def test_the_caches_point_into_the_keyed_folder(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    folder = use_cache(tmp_path, "k", env)
    assert env["TORCHINDUCTOR_CACHE_DIR"] == str(folder / "inductor")
    assert env["TRITON_CACHE_DIR"] == str(folder / "triton") and (folder / "inductor").is_dir()
    assert describe(3, 0).startswith("from cache") and describe(0, 2).startswith("compiled")


def test_a_second_process_loads_what_the_first_compiled(tmp_path: Path) -> None:
    def run() -> tuple[int, int]:
        out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True,
                             text=True, check=True, timeout=600)
        hits, misses = json.loads(out.stdout.strip().splitlines()[-1])
        return hits, misses

    first = run()
    assert first[1] >= 1 and first[0] == 0, first  # compiled, and written to the cache
    assert any((tmp_path / "cpu-test" / "inductor").rglob("*")), "nothing cached"
    second = run()
    assert second[0] >= 1 and second[1] == 0, second  # loaded, nothing compiled again
